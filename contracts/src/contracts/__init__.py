"""Versioned events and commands exchanged by the helpdesk services over Kafka."""

from contracts import topics
from contracts.commands import (
    AddComment,
    CloseTicket,
    CreateTicket,
    FollowTicket,
    LinkTicket,
    RecordChild,
    SendNotification,
    UpdateTicket,
)
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
    TicketAssigned,
    TicketClosed,
    TicketCreated,
    TicketLinked,
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
    TicketAssigned,
    TicketClosed,
    CreateTicket,
    UpdateTicket,
    AddComment,
    FollowTicket,
    CloseTicket,
    LinkTicket,
    RecordChild,
    TicketLinked,
):
    REGISTRY.register(_model)

__all__ = [
    "REGISTRY",
    "AddComment",
    "CloseTicket",
    "CreateTicket",
    "FollowTicket",
    "LinkTicket",
    "RecordChild",
    "TicketLinked",
    "TicketAssigned",
    "TicketClosed",
    "UpdateTicket",
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
