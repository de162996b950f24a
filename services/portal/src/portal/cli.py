"""`portal run | migrate | ensure-admin | add-user | set-password | openapi | asyncapi`: one process, one command."""

import argparse
import asyncio
import getpass
import json
import logging
import secrets
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO, cast

from hdkit.mongo import make_client
from hdkit.service import serve

from portal.accounts import AccountError, Accounts
from portal.app import create_app
from portal.domain import ROLES, EmailTaken, Role, User, Users, is_plausible_email, normalise_email
from portal.security import Passwords, new_password
from portal.settings import Settings
from portal.store import UserStore

log = logging.getLogger(__name__)


async def ensure_admin(accounts: Accounts, email: str, name: str, out: TextIO) -> int:
    """Create the first admin and print its password once; leave an existing admin alone."""
    try:
        result = await accounts.ensure_admin(email, name)
    except AccountError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if result.created:
        print(f"admin login: {result.user.email} / {result.password}", file=out)
    else:
        print(f"admin exists: {result.user.email} (password unchanged)", file=out)
    return 0


def read_password(stdin: TextIO) -> str | None:
    """Read a new password from the terminal (asked twice) or the first line of stdin; None if empty."""
    if stdin.isatty():
        first = getpass.getpass("New password (empty: generate one): ")
        if first and getpass.getpass("Again: ") != first:
            raise AccountError("the two passwords differ")
        return first or None
    return stdin.readline().rstrip("\r\n") or None


async def set_password(accounts: Accounts, email: str, password: str | None, out: TextIO) -> int:
    """Set a user's password (generated and printed when none is given); their sessions end."""
    try:
        generated = await accounts.set_password(email, password)
    except AccountError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    email = email.strip().lower()
    print(f"password set: {email} / {generated}" if generated else f"password set: {email}", file=out)
    return 0


async def add_user(
    users: Users, passwords: Passwords, email: str, name: str, role: str, groups: list[str], out: TextIO
) -> int:
    """Add a user with a generated password and print it once (for scripts and first set-up)."""
    email = normalise_email(email)
    if not is_plausible_email(email):
        print(f"error: not an email address: {email!r}", file=sys.stderr)
        return 1
    if role not in ROLES:
        print(f"error: role must be one of {', '.join(ROLES)}", file=sys.stderr)
        return 1
    password = new_password()
    user = User(
        id=str(uuid.uuid4()),
        email=email,
        name=name.strip(),
        role=cast(Role, role),
        groups=tuple(sorted({g.strip() for g in groups if g.strip()})),
        password_hash=passwords.hash(password),
        created_at=datetime.now(UTC),
    )
    try:
        await users.add(user)
    except EmailTaken:
        print(f"error: {email} is already a user", file=sys.stderr)
        return 1
    print(f"user added: {email} / {password} ({role})", file=out)
    return 0


async def _with_store(settings: Settings, work: Callable[[UserStore], Awaitable[int]]) -> int:
    client = make_client(settings.mongo_url)
    try:
        return await work(UserStore(client[settings.mongo_db]))
    finally:
        await client.close()


async def migrate(users: Users, out: TextIO) -> int:
    """Create the indexes (idempotent)."""
    await users.ensure_indexes()
    print("migrated: users indexes ensured", file=out)
    return 0


def _docs_settings() -> Settings:
    """Return settings for writing the API documents: that serves nothing, so throwaway secrets do."""
    return Settings(service_token=secrets.token_urlsafe(32), session_secret=secrets.token_urlsafe(32))


def _write(path: str, text: str) -> None:
    Path(path).write_text(text, encoding="utf-8")
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    """Run one portal command."""
    parser = argparse.ArgumentParser(prog="portal", description="The helpdesk portal service.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="serve the portal over HTTP")
    sub.add_parser("migrate", help="create the database indexes (idempotent)")
    p = sub.add_parser("ensure-admin", help="create the first admin if there is none; prints its password once")
    p.add_argument("--email", required=True)
    p.add_argument("--name", default="Admin")
    p = sub.add_parser("set-password", help="set a user's password from stdin, or generate and print one")
    p.add_argument("--email", required=True)
    p.add_argument("--generate", action="store_true", help="generate a password instead of reading one")
    p = sub.add_parser("add-user", help="add a user with a generated password (printed once)")
    p.add_argument("--email", required=True)
    p.add_argument("--name", default="")
    p.add_argument("--role", required=True, choices=ROLES)
    p.add_argument("--group", action="append", default=[], help="a group the user works in (repeatable)")
    for name in ("openapi", "asyncapi"):
        p = sub.add_parser(name, help=f"write the {name} document")
        p.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    if args.command in ("openapi", "asyncapi"):
        app = create_app(_docs_settings())
        if args.command == "openapi":
            _write(args.out, json.dumps(app.openapi(), indent=2) + "\n")
        else:
            spec = app.state.runtime.asyncapi("helpdesk portal", "The portal consumes no topics yet.")
            _write(args.out, spec.to_specification().to_yaml())
        return 0

    settings = Settings()
    if args.command == "run":
        serve(create_app(settings, configure_logging=True), settings)
        return 0
    logging.basicConfig(level=settings.log_level.upper(), stream=sys.stderr)
    if args.command == "migrate":
        return asyncio.run(_with_store(settings, lambda users: migrate(users, sys.stdout)))
    if args.command == "ensure-admin":
        return asyncio.run(
            _with_store(
                settings,
                lambda users: ensure_admin(Accounts(users, Passwords()), args.email, args.name, sys.stdout),
            )
        )
    if args.command == "add-user":
        return asyncio.run(
            _with_store(
                settings,
                lambda users: add_user(users, Passwords(), args.email, args.name, args.role, args.group, sys.stdout),
            )
        )
    if args.command == "set-password":
        try:
            password = None if args.generate else read_password(sys.stdin)
        except AccountError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return asyncio.run(
            _with_store(
                settings,
                lambda users: set_password(Accounts(users, Passwords()), args.email, password, sys.stdout),
            )
        )
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
