"""The command line every service shares: `<name> run | migrate | asyncapi | openapi`."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from pydantic import ValidationError

from hdkit.service import Runtime, ServiceSettings, serve

DOC_ONLY_SECRET = "documents-only-placeholder-" + "x" * 32


def service_main(
    name: str,
    *,
    settings_factory: Callable[..., ServiceSettings],
    app_factory: Callable[..., FastAPI],
    migrate: Callable[[ServiceSettings], Awaitable[None]] | None = None,
    extra: Callable[[argparse._SubParsersAction[Any]], None] | None = None,
    argv: list[str] | None = None,
) -> None:
    """Parse the command line and run one command; settings are read here, once."""
    parser = argparse.ArgumentParser(prog=name, description=f"The helpdesk's {name} service.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="run the service until SIGINT/SIGTERM")
    if migrate:
        sub.add_parser("migrate", help="create indexes and seed defaults (safe to run again)")
    spec = sub.add_parser("asyncapi", help="write the AsyncAPI document of the Kafka interface")
    spec.add_argument("--out", type=Path, required=True)
    oapi = sub.add_parser("openapi", help="write the OpenAPI document of the HTTP interface")
    oapi.add_argument("--out", type=Path, required=True)
    if extra:
        extra(sub)
    args = parser.parse_args(argv)
    try:
        settings = settings_factory()
    except ValidationError as exc:
        if args.command in {"asyncapi", "openapi"}:
            # Writing documents serves no traffic: missing secrets get throwaway values.
            missing = {str(e["loc"][0]): DOC_ONLY_SECRET for e in exc.errors() if e["type"] == "missing"}
            settings = settings_factory(**missing)
        else:
            problems = "; ".join(f"HELPDESK_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
            raise SystemExit(f"{name}: configuration is incomplete: {problems}") from None
    if args.command == "run":
        serve(app_factory(settings, configure_logging=True), settings)
    elif args.command == "migrate" and migrate:
        asyncio.run(migrate(settings))
    elif args.command in {"asyncapi", "openapi"}:
        app = app_factory(settings)
        rt: Runtime = app.state.runtime
        if args.command == "asyncapi":
            doc = rt.asyncapi(app.title, app.description).to_specification().to_yaml()
            args.out.write_text(doc)
        else:
            args.out.write_text(json.dumps(app.openapi(), indent=2))
        print(f"wrote {args.out}")
    else:
        args.handler(settings, args)
