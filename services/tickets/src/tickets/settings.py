"""Tickets settings (HELPDESK_* environment variables)."""

from hdkit.service import ServiceSettings
from hdkit.settings import MessageIdSettings, ServiceTokenSettings
from pydantic import Field


class Settings(ServiceSettings, ServiceTokenSettings, MessageIdSettings):
    """Everything the tickets process needs."""

    mongo_db: str = "helpdesk_tickets"
    http_port: int = 8002
    default_mailbox: str = Field(default="support@localhost", description="Mailbox seeded by `tickets migrate`.")
    default_group: str = Field(default="support", description="Group of the seeded mailbox.")
