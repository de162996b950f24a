"""Commands: requests in the imperative. Each docstring says who sends it and who handles it."""

from typing import Any, Literal

from pydantic import Field

from contracts.envelope import Message
from contracts.models import Address


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
