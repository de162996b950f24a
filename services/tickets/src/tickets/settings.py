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
    portal_url: str = Field(
        default="http://127.0.0.1:8000", description="The portal, for its staff list (staff mail counts as theirs)."
    )
    staff_refresh_seconds: float = Field(default=60.0, gt=0, description="How often the staff list is re-read.")
    counts_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        description="Seconds a view count per group is shared by all viewers before the store is asked again (0: off).",
    )
    list_cache_seconds: float = Field(
        default=2.0,
        ge=0,
        description="Seconds a queue page is shared by the viewers of the same query; a ticket written by this"
        " process drops it at once (0: off).",
    )
    list_rows_kept: int = Field(
        default=20_000,
        ge=0,
        description="List rows kept in memory, each with its ticket's revision: a queue page reads only the"
        " keys of its rows from the store, and whole rows only of tickets changed since (0: always read rows).",
    )
