"""Versioned events and commands exchanged by the helpdesk services over Kafka."""

from contracts import topics
from contracts.commands import SendNotification
from contracts.envelope import (
    Envelope,
    Message,
    Registry,
    UnknownMessageType,
    decode_envelope,
    derived_id,
    new_id,
)
from contracts.events import (
    CommentAdded,
    DeadLettered,
    EmailReceived,
    NotificationFailed,
    NotificationSent,
    TicketCreated,
    TicketUpdated,
)

REGISTRY = Registry()
for _model in (
    EmailReceived,
    TicketCreated,
    CommentAdded,
    TicketUpdated,
    NotificationSent,
    NotificationFailed,
    DeadLettered,
    SendNotification,
):
    REGISTRY.register(_model)

__all__ = [
    "REGISTRY",
    "CommentAdded",
    "DeadLettered",
    "EmailReceived",
    "Envelope",
    "Message",
    "NotificationFailed",
    "NotificationSent",
    "Registry",
    "SendNotification",
    "TicketCreated",
    "TicketUpdated",
    "UnknownMessageType",
    "decode_envelope",
    "derived_id",
    "new_id",
    "topics",
]
