import io

import pytest
from portal import cli
from portal.security import Passwords

from .fakes import FakeUsers


async def test_add_user_stores_an_agent_in_their_groups_and_prints_the_password_once(passwords: Passwords) -> None:
    users, out = FakeUsers(), io.StringIO()

    code = await cli.add_user(users, passwords, " Bo@Example.com ", "Bo", "agent", ["it", "support", "it"], out)

    assert code == 0
    user = await users.by_email("bo@example.com")
    assert user is not None and user.role == "agent" and user.groups == ("it", "support") and user.name == "Bo"
    line = out.getvalue().strip()
    assert line.startswith("user added: bo@example.com / ") and line.endswith(" (agent)")
    password = line.split(" / ")[1].split(" ")[0]
    assert await passwords.verify(user.password_hash, password)


@pytest.mark.parametrize(("email", "role"), [("not an address", "agent"), ("bo@example.com", "superuser")])
async def test_add_user_refuses_a_bad_address_or_role(passwords: Passwords, email: str, role: str) -> None:
    users = FakeUsers()

    assert await cli.add_user(users, passwords, email, "", role, [], io.StringIO()) == 1
    assert users.by_id_ == {}


async def test_add_user_refuses_an_address_in_use(passwords: Passwords) -> None:
    users = FakeUsers()
    await cli.add_user(users, passwords, "bo@example.com", "", "agent", [], io.StringIO())

    assert await cli.add_user(users, passwords, "bo@example.com", "", "admin", [], io.StringIO()) == 1
    assert [u.role for u in users.by_id_.values()] == ["agent"]
