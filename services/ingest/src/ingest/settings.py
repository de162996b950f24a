"""Ingest settings (HELPDESK_* environment variables)."""

from enum import StrEnum

from hdkit.service import ServiceSettings
from hdkit.settings import ServiceTokenSettings
from pydantic import BaseModel, ConfigDict, Field, SecretStr


class ImapSecurity(StrEnum):
    """How the IMAP connection is protected."""

    NONE = "none"
    STARTTLS = "starttls"
    SSL = "ssl"


class ImapMode(StrEnum):
    """How an IMAP account learns about new mail."""

    IDLE = "idle"
    POLL = "poll"


class ImapAccount(BaseModel):
    """One IMAP mailbox the ingest service reads; its mail belongs to one helpdesk mailbox address."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(default="", description="Label in logs and metrics; defaults to user@host/folder.")
    host: str = Field(description="IMAP server host name.")
    port: int | None = Field(default=None, description="IMAP port; defaults to 993 for ssl, 143 otherwise.")
    security: ImapSecurity = Field(default=ImapSecurity.SSL, description="none, starttls or ssl.")
    user: str = Field(description="Login name.")
    password: SecretStr = Field(description="Login password.")
    folder: str = Field(default="INBOX", description="Folder to read.")
    mailbox: str = Field(description="The helpdesk mailbox address this mail belongs to (e.g. support@example.com).")
    mode: ImapMode = Field(default=ImapMode.IDLE, description="idle (push, falls back to poll) or poll.")
    interval_seconds: float = Field(
        default=60.0,
        gt=0,
        description="Poll interval; in idle mode, how often IDLE is renewed and the folder rescanned.",
    )
    move_to: str | None = Field(default=None, description="Folder to move handled messages to (after marking).")
    timeout_seconds: float = Field(default=60.0, gt=0, description="Time limit for connecting and for each command.")
    backoff_max_seconds: float = Field(default=300.0, gt=0, description="Longest wait between reconnect attempts.")

    @property
    def label(self) -> str:
        """Return the name used in logs and metrics."""
        return self.name or f"{self.user}@{self.host}/{self.folder}"

    @property
    def effective_port(self) -> int:
        """Return the configured port, or the standard one for the security mode."""
        if self.port is not None:
            return self.port
        return 993 if self.security is ImapSecurity.SSL else 143


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
    max_attachments_bytes_per_message: int = Field(
        default=20 * 1024 * 1024,
        description="Largest total of one message's kept attachments; files past it are left out with a note.",
    )
    max_upload_bytes: int = Field(
        default=25 * 1024 * 1024,
        ge=1,
        description="Hard size limit of one file uploaded through the portal (`POST /api/attachments`); the "
        "admins' `attachment_limit_mb` setting in tickets can only be lower.",
    )
    tickets_url: str = Field(default="http://127.0.0.1:8002", description="Tickets service, for the mailbox list.")
    mailbox_refresh_seconds: float = Field(default=30.0, description="How often the mailbox list is re-read.")
    imap_accounts: list[ImapAccount] = Field(
        default_factory=list,
        description="IMAP mailboxes to read (JSON list in HELPDESK_IMAP_ACCOUNTS); see docs/imap.md.",
    )
    loop_domain: str = Field(
        default="helpdesk.localhost", description="Value of our X-Helpdesk-Loop header (the mail domain)."
    )
