"""The portal's settings, read once from `HELPDESK_*` environment variables in `cli.main`."""

from hdkit.service import ServiceSettings
from hdkit.settings import ServiceTokenSettings
from pydantic import Field, SecretStr


class Settings(ServiceSettings, ServiceTokenSettings):
    """Everything the portal process needs; the secrets have no defaults."""

    mongo_db: str = Field(default="helpdesk_portal", description="The portal's own database (users).")
    http_port: int = Field(default=8000, description="HTTP port of the portal.")
    tickets_url: str = Field(default="http://127.0.0.1:8002", description="Base URL of the tickets service's HTTP API.")
    tickets_timeout: float = Field(
        default=5.0, gt=0, description="Seconds to wait for the tickets service before showing an error."
    )
    ingest_url: str = Field(
        default="http://127.0.0.1:8001", description="Base URL of ingest's HTTP API (attachments, quarantine)."
    )
    ingest_timeout: float = Field(default=10.0, gt=0, description="Seconds to wait for ingest before showing an error.")
    triggers_url: str = Field(
        default="http://127.0.0.1:8003", description="Base URL of the triggers service's HTTP API (the firing log)."
    )
    triggers_timeout: float = Field(
        default=2.0,
        gt=0,
        description="Seconds to wait for triggers before showing a ticket without its automation log.",
    )
    notify_url: str = Field(
        default="http://127.0.0.1:8004",
        description="Base URL of notify's HTTP API (templates, signatures, mail settings, in-app notifications).",
    )
    notify_timeout: float = Field(default=3.0, gt=0, description="Seconds to wait for notify before showing an error.")
    session_secret: SecretStr = Field(
        description="Key that signs session cookies and CSRF tokens (no default, at least 32 characters).",
        min_length=32,
    )
    public_url: str = Field(
        default="http://127.0.0.1:8000", description="URL people reach the portal at (for links we send out)."
    )
    cookie_secure: bool = Field(
        default=False,
        description="Send the session cookie over HTTPS only: False for local http, True in production.",
    )
