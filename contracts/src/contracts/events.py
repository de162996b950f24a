"""Events: facts in the past tense. Each docstring says who sends it and who consumes it."""

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from contracts.envelope import Message
from contracts.models import (
    MAX_TEXT,
    Actor,
    Address,
    Attachment,
    Automation,
    Bounce,
    Channel,
    Frozen,
    LeftOutAttachment,
    Role,
    TicketSnapshot,
    Visibility,
)


class EmailReceived(Message):
    """An email arrived at a mailbox and Kafka has it. Sent by ingest; consumed by tickets."""

    TYPE = "EmailReceived"
    VERSION = 1

    mailbox: str = Field(description="The helpdesk address it was delivered to (lower-cased).")
    message_id: str | None = Field(description="Its Message-ID without angle brackets, if it had one.")
    in_reply_to: tuple[str, ...] = Field(default=(), description="Message-IDs from In-Reply-To.")
    references: tuple[str, ...] = Field(default=(), description="Message-IDs from References, oldest first.")
    subject: str = Field(description="Decoded subject.", max_length=10_000)
    sender: Address = Field(description="From, decoded.")
    to: tuple[Address, ...] = Field(default=(), description="To addresses.")
    cc: tuple[Address, ...] = Field(default=(), description="Cc addresses.")
    sent_at: datetime | None = Field(default=None, description="The Date header, if readable.")
    received_at: datetime = Field(description="When ingest accepted it (UTC).")
    text: str = Field(description="Plain-text body in full, decoded from its charset.", max_length=MAX_TEXT)
    html: str | None = Field(default=None, description="HTML body, sanitised (safe to show).", max_length=MAX_TEXT)
    auto_submitted: bool = Field(default=False, description="True for auto-replies, bulk and list mail, bounces.")
    auto_reason: str | None = Field(default=None, description="Why it counts as automatic.")
    attachments: tuple[Attachment, ...] = Field(default=(), description="Attachments kept by ingest.")
    text_new: str | None = Field(
        default=None,
        description="The new part of `text`: quoted history and signature folded away (None from older ingest).",
        max_length=MAX_TEXT,
    )
    bounce: Bounce | None = Field(
        default=None, description="What a delivery status notification reports, when the email is one."
    )
    left_out: tuple[LeftOutAttachment, ...] = Field(
        default=(), description="Attachments ingest left out for their size (a note in `text` says so too)."
    )
    raw_id: str = Field(description="Id of the raw message in ingest's store, for audit and reprocessing.")
    size: int = Field(description="Size of the raw message in bytes.", ge=0)


class TicketCreated(Message):
    """A ticket was created. Sent by tickets; consumed by triggers, portal and integrations."""

    TYPE = "TicketCreated"
    VERSION = 1

    ticket: TicketSnapshot = Field(description="The ticket as created.")
    description: str = Field(default="", description="First message text.", max_length=MAX_TEXT)
    actor: Actor = Field(description="Who created it.")
    cause: str | None = Field(default=None, description="event_id of the input that created it.")
    comment_id: str | None = Field(
        default=None, description="Id of the first comment, when the ticket began with one (tickets from email)."
    )
    left_out: tuple[LeftOutAttachment, ...] = Field(
        default=(), description="Attachments of the creating email that ingest left out for their size."
    )
    attachments: tuple[Attachment, ...] = Field(
        default=(), description="Files that came with the first message (its email's, or uploaded with the form)."
    )


class Comment(Frozen):
    """One entry of a ticket's conversation."""

    comment_id: str = Field(description="Id of the comment.")
    visibility: Visibility = Field(description="`public` (customer sees it) or `internal` (agents only).")
    author: Actor = Field(description="Who wrote it.")
    channel: Channel = Field(description="How it came in.")
    text: str = Field(description="Plain text.", max_length=MAX_TEXT)
    text_new: str | None = Field(
        default=None,
        description="For email: the new part of `text`, quoted history and signature folded away (None: all new).",
        max_length=MAX_TEXT,
    )
    html: str | None = Field(default=None, description="Sanitised HTML, if any.", max_length=MAX_TEXT)
    message_id: str | None = Field(default=None, description="Message-ID of the email it came from, if any.")
    auto_submitted: bool = Field(default=False, description="True when it came from an automatic message.")
    left_out: tuple[LeftOutAttachment, ...] = Field(
        default=(), description="For email: attachments ingest left out for their size."
    )
    attachments: tuple[Attachment, ...] = Field(
        default=(), description="Files that came with it (bytes in ingest: `GET /api/attachments/{attachment_id}`)."
    )
    created_at: datetime = Field(description="When it was added (UTC).")


