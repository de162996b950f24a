"""Kafka topic names: the only place they are spelled out."""

from typing import Final

INBOUND_EMAIL: Final = "helpdesk.ingest.inbound-email.v1"
"""Parsed inbound mail (`EmailReceived`), from ingest to tickets; key: the thread key."""

TICKET_COMMANDS: Final = "helpdesk.tickets.commands.v1"
"""Commands for the tickets service from integrations and other services; key: the ticket id."""

TICKET_EVENTS: Final = "helpdesk.tickets.events.v1"
"""Domain events of tickets (`TicketCreated`, `CommentAdded`, `TicketUpdated`); key: the ticket id.

`AddressUndeliverable` / `AddressDeliverable` (an address's bounce mark) travel here too, keyed by the address."""

NOTIFY_COMMANDS: Final = "helpdesk.notify.commands.v1"
"""`SendNotification` commands from triggers to notify; key: the ticket id."""

NOTIFY_EVENTS: Final = "helpdesk.notify.events.v1"
"""`NotificationSent` / `NotificationFailed` from notify; key: the ticket id."""

AUTOMATION_EVENTS: Final = "helpdesk.triggers.events.v1"
"""Events of triggers: `CustomEventPublished` (a rule's own event), `SlaWarned`; key: the ticket id."""

DEAD_LETTER: Final = "helpdesk.dead-letter.v1"
"""Messages a consumer could not accept, with the reason (`DeadLettered`); key: the original key."""

ALL: Final = (
    INBOUND_EMAIL,
    TICKET_COMMANDS,
    TICKET_EVENTS,
    NOTIFY_COMMANDS,
    NOTIFY_EVENTS,
    AUTOMATION_EVENTS,
    DEAD_LETTER,
)
