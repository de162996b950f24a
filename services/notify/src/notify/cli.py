"""`notify run | migrate | asyncapi --out FILE | openapi --out FILE`."""

import argparse
import asyncio
import json
import logging
from pathlib import Path

from hdkit.mongo import make_client
from hdkit.service import serve
from hdkit.telemetry import setup_logging

from notify.app import DESCRIPTION, TITLE, create_app
from notify.domain import default_templates
from notify.settings import Settings
from notify.store import Store

log = logging.getLogger(__name__)

# Documents are generated without a running stack, where no secrets are set; these never serve traffic.
_DOC_ONLY = {"service_token": "documentation-only-token", "message_id_secret": "documentation-only-secret"}


async def migrate(settings: Settings) -> int:
    """Create indexes and add the default templates that are missing; return how many were added."""
    client = make_client(settings.mongo_url)
    try:
        store = Store(client[settings.mongo_db])
        await store.ensure_indexes()
        return await store.seed_templates(default_templates())
    finally:
        await client.close()


def _doc_settings() -> Settings:
    try:
        return Settings()
    except ValueError:
        return Settings(**_DOC_ONLY)  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="notify", description="The helpdesk's mail sender.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="consume SendNotification commands and serve the notifications API")
    sub.add_parser("migrate", help="create indexes and seed the default templates (idempotent)")
    for name in ("asyncapi", "openapi"):
        p = sub.add_parser(name, help=f"write the {name} document")
        p.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    if args.command == "run":
        settings = Settings()
        serve(create_app(settings, configure_logging=True), settings)
    elif args.command == "migrate":
        settings = Settings()
        setup_logging("notify", settings)
        added = asyncio.run(migrate(settings))
        print(f"notify: indexes ready, {added} default template(s) added")
    elif args.command == "asyncapi":
        app = create_app(_doc_settings())
        spec = app.state.runtime.asyncapi(TITLE, DESCRIPTION).to_specification()
        args.out.write_text(spec.to_yaml())
    else:
        app = create_app(_doc_settings())
        args.out.write_text(json.dumps(app.openapi(), indent=2))
