"""Value objects shared by several events and commands."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Channel = Literal["email", "portal", "web_form", "api", "kafka", "import", "agent", "system"]
Role = Literal["customer", "agent", "light_agent", "admin", "system"]
Visibility = Literal["public", "internal"]

MAX_TEXT = 1_000_000
"""Largest text field accepted in any message (1 MB of characters)."""

UPLOAD_ID_PATTERN = r"^upload:[0-9a-f]{32}$"
"""Form of the id of a file uploaded to ingest (`POST /api/attachments`): 128 random bits, never guessable."""


class Frozen(BaseModel):
    """Immutable, strict base for value objects."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Address(Frozen):
    """An email address with its display name."""

    email: str = Field(description="The address, lower-cased.", min_length=3, max_length=320)
    name: str = Field(default="", description="Display name as the sender wrote it.", max_length=320)


class Attachment(Frozen):
    """An attachment kept with a ticket (the bytes live in the owning service's store)."""

    attachment_id: str = Field(description="Id to fetch the bytes with.")
    filename: str = Field(description="File name as sent, made safe.", max_length=255)
    content_type: str = Field(description="MIME type as declared.", max_length=255)
    size: int = Field(description="Size in bytes.", ge=0)
    content_id: str | None = Field(default=None, description="Content-ID of an inline part (cid: link).")


class LeftOutAttachment(Frozen):
    """An attachment ingest did not keep because it was too large; the sender is told about it."""

    filename: str = Field(description="File name as sent, made safe.", max_length=255)
    size: int = Field(description="Size in bytes.", ge=0)
    reason: Literal["file_too_large", "message_total_too_large"] = Field(
        description="`file_too_large` (over the per-file limit) or `message_total_too_large` (beyond the "
        "per-message total)."
    )


class Bounce(Frozen):
    """What a delivery status notification (bounce, NDR, delay warning) says about mail we sent."""

    recipients: tuple[str, ...] = Field(default=(), description="Addresses the report is about, lower-cased.")
    action: str = Field(description="`failed`, `delayed`, `delivered`, `relayed`, `expanded` or `unknown`.")
    status: str | None = Field(default=None, description="Enhanced status code, e.g. `5.1.1`, if given.")
    permanent: bool = Field(
        description="True when delivery failed for good: action failed with a 5.x.x status (or none given)."
    )
    diagnostic: str | None = Field(default=None, description="The remote server's words, if given.", max_length=2000)
    original_message_id: str | None = Field(
        default=None, description="Message-ID of the message that bounced, when the report includes it."
    )


class TicketSnapshot(Frozen):
    """The fields of a ticket that consumers of ticket events need, as they are after the event."""

    ticket_id: str = Field(description="Stable id of the ticket (also the Kafka key).")
    number: int = Field(description="Human ticket number, sequential.", ge=1)
    title: str = Field(description="Title (the subject for tickets from email).", max_length=1000)
    status: str = Field(description="Current status key, e.g. `new`, `waiting_for_agent`.")
    priority: str = Field(description="Priority key: `low`, `medium` or `high`.")
    type: str = Field(description="Ticket type key, e.g. `fault`.")
    group: str | None = Field(default=None, description="Response group key, if any.")
    handler: str | None = Field(default=None, description="User id of the handler (assignee), if any.")
    channel: Channel = Field(description="Channel the ticket came in by.")
    mailbox: str | None = Field(default=None, description="Inbound mailbox address the ticket belongs to.")
    requester: Address = Field(description="The contact (customer) who asked.")
    cc: tuple[Address, ...] = Field(default=(), description="Contacts who get a copy ('report to').")
    created_at: datetime = Field(description="When the ticket was created (UTC).")
    updated_at: datetime = Field(description="When the ticket last changed (UTC).")
    version: int = Field(description="Document version after the change (optimistic concurrency).", ge=1)
    link_token: str = Field(description="Secret token of the customer's ticket link.")
    source_message_id: str | None = Field(
        default=None, description="Message-ID of the email that created the ticket, for threading replies."
    )
    source_auto_submitted: bool = Field(
        default=False, description="True when the creating message was automatic (no auto-reply to it)."
    )
    status_category: str | None = Field(
        default=None,
        description="Category of the status: new, open, waiting_for_customer, waiting_for_agent, dormant, "
        "resolved or closed (None in messages from before the field existed).",
    )
    category: str | None = Field(default=None, description="Category key, if any.")
    organisation: str | None = Field(default=None, description="Organisation key of the requester, if any.")
    tags: tuple[str, ...] = Field(default=(), description="Tags.")
    custom: dict[str, Any] = Field(default_factory=dict, description="Custom fields by key.")
    first_response_at: datetime | None = Field(default=None, description="When an agent first replied publicly.")
    resolved_at: datetime | None = Field(default=None, description="When it was last resolved, if it is.")
    last_customer_comment_at: datetime | None = Field(default=None, description="The customer's latest comment.")
    wake_at: datetime | None = Field(default=None, description="When a dormant ticket wakes up (dormant until).")
    recurrence: dict[str, Any] | None = Field(
        default=None, description="`{every: '1w', status: 'new'|'open'}` of a recurring ticket, if it recurs."
    )
    notify_mode: Literal["never", "link", "email"] | None = Field(
        default=None, description="The ticket's own notify mode (None: the global setting)."
    )
    sla: dict[str, Any] = Field(
        default_factory=dict, description="SLA due times written by triggers: first_response_due, resolution_due."
    )


class Actor(Frozen):
    """Who did something."""

    role: Role = Field(description="Role the actor acted in.")
    id: str | None = Field(default=None, description="User or contact id, if known.")
    email: str | None = Field(default=None, description="Email address, if known.")
    name: str = Field(default="", description="Display name.")


class Automation(Frozen):
    """The rule firing that asked for a command, carried on to the events the command causes (loop protection)."""

    rule_id: str = Field(description="Id of the rule that fired.", max_length=100)
    rule_name: str = Field(default="", description="Its name, for the activity log.", max_length=200)
    depth: int = Field(description="Links in the chain of rules firing rules: 1 for a rule fired by a person.", ge=1)
    cause: str = Field(description="event_id of the event the rule fired on.", max_length=200)
