"""Events as tests need them: a new email ticket unless told otherwise."""

from datetime import UTC, datetime
from typing import Any

from contracts.models import Actor, Address, TicketSnapshot

from contracts import Envelope, TicketCreated

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


def envelope_of(event: TicketCreated, event_id: str = "evt-1") -> Envelope:
    return Envelope.wrap(event, event_id=event_id, key=event.ticket.ticket_id)


def event_dict(**changes: Any) -> dict[str, Any]:
    return ticket_created(**changes).model_dump(mode="json")