class CommentAdded(Message):
    """A comment joined a ticket's conversation. Sent by tickets; consumed by triggers and notify."""

    TYPE = "CommentAdded"
    VERSION = 1

    ticket: TicketSnapshot = Field(description="The ticket after the comment (and any status change).")
    comment: Comment = Field(description="The comment.")
    author_role: Role = Field(description="Role of the author (the counterpart rule looks at it).")
    kind: Literal["public_reply", "internal_comment", "customer_comment", "solution_note"] | None = Field(
        default=None, description="What sort of entry it is (None in messages from before the field existed)."
    )
    threading: str | None = Field(default=None, description="How an email was paired with the ticket, and why.")
    mentions: tuple[str, ...] = Field(
        default=(), description="User ids of the staff @mentioned in the comment (in-app notifications)."
    )
    automation: Automation | None = Field(
        default=None, description="The rule firing behind it, when a rule's command caused it (loop protection)."
    )


class FieldChange(Frozen):
    """One field's old and new value."""

    field: str = Field(description="Field name, e.g. `status`.")
    old: Any = Field(description="Value before.")
    new: Any = Field(description="Value after.")


class TicketUpdated(Message):
    """Fields of a ticket changed. Sent by tickets; consumed by triggers (after-update rules) and portal."""

    TYPE = "TicketUpdated"
    VERSION = 1

    ticket: TicketSnapshot = Field(description="The ticket after the change.")
    changes: tuple[FieldChange, ...] = Field(description="Every field that changed.", min_length=1)
    actor: Actor = Field(description="Who changed it.")
    reason: str | None = Field(default=None, description="Why, when a rule changed it.")
    automation: Automation | None = Field(
        default=None, description="The rule firing behind it, when a rule's command caused it (loop protection)."
    )


class TicketAssigned(Message):
    """A ticket's group or handler changed. Sent by tickets; consumed by triggers (notify the handler) and portal."""

    TYPE = "TicketAssigned"
    VERSION = 1

    ticket: TicketSnapshot = Field(description="The ticket after the change.")
    group: FieldChange | None = Field(default=None, description="The group's old and new value, if it changed.")
    handler: FieldChange | None = Field(default=None, description="The handler's old and new value, if it changed.")
    actor: Actor = Field(description="Who assigned it.")
    automation: Automation | None = Field(
        default=None, description="The rule firing behind it, when a rule's command caused it (loop protection)."
    )


class TicketClosed(Message):
    """A ticket was closed. Sent by tickets; consumed by triggers, portal and statistics."""

    TYPE = "TicketClosed"
    VERSION = 1

    ticket: TicketSnapshot = Field(description="The ticket as closed.")
    actor: Actor = Field(description="Who closed it (the system when a parent's closing closed it).")
    parent: int | None = Field(default=None, description="Number of the parent whose closing closed this one.")
    automation: Automation | None = Field(
        default=None, description="The rule firing behind it, when a rule's command caused it (loop protection)."
    )


class TicketLinked(Message):
    """A ticket was linked to a parent ticket, or unlinked. Sent by tickets; consumed by triggers and portal."""

    TYPE = "TicketLinked"
    VERSION = 1

    ticket: TicketSnapshot = Field(description="The child ticket after the change.")
    parent: int | None = Field(description="Number of the parent now (null when unlinked).")
    previous_parent: int | None = Field(default=None, description="Number of the parent before, if any.")
    actor: Actor = Field(description="Who linked it.")


class TicketMerged(Message):
    """A ticket was merged into another and closed. Sent by tickets; consumed by triggers and portal."""

    TYPE = "TicketMerged"
    VERSION = 1

    ticket: TicketSnapshot = Field(description="The merged (closed) ticket.")
    into: int = Field(description="Number of the surviving ticket.")
    actor: Actor = Field(description="Who merged it.")


class TicketDeleted(Message):
    """A ticket was deleted with its conversation. Sent by tickets; consumed by triggers, notify and portal."""

    TYPE = "TicketDeleted"
    VERSION = 1

    ticket_id: str = Field(description="Id of the deleted ticket.")
    number: int = Field(description="Its number (never handed out again).", ge=1)
    actor: Actor = Field(description="The admin who deleted it.")
    deleted_at: datetime = Field(description="When (UTC).")


