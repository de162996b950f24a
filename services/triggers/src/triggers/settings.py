"""Settings of the triggers service (environment variables `HELPDESK_*`)."""

from hdkit.service import ServiceSettings
from hdkit.settings import ServiceTokenSettings
from pydantic import Field
from pydantic_settings import SettingsConfigDict


class Settings(ServiceSettings, ServiceTokenSettings):
    """Everything the triggers process reads from its environment, once, in `cli.main`."""

    # Restated because the mixins' own configs would otherwise compete for the env prefix.
    model_config = SettingsConfigDict(env_prefix="HELPDESK_", extra="ignore")

    mongo_db: str = Field(default="helpdesk_triggers", description="Database of the triggers service.")
    http_port: int = Field(default=8003, description="HTTP port (rules API, /health, /ready, /metrics).")
    public_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Public base URL of the portal, for ticket links in mail.",
    )
    default_mailbox: str = Field(
        default="support@localhost",
        description="Helpdesk address used as From for tickets that did not come in through a mailbox.",
    )
    max_attachment_bytes: int = Field(
        default=5 * 1024 * 1024,
        ge=1,
        description="Ingest's per-file attachment limit, named in the notice of attachments left out "
        "(the same variable as ingest's, so one value serves both).",
    )
    max_attachments_bytes_per_message: int = Field(
        default=20 * 1024 * 1024,
        ge=1,
        description="Ingest's per-message attachment total, named in the notice of attachments left out "
        "(the same variable as ingest's).",
    )
    portal_url: str = Field(
        default="http://127.0.0.1:8000",
        description="The portal, for its staff list (handler and group addresses, round-robin members).",
    )
    staff_refresh_seconds: float = Field(default=60.0, gt=0, description="How often the staff list is re-read.")
    timer_poll_seconds: float = Field(
        default=1.0, gt=0, le=60, description="How often the scheduler looks for due timers (time rules, webhooks)."
    )
    timer_batch: int = Field(default=200, ge=1, le=5000, description="Timers claimed per poll.")
    firing_retention_days: int = Field(
        default=30, ge=1, description="Days the firing log (and the events dry runs replay) is kept."
    )
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=120, description="Timeout of one webhook call.")
    rules_cache_seconds: float = Field(
        default=5.0, ge=0, description="How long a process keeps the active rules in memory before reloading."
    )
