"""Settings of the portal itself that an admin changes (the other services keep their own)."""

from dataclasses import asdict, dataclass
from typing import Any, Protocol

SETTINGS = "settings"
DOC_ID = "portal"


@dataclass(frozen=True)
class SiteSettings:
    """How the agent workspace behaves for everyone."""

    confirm_before_send: bool = False
    """Ask the agent to confirm before a public reply goes to the customer."""


class SiteSettingsStore(Protocol):
    """Where the portal's settings are kept (`MongoSiteSettings`; tests use `MemorySiteSettings`)."""

    async def get(self) -> SiteSettings:
        """Return the current settings (defaults when none were saved)."""

    async def put(self, settings: SiteSettings) -> None:
        """Replace the settings."""


def _from_doc(doc: dict[str, Any] | None) -> SiteSettings:
    if not doc:
        return SiteSettings()
    return SiteSettings(confirm_before_send=bool(doc.get("confirm_before_send", False)))


class MongoSiteSettings:
    """The settings as one document in the portal's `settings` collection."""

    def __init__(self, db: Any) -> None:
        self.collection = db[SETTINGS]

    async def get(self) -> SiteSettings:
        """Return the current settings (defaults when none were saved)."""
        return _from_doc(await self.collection.find_one({"_id": DOC_ID}))

    async def put(self, settings: SiteSettings) -> None:
        """Replace the settings."""
        await self.collection.replace_one({"_id": DOC_ID}, {"_id": DOC_ID, **asdict(settings)}, upsert=True)


class MemorySiteSettings:
    """The settings in memory, for tests."""

    def __init__(self, settings: SiteSettings | None = None) -> None:
        self.settings = settings or SiteSettings()

    async def get(self) -> SiteSettings:
        """Return the current settings."""
        return self.settings

    async def put(self, settings: SiteSettings) -> None:
        """Replace the settings."""
        self.settings = settings