class NotificationSent(Message):
    """An email left for its recipient. Sent by notify; consumed by tickets (threading, activity log)."""

    TYPE = "NotificationSent"
    VERSION = 1

    notification_id: str = Field(description="Id derived from what caused the notification.")
    ticket_id: str = Field(description="Ticket the mail is about.")
    message_id: str = Field(description="Our Message-ID of the mail, without angle brackets.")
    to: Address = Field(description="Recipient.")
    subject: str = Field(description="Subject as sent.")
    template: str = Field(description="Template key used.")
    sent_at: datetime = Field(description="When the SMTP server accepted it (UTC).")


class NotificationFailed(Message):
    """An email could not be sent. Sent by notify; consumed by tickets (shown on the ticket)."""

    TYPE = "NotificationFailed"
    VERSION = 1

    notification_id: str = Field(description="Id of the notification.")
    ticket_id: str = Field(description="Ticket the mail is about.")
    to: Address = Field(description="Recipient.")
    reason: str = Field(description="What went wrong.", max_length=10_000)
    permanent: bool = Field(description="True when retrying cannot help (5xx, suppressed address).")


class DeadLettered(Message):
    """A consumer could not accept a message. Sent by any service to the dead-letter topic; read by SREs."""

    TYPE = "DeadLettered"
    VERSION = 1

    service: str = Field(description="Service that refused it.")
    topic: str = Field(description="Topic it came from.")
    partition: int = Field(description="Partition it came from.")
    offset: int = Field(description="Offset it had.")
    key: str | None = Field(default=None, description="Its key, decoded as UTF-8.")
    value: str = Field(description="Its value, decoded as UTF-8 with replacement characters.")
    headers: dict[str, str] = Field(default_factory=dict, description="Its headers, decoded.")
    reason: str = Field(description="Why it was refused.", max_length=100_000)
    error_type: str = Field(description="Name of the error.")
    failed_at: datetime = Field(description="When it was refused (UTC).")


class AddressUndeliverable(Message):
    """Mail to an address bounced for good. Sent by tickets (key: the address); consumed by notify (suppresses mail)."""

    TYPE = "AddressUndeliverable"
    VERSION = 1

    address: str = Field(description="The address, lower-cased.", min_length=3, max_length=320)
    since: datetime = Field(description="When tickets marked it undeliverable (UTC).")
    status: str | None = Field(default=None, description="Enhanced status code of the report, e.g. `5.1.1`.")
    diagnostic: str = Field(default="", description="The remote server's words, if given.", max_length=2000)
    cause: str = Field(description="event_id of the delivery status notification that reported it.")


class AddressDeliverable(Message):
    """An agent lifted an address's undeliverable mark. Sent by tickets (key: the address); consumed by notify."""

    TYPE = "AddressDeliverable"
    VERSION = 1

    address: str = Field(description="The address, lower-cased.", min_length=3, max_length=320)
    actor: Actor = Field(description="Who lifted the mark.")
    at: datetime = Field(description="When it was lifted (UTC).")


class CustomEventPublished(Message):
    """A rule's `publish_event` action fired. Sent by triggers; consumed by integrations (and rules)."""

    TYPE = "CustomEventPublished"
    VERSION = 1

    name: str = Field(description="The event name the admin chose, e.g. `vip.ticket_opened`.", max_length=100)
    payload: dict[str, Any] = Field(default_factory=dict, description="The values the rule added.")
    ticket: TicketSnapshot = Field(description="The ticket the rule fired on, as it was then.")
    automation: Automation = Field(description="The rule firing that published it.")


class SlaWarned(Message):
    """An SLA target of a ticket is near or past. Sent by triggers; consumed by triggers' rules, portal, statistics.

    Rules act on it through the events `sla.near_breach` and `sla.breached`.
    """

    TYPE = "SlaWarned"
    VERSION = 1

    ticket: TicketSnapshot = Field(description="The ticket as triggers last saw it.")
    metric: Literal["first_response", "resolution"] = Field(description="Which target.")
    stage: Literal["near_breach", "breached"] = Field(
        description="`near_breach` before the due time, `breached` at it."
    )
    policy: str = Field(description="Id of the SLA policy.", max_length=100)
    due_at: datetime = Field(description="When the target falls due (UTC).")
