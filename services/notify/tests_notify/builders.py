"""Commands as tests need them: the auto-reply for ticket #1001 unless told otherwise."""

from typing import Any

from contracts import Envelope, SendNotification

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
