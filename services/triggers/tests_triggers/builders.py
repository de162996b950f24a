"""Events as tests need them: a new email ticket unless told otherwise."""

from datetime import UTC, datetime
from typing import Any

from contracts.events import Comment
from contracts.models import Actor, Address, LeftOutAttachment, TicketSnapshot

from contracts import CommentAdded, Envelope, TicketCreated

NOW = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)


def snapshot(**changes: Any) -> TicketSnapshot:
    fields: dict[str, Any] = {
        "ticket_id": "t-1001",
        "number": 1001,
        "title": "Printer on fire",
        "status": "new",
        "priority": "medium",
        "type": "fault",
        "channel": "email",
        "mailbox": "support@localhost",
        "requester": Address(email="alice@example.com", name="Alice Andersson"),
        "created_at": NOW,
        "updated_at": NOW,
        "version": 1,
        "link_token": "secret-link-token",
        "source_message_id": "CAF1234@mail.example.com",
        "source_auto_submitted": False,
    }
    fields.update(changes)
    return TicketSnapshot(**fields)


def ticket_created(**changes: Any) -> TicketCreated:
    return TicketCreated(ticket=snapshot(**changes), description="It is on fire.", actor=Actor(role="customer"))


def ticket_created_with_left_out(**changes: Any) -> TicketCreated:
    return ticket_created(**changes).model_copy(update={"comment_id": "c-1", "left_out": LEFT_OUT})


def envelope_of(event: TicketCreated | CommentAdded, event_id: str = "evt-1") -> Envelope:
    return Envelope.wrap(event, event_id=event_id, key=event.ticket.ticket_id)


def event_dict(**changes: Any) -> dict[str, Any]:
    return ticket_created(**changes).model_dump(mode="json")


LEFT_OUT = (
    LeftOutAttachment(filename="ritning-källare.pdf", size=6_606_029, reason="file_too_large"),
    LeftOutAttachment(filename="bilder.zip", size=3_000_000, reason="message_total_too_large"),
)


def comment_added(*, author_role: str = "customer", **comment_changes: Any) -> CommentAdded:
    fields: dict[str, Any] = {
        "comment_id": "c-2",
        "visibility": "public",
        "author": Actor(role="customer", email="bo@example.se", name="Bo Ström"),
        "channel": "email",
        "text": "Här är ritningen.",
        "message_id": "reply-2@mail.example.se",
        "created_at": NOW,
    }
    fields.update(comment_changes)
    return CommentAdded(
        ticket=snapshot(status="waiting_for_agent", version=2),
        comment=Comment(**fields),
        author_role=author_role,  # type: ignore[arg-type]
        kind="customer_comment",
    )
