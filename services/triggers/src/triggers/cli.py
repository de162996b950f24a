"""`triggers run | migrate | asyncapi --out FILE | openapi --out FILE`."""

from hdkit.cli import service_main
from hdkit.mongo import make_client
from hdkit.service import ServiceSettings

from triggers.app import create_app
from triggers.domain import default_rules
from triggers.settings import Settings
from triggers.store import Store


async def migrate(settings: ServiceSettings) -> None:
    """Create indexes and add the default rules that are missing (an admin's edits are kept)."""
    client = make_client(settings.mongo_url)
    try:
        store = Store(client[settings.mongo_db])
        await store.ensure_indexes()
        added = await store.seed_rules(default_rules())
    finally:
        await client.close()
    print(f"triggers: indexes ready, {added} default rule(s) added")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `triggers` command."""
    service_main("triggers", settings_factory=Settings, app_factory=create_app, migrate=migrate, argv=argv)
