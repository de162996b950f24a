"""`tickets run | migrate | asyncapi | openapi`."""

from hdkit.cli import service_main
from hdkit.mongo import make_client
from hdkit.service import ServiceSettings

from tickets.app import create_app
from tickets.domain import Mailbox
from tickets.settings import Settings
from tickets.store import Store


async def migrate(settings: ServiceSettings) -> None:
    """Create indexes and seed the default types, settings and mailbox."""
    assert isinstance(settings, Settings)  # noqa: S101 - service_main passes our own Settings
    client = make_client(settings.mongo_url)
    try:
        store = Store(client[settings.mongo_db])
        await store.ensure_indexes()
        await store.seed_defaults(Mailbox(address=settings.default_mailbox, type="other", group=settings.default_group))
    finally:
        await client.close()
    print(f"tickets: indexes ready, defaults seeded (mailbox {settings.default_mailbox})")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `tickets` command."""
    service_main("tickets", settings_factory=Settings, app_factory=create_app, migrate=migrate, argv=argv)
