"""Tickets settings (HELPDESK_* environment variables)."""

from pydantic import Field

from hdkit.service import ServiceSettings
from hdkit.settings import MessageIdSettings, ServiceTokenSettings


class Settings(ServiceSettings, ServiceTokenSettings, MessageIdSettings):
    """Everything the tickets process needs."""

    mongo_db: str = "helpdesk_tickets"
    http_port: int = 8002
    default_mailbox: str = Field(default="support@localhost", description="Mailbox seeded by `tickets migrate`.")
    default_group: str = Field(default="support", description="Group of the seeded mailbox.")
