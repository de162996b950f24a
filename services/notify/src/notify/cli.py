"""`notify run | migrate | asyncapi --out FILE | openapi --out FILE`."""

from hdkit.cli import service_main
from hdkit.mongo import make_client
from hdkit.service import ServiceSettings

from notify.app import create_app
from notify.seeds import default_templates
from notify.settings import Settings
from notify.store import Store


async def migrate(settings: ServiceSettings) -> None:
    """Create indexes and add the default templates that are missing (an admin's edits are kept)."""
    client = make_client(settings.mongo_url)
    try:
        store = Store(client[settings.mongo_db])
        await store.ensure_indexes()
        added = await store.seed_templates(default_templates())
    finally:
        await client.close()
    print(f"notify: indexes ready, {added} default template(s) added")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `notify` command."""
    service_main("notify", settings_factory=Settings, app_factory=create_app, migrate=migrate, argv=argv)
