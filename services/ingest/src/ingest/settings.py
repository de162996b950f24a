"""Ingest settings (HELPDESK_* environment variables)."""

from hdkit.service import ServiceSettings
from hdkit.settings import ServiceTokenSettings
from pydantic import Field


class Settings(ServiceSettings, ServiceTokenSettings):
    """Everything the ingest process needs."""

    mongo_db: str = "helpdesk_ingest"
    http_port: int = 8001
    smtp_host: str = Field(default="127.0.0.1", description="SMTP receiver bind address.")
    smtp_port: int = Field(default=2525, description="SMTP receiver port (an MTA delivers or forwards here).")
    lmtp_port: int | None = Field(default=None, description="LMTP receiver port (off when unset).")
    smtp_hostname: str = Field(default="helpdesk.localhost", description="Name the receiver greets with.")
    max_message_bytes: int = Field(
        default=25 * 1024 * 1024, description="Hard size limit; larger messages get 552 at SMTP time."
    )
    max_attachment_bytes: int = Field(
        default=5 * 1024 * 1024,
        description="Largest attachment kept per file; larger ones are left out with a note.",
    )
    tickets_url: str = Field(default="http://127.0.0.1:8002", description="Tickets service, for the mailbox list.")
    mailbox_refresh_seconds: float = Field(default=30.0, description="How often the mailbox list is re-read.")
    loop_domain: str = Field(
        default="helpdesk.localhost", description="Value of our X-Helpdesk-Loop header (the mail domain)."
    )
