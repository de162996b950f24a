"""Commands as tests need them: the auto-reply for ticket #1001 unless told otherwise."""

from datetime import UTC, datetime
from typing import Any

from contracts.events import Comment, FieldChange
from contracts.models import Actor, TicketSnapshot

from contracts import CommentAdded, Envelope, SendNotification, TicketAssigned

SECRET = "test-message-id-secret-0123456789"  # noqa: S105 (a secret for tests only)
DOMAIN = "helpdesk.test"


def send_notification(**changes: Any) -> SendNotification:
    fields: dict[str, Any] = {
        "notification_id": "7d8c0c2e-2f1b-5d43-9a0e-4f5b6c7d8e9f",
        "ticket_id": "t1001",
        "ticket_number": 1001,
        "template": "auto_reply",
        "to": {"email": "alice@example.com", "name": "Alice Andersson"},
        "mailbox": "support@localhost",
        "in_reply_to": "CAF1234@mail.example.com",
        "references": ("CAF1234@mail.example.com",),
        "auto_submitted": "auto-replied",
        "context": {
            "ticket": {"number": 1001, "title": "Printer on fire", "requester": {"name": "Alice Andersson"}},
            "link": "http://127.0.0.1:8000/t/secret-link-token",
        },
        "rule": "Auto-reply on new ticket",
    }
    fields.update(changes)
    return SendNotification.model_validate(fields)


def envelope_of(command: SendNotification) -> Envelope:
    return Envelope.wrap(command, event_id=command.notification_id, key=command.ticket_id)


WHEN = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)


def ticket(**changes: Any) -> dict[str, Any]:
    """A TicketSnapshot as JSON, as triggers puts it in a command's context (ticket #1001)."""
    fields: dict[str, Any] = {
        "ticket_id": "t1001",
        "number": 1001,
        "title": "Printer on fire",
        "status": "open",
        "priority": "high",
        "type": "fault",
        "group": "support",
        "handler": "u-bo",
        "channel": "email",
        "mailbox": "support@localhost",
        "requester": {"email": "alice@example.com", "name": "Alice Andersson"},
        "created_at": WHEN.isoformat(),
        "updated_at": WHEN.isoformat(),
        "version": 3,
        "link_token": "secret-link-token",
    }
    fields.update(changes)
    return TicketSnapshot.model_validate(fields).model_dump(mode="json")


AGENT = Actor(role="agent", id="u-bo", email="bo@acme.example", name="Bo Berg")


def agent_reply(**changes: Any) -> SendNotification:
    """Bo's public reply on #1001, as triggers asks notify to mail it to the customer."""
    fields: dict[str, Any] = {
        "notification_id": "reply-1",
        "template": "agent_reply",
        "in_reply_to": None,
        "references": (),
        "auto_submitted": None,
        "on_behalf_of": AGENT,
        "context": {
            "ticket": ticket(),
            "link": "http://127.0.0.1:8000/t/secret-link-token",
            "comment": {
                "comment_id": "c-7",
                "visibility": "public",
                "author": AGENT.model_dump(mode="json"),
                "channel": "agent",
                "text": "Hi Alice,\n\nThe toner was loose; it is fixed now.",
                "html": "<p>Hi Alice,</p><p>The toner was <em>loose</em>; it is fixed now.</p>",
                "created_at": WHEN.isoformat(),
            },
        },
        "rule": "Agent reply",
    }
    fields.update(changes)
    return send_notification(**fields)


def snapshot(**changes: Any) -> TicketSnapshot:
    return TicketSnapshot.model_validate(ticket(**changes))


def ticket_assigned(handler: str | None = "u-bo", actor: Actor | None = None, **changes: Any) -> TicketAssigned:
    actor = actor or Actor(role="agent", id="u-cia", name="Cia Carlsson")
    return TicketAssigned(
        ticket=snapshot(handler=handler),
        handler=FieldChange(field="handler", old=None, new=handler),
        actor=actor,
        **changes,
    )


def comment_added(mentions: tuple[str, ...], author: Actor | None = None, **changes: Any) -> CommentAdded:
    author = author or Actor(role="agent", id="u-cia", name="Cia Carlsson")
    comment = Comment(
        comment_id="c-9",
        visibility="internal",
        author=author,
        channel="agent",
        text="@Bo can you look at the toner?",
        created_at=WHEN,
    )
    return CommentAdded(ticket=snapshot(), comment=comment, author_role=author.role, mentions=mentions, **changes)


def event_envelope(event: Any, event_id: str = "event-1") -> Envelope:
    return Envelope.wrap(event, event_id=event_id, key=event.ticket.ticket_id)
