"""Commands: requests in the imperative. Each docstring says who sends it and who handles it."""

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from contracts.envelope import Message
from contracts.models import MAX_TEXT, Actor, Address, Attachment, Automation, Channel


class SendNotification(Message):
    """Send one templated email about a ticket. Sent by triggers; handled by notify."""

    TYPE = "SendNotification"
    VERSION = 1

    notification_id: str = Field(description="Id derived from the cause; the same id is never sent twice.")
    ticket_id: str = Field(description="Ticket the mail is about.")
    ticket_number: int = Field(description="Ticket number for the subject token.", ge=1)
    template: str = Field(description="Template key, e.g. `auto_reply`.", min_length=1, max_length=100)
    language: str = Field(default="en", description="Language of the template to use.", max_length=10)
    to: Address = Field(description="Recipient.")
    mailbox: str = Field(description="Helpdesk address used as From and Reply-To.")
    in_reply_to: str | None = Field(default=None, description="Message-ID this mail answers (threading).")
    references: tuple[str, ...] = Field(default=(), description="Message-IDs of the thread, oldest first.")
    auto_submitted: Literal["auto-replied", "auto-generated"] | None = Field(
        default=None, description="RFC 3834 value for automatic mail; None for mail a person sent."
    )
    context: dict[str, Any] = Field(default_factory=dict, description="Values for the template's tags.")
    rule: str | None = Field(default=None, description="Name of the rule that asked for it, for the log.")
    cc: tuple[Address, ...] = Field(default=(), description="Copies (the ticket's CC list on a reply), in Cc.")
    audience: Literal["customer", "staff", "other"] = Field(
        default="customer",
        description="Who reads it: `customer` mail follows the notify mode (never / link / email); `staff` mail "
        "(handler, group) and `other` (a fixed address) always goes out.",
    )
    on_behalf_of: Actor | None = Field(
        default=None, description="The agent the mail speaks for (an agent's reply): their name and personal signature."
    )


class TicketCommand(Message):
    """Common fields of every ticket command. Handled by tickets (from HTTP and from Kafka alike)."""

    command_id: str = Field(
        description="Idempotency key chosen by the sender: the same command id changes a ticket once.",
        min_length=8,
        max_length=100,
    )
    actor: Actor = Field(description="Who asks; the tickets service checks what this person may do.")
    automation: Automation | None = Field(
        default=None, description="The rule firing that sent the command, if a rule did (copied onto its events)."
    )


class TargetedCommand(TicketCommand):
    """A command about one existing ticket."""

    number: int = Field(description="Number of the ticket.", ge=1, le=10**12)
    expected_version: int | None = Field(
        default=None,
        description="Version the change is based on; a stale one is refused or merged (the strictness setting).",
        ge=1,
    )


FieldValue = str | int | float | bool | datetime | None | list[str] | list[Address] | dict[str, Any]


class CreateTicket(TicketCommand):
    """Create a ticket (from a web form, the portal, the API, an integration or an import)."""

    TYPE = "CreateTicket"
    VERSION = 1

    channel: Channel = Field(default="api", description="Channel the ticket comes in by.")
    template: str | None = Field(default=None, description="Key of a ticket template to start from.", max_length=40)
    requester: Address | None = Field(default=None, description="The contact who asks (customers: themselves).")
    fields: dict[str, FieldValue] = Field(
        default_factory=dict,
        description="Field values: title, description, type, status, priority, category, group, handler, "
        "organisation, cc, tags, parent (number), dormant_until, recurrence, custom.<key>.",
    )
    attachments: tuple[Attachment, ...] = Field(
        default=(), description="Files that come with the first message (uploaded to ingest beforehand)."
    )


class UpdateTicket(TargetedCommand):
    """Change fields of a ticket (assigning and moving included)."""

    TYPE = "UpdateTicket"
    VERSION = 1

    fields: dict[str, FieldValue] = Field(description="The fields to change and their new values.", min_length=1)


class AddComment(TargetedCommand):
    """Add to a ticket's conversation."""

    TYPE = "AddComment"
    VERSION = 1

    kind: Literal["public_reply", "internal_comment", "customer_comment", "solution_note"] = Field(
        description="Public reply (mailed to the customer), internal comment, the customer's comment, solution note."
    )
    text: str = Field(description="Plain text.", min_length=1, max_length=MAX_TEXT)
    html: str | None = Field(default=None, description="HTML (sanitised before it is stored).", max_length=MAX_TEXT)
    channel: Channel = Field(default="agent", description="Where it was written.")
    attachments: tuple[Attachment, ...] = Field(
        default=(), description="Files that come with the comment (uploaded to ingest, or kept from its email)."
    )


class FollowTicket(TargetedCommand):
    """Start or stop following a ticket (followers are notified of its changes)."""

    TYPE = "FollowTicket"
    VERSION = 1

    follow: bool = Field(description="True to follow, False to unfollow.")


class CloseTicket(TargetedCommand):
    """Close a ticket, and its children where the setting says so."""

    TYPE = "CloseTicket"
    VERSION = 1

    close_children: bool | None = Field(default=None, description="Override the global setting for children.")


class LinkTicket(TargetedCommand):
    """Make a ticket the child of a parent ticket (a major incident), or unlink it (`parent` null)."""

    TYPE = "LinkTicket"
    VERSION = 1

    parent: int | None = Field(description="Number of the parent ticket; null removes the link.", ge=1, le=10**12)


class RecordChild(TargetedCommand):
    """Keep a parent's list of children in step with a link or unlink. Sent by tickets to itself (outbox)."""

    TYPE = "RecordChild"
    VERSION = 1

    child: int = Field(description="Number of the child ticket.", ge=1, le=10**12)
    linked: bool = Field(description="True when the child was linked, False when unlinked.")


class DeleteTicket(TargetedCommand):
    """Delete a ticket for good (admins, with a confirmation token asked for just before)."""

    TYPE = "DeleteTicket"
    VERSION = 1

    confirmation: str = Field(description="Token from the delete-confirmation request.", min_length=10, max_length=200)


class MergeTicket(TargetedCommand):
    """Merge a ticket into another: its conversation moves to the survivor, it closes and points there."""

    TYPE = "MergeTicket"
    VERSION = 1

    into: int = Field(description="Number of the ticket that survives.", ge=1, le=10**12)


class AbsorbTicket(TargetedCommand):
    """Copy a merged ticket's conversation into the survivor. Sent by tickets to itself (outbox)."""

    TYPE = "AbsorbTicket"
    VERSION = 1

    source: int = Field(description="Number of the ticket merged into this one.", ge=1, le=10**12)


class SplitTicket(TargetedCommand):
    """Move part of a ticket's conversation into a new ticket."""

    TYPE = "SplitTicket"
    VERSION = 1

    comment_ids: tuple[str, ...] = Field(
        description="Comments that start the new ticket.", min_length=1, max_length=500
    )
    title: str | None = Field(
        default=None, description="Title of the new ticket (default: the old one).", max_length=1000
    )
