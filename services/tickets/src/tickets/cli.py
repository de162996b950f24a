"""`tickets run | migrate | import | asyncapi | openapi`."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from hdkit.cli import service_main
from hdkit.kafka import Publisher, make_broker
from hdkit.mongo import OutboxRelay, make_client
from hdkit.service import ServiceSettings
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry

from tickets.app import create_app
from tickets.domain import Mailbox
from tickets.handlers import Handlers
from tickets.importer import read_rows, run_import
from tickets.settings import Settings
from tickets.store import Store
from tickets.workflow import Viewer


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


async def import_tickets(settings: ServiceSettings, args: argparse.Namespace) -> int:
    """Import a CSV or JSON file as an admin; print the report; return how many rows were rejected."""
    assert isinstance(settings, Settings)  # noqa: S101 - service_main passes our own Settings
    broker = make_broker(
        settings, service="tickets-import", tracer_provider=TracerProvider(), metrics=CollectorRegistry()
    )
    client = make_client(settings.mongo_url)
    await broker.start()
    try:
        store = Store(client[settings.mongo_db])
        handlers = Handlers(
            store,
            OutboxRelay(store.tickets, Publisher(broker)),
            message_id_secret=settings.message_id_secret.get_secret_value(),
        )
        admin = Viewer(id=args.actor, role="admin", name=args.actor)
        report = await run_import(
            read_rows(args.file, args.format),
            lambda command: handlers.execute(command, admin, reload=False),
            source=args.file.name,
            actor=admin,
        )
    finally:
        await broker.stop()
        await client.close()
    text = "\n".join(report.lines())
    print(text)
    if args.report:
        args.report.write_text(text + "\n")
    return len(report.rejected)


def _extra(sub: argparse._SubParsersAction[Any]) -> None:
    cmd = sub.add_parser("import", help="create tickets from a CSV or JSON file; prints a report of rejected rows")
    cmd.add_argument("file", type=Path)
    cmd.add_argument("--format", choices=("csv", "json"), default=None, help="default: from the file name")
    cmd.add_argument("--actor", default="import", help="user id recorded as who created the tickets")
    cmd.add_argument("--report", type=Path, default=None, help="also write the report to this file")

    def handler(settings: ServiceSettings, args: argparse.Namespace) -> None:
        rejected = asyncio.run(import_tickets(settings, args))
        raise SystemExit(1 if rejected else 0)

    cmd.set_defaults(handler=handler)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `tickets` command."""
    service_main("tickets", settings_factory=Settings, app_factory=create_app, migrate=migrate, extra=_extra, argv=argv)
