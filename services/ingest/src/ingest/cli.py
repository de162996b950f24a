"""`ingest run | migrate | asyncapi | openapi`."""

from hdkit.cli import service_main
from hdkit.service import ServiceSettings

from ingest.app import create_app
from ingest.settings import Settings
from ingest.store import Store


async def migrate(settings: ServiceSettings) -> None:
    """Create ingest's indexes."""
    from hdkit.mongo import make_client

    client = make_client(settings.mongo_url)
    try:
        await Store(client[settings.mongo_db]).ensure_indexes()
    finally:
        await client.close()
    print("ingest: indexes ready")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `ingest` command."""
    service_main("ingest", settings_factory=Settings, app_factory=create_app, migrate=migrate, argv=argv)
