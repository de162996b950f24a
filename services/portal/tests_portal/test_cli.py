import io
import json
from pathlib import Path

import pytest
from portal import cli
from portal.accounts import Accounts
from portal.security import Passwords

from .conftest import PHRASE, add_user
from .fakes import FakeUsers


@pytest.fixture
def accounts(passwords: Passwords) -> Accounts:
    return Accounts(FakeUsers(), passwords)


async def test_ensure_admin_prints_a_password_once_and_a_second_call_keeps_it(accounts: Accounts) -> None:
    first, second = io.StringIO(), io.StringIO()

    assert await cli.ensure_admin(accounts, "Admin@Localhost", "Ada", first) == 0
    admin = await accounts.users.by_email("admin@localhost")
    assert admin is not None
    hash_before = admin.password_hash
    assert await cli.ensure_admin(accounts, "admin@localhost", "Ada", second) == 0

    line = first.getvalue().strip()
    assert line.startswith("admin login: admin@localhost / ")
    password = line.rsplit(" / ", 1)[1]
    assert len(password) >= 20
    assert second.getvalue() == "admin exists: admin@localhost (password unchanged)\n"
    assert password not in second.getvalue()
    after = await accounts.users.by_email("admin@localhost")
    assert after is not None and after.password_hash == hash_before
    assert await accounts.passwords.verify(after.password_hash, password)


async def test_ensure_admin_with_another_email_leaves_the_existing_admin_alone(accounts: Accounts) -> None:
    await cli.ensure_admin(accounts, "admin@localhost", "", io.StringIO())
    out = io.StringIO()

    await cli.ensure_admin(accounts, "other@localhost", "", out)

    assert out.getvalue() == "admin exists: admin@localhost (password unchanged)\n"
    assert await accounts.users.by_email("other@localhost") is None


async def test_ensure_admin_does_not_promote_an_existing_agent(accounts: Accounts, passwords: Passwords) -> None:
    add_user(accounts.users, passwords, "bea@localhost", PHRASE, "agent")  # type: ignore[arg-type]
    out = io.StringIO()

    assert await cli.ensure_admin(accounts, "bea@localhost", "", out) == 1

    assert out.getvalue() == ""
    assert await accounts.users.any_admin() is None


async def test_the_password_is_stored_as_an_argon2id_hash() -> None:
    accounts = Accounts(FakeUsers(), Passwords())
    out = io.StringIO()
    await cli.ensure_admin(accounts, "admin@localhost", "", out)
    password = out.getvalue().strip().rsplit(" / ", 1)[1]

    admin = await accounts.users.by_email("admin@localhost")

    assert admin is not None
    assert admin.password_hash.startswith("$argon2id$")
    assert password not in admin.password_hash
    assert await accounts.passwords.verify(admin.password_hash, password)


async def test_set_password_generates_and_prints_one_when_none_is_given(accounts: Accounts) -> None:
    await cli.ensure_admin(accounts, "admin@localhost", "", io.StringIO())
    out = io.StringIO()

    assert await cli.set_password(accounts, "admin@localhost", None, out) == 0

    password = out.getvalue().strip().rsplit(" / ", 1)[1]
    assert out.getvalue().startswith("password set: admin@localhost / ")
    admin = await accounts.users.by_email("admin@localhost")
    assert admin is not None and await accounts.passwords.verify(admin.password_hash, password)


async def test_set_password_takes_a_given_one_and_does_not_print_it(accounts: Accounts) -> None:
    await cli.ensure_admin(accounts, "admin@localhost", "", io.StringIO())
    out = io.StringIO()

    assert await cli.set_password(accounts, "admin@localhost", "a brand new passphrase", out) == 0

    assert out.getvalue() == "password set: admin@localhost\n"
    admin = await accounts.users.by_email("admin@localhost")
    assert admin is not None and await accounts.passwords.verify(admin.password_hash, "a brand new passphrase")


async def test_set_password_refuses_a_short_password_and_an_unknown_user(accounts: Accounts) -> None:
    await cli.ensure_admin(accounts, "admin@localhost", "", io.StringIO())

    assert await cli.set_password(accounts, "admin@localhost", "short", io.StringIO()) == 1
    assert await cli.set_password(accounts, "nobody@localhost", None, io.StringIO()) == 1


def test_a_password_is_read_from_the_first_line_of_stdin() -> None:
    assert cli.read_password(io.StringIO("a brand new passphrase\nrest\n")) == "a brand new passphrase"
    assert cli.read_password(io.StringIO("")) is None


def test_openapi_is_written_without_secrets_in_the_environment(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.delenv("HELPDESK_SESSION_SECRET", raising=False)
    monkeypatch.delenv("HELPDESK_SERVICE_TOKEN", raising=False)
    out = tmp_path / "openapi.json"

    assert cli.main(["openapi", "--out", str(out)]) == 0

    doc = json.loads(out.read_text())
    assert doc["info"]["title"] == "helpdesk portal"
    assert "/health" in doc["paths"]


def test_asyncapi_is_written(tmp_path: Path) -> None:
    out = tmp_path / "asyncapi.yaml"
    assert cli.main(["asyncapi", "--out", str(out)]) == 0
    assert "helpdesk portal" in out.read_text()
