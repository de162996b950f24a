"""Settings of the notify service (environment variables `HELPDESK_*`)."""

from hdkit.service import ServiceSettings
from hdkit.settings import MessageIdSettings, ServiceTokenSettings
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class OutboundSmtpSettings(BaseSettings):
    """Where mail goes out."""

    outbound_smtp_host: str = Field(default="127.0.0.1", description="SMTP server for outgoing mail.")
    outbound_smtp_port: int = Field(default=1025, description="Its port.")
    outbound_smtp_username: str | None = Field(default=None, description="Login, if the server wants one.")
    outbound_smtp_password: SecretStr | None = Field(default=None, description="Password for the login.")
    outbound_smtp_starttls: bool = Field(default=False, description="Upgrade the connection with STARTTLS.")
    outbound_smtp_tls: bool = Field(default=False, description="Connect with TLS from the start (port 465).")
    outbound_smtp_timeout: float = Field(default=30.0, gt=0, description="Seconds to wait for the server.")


class Settings(ServiceSettings, ServiceTokenSettings, MessageIdSettings, OutboundSmtpSettings):
    """Everything the notify process reads from its environment, once, in `cli.main`."""

    # Restated because the mixins' own configs would otherwise compete for the env prefix.
    model_config = SettingsConfigDict(env_prefix="HELPDESK_", extra="ignore")

    mongo_db: str = Field(default="helpdesk_notify", description="Database of the notify service.")
    http_port: int = Field(default=8004, description="HTTP port (notifications API, /health, /ready, /metrics).")
    public_url: str = Field(default="http://127.0.0.1:8000", description="Public base URL of the portal.")
    mailbox_names: dict[str, str] = Field(
        default_factory=dict,
        description='From display names by mailbox, as JSON: {"support@example.com": "Example Support"}.',
    )
    mailbox_signatures: dict[str, str] = Field(
        default_factory=dict,
        description="Signatures by mailbox, as JSON: "
        '{"support@example.com": "Example Ltd\\nSupport: +46 8 123 45 67"}; the mailbox layer of the signatures '
        "for a mailbox with none stored through the API (`PUT /signatures`).",
    )
    default_from_name: str = Field(default="Support", description="Display name for mailboxes not listed.")
    ingest_url: str = Field(
        default="http://127.0.0.1:8001", description="Ingest service, for the bytes of the files a reply carries."
    )
    max_attachments_bytes_per_message: int = Field(
        default=20 * 1024 * 1024,
        ge=0,
        description="Largest total of the files attached to one mail (the same limit as ingest's for mail in); "
        "files past it are named in the mail with the ticket link instead.",
    )
    smtp_max_attempts: int = Field(
        default=8,
        ge=1,
        description="Tries for a mail the server keeps answering 4xx about, before it counts as failed.",
    )
    smtp_retry_max_delay: float = Field(
        default=30.0, ge=0, description="Longest pause before retrying a temporary SMTP failure (seconds)."
    )
    auto_mail_per_ticket_per_hour: int = Field(
        default=5, ge=0, description="Automatic mails (auto-replies, rule mail) one ticket may send an hour; 0: no cap."
    )
    auto_mail_per_recipient_per_hour: int = Field(
        default=10, ge=0, description="Automatic mails one address may receive an hour; 0: no cap."
    )
    auto_mail_per_recipient_per_day: int = Field(
        default=30, ge=0, description="Automatic mails one address may receive a day; 0: no cap."
    )
    staff_notices_per_hour: int = Field(
        default=60,
        ge=0,
        description="Notices (handler, group) one member of staff may receive an hour, counted apart from "
        "the caps above; 0: no cap.",
    )
