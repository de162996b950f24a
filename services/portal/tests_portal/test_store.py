"""The user store against the real MongoDB-wire store (integration tier: uses the session's `mongo`)."""

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from portal.domain import EmailTaken, User
from portal.store import UserStore


def a_user(email: str, role: Any = "agent", **overrides: Any) -> User:
    fields: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "email": email,
        "name": "",
        "role": role,
        "groups": ("first-line",),
        "password_hash": "$argon2id$fake",
        "created_at": datetime.now(UTC).replace(microsecond=0),  # the store keeps milliseconds
    } | overrides
    return User(**fields)


async def test_a_user_is_found_by_email_and_by_id(mongo: Any) -> None:
    store = UserStore(mongo)
    await store.ensure_indexes()
    bea = a_user("bea@localhost", name="Bea Berg")
    await store.add(bea)

    assert await store.by_email("bea@localhost") == bea
    assert await store.by_id(bea.id) == bea
    assert await store.names([bea.id, "unknown"]) == {bea.id: "Bea Berg"}


async def test_two_users_cannot_share_an_email(mongo: Any) -> None:
    store = UserStore(mongo)
    await store.ensure_indexes()
    await store.add(a_user("bea@localhost"))

    with pytest.raises(EmailTaken):
        await store.add(a_user("bea@localhost"))


async def test_only_an_enabled_admin_counts_as_the_admin(mongo: Any) -> None:
    store = UserStore(mongo)
    await store.ensure_indexes()
    await store.add(a_user("old@localhost", "admin", disabled=True))
    assert await store.any_admin() is None

    admin = a_user("admin@localhost", "admin")
    await store.add(admin)

    found = await store.any_admin()
    assert found is not None and found.email == "admin@localhost"


async def test_a_new_password_ends_sessions_only_when_asked(mongo: Any) -> None:
    store = UserStore(mongo)
    bea = a_user("bea@localhost")
    await store.add(bea)

    await store.set_password_hash(bea.id, "$argon2id$rehashed", end_sessions=False)
    rehashed = await store.by_id(bea.id)
    new_hash = "$argon2id$new"
    await store.set_password_hash(bea.id, new_hash, end_sessions=True)
    changed = await store.by_id(bea.id)

    assert rehashed is not None and rehashed.session_version == 1
    assert changed is not None and changed.session_version == 2
    assert changed.password_hash == new_hash


async def test_a_query_value_that_is_not_a_string_finds_nobody(mongo: Any) -> None:
    store = UserStore(mongo)
    await store.add(a_user("bea@localhost"))

    assert await store.by_email({"$ne": ""}) is None  # type: ignore[arg-type]


async def test_the_staff_are_the_enabled_admins_agents_and_light_agents(mongo: Any) -> None:
    store = UserStore(mongo)
    await store.ensure_indexes()
    for user in (
        a_user("ada@localhost", "admin"),
        a_user("bo@localhost", "agent"),
        a_user("li@localhost", "light_agent"),
        a_user("gone@localhost", "agent", disabled=True),
        a_user("kund@example.se", "customer"),
    ):
        await store.add(user)
    assert sorted(u.email for u in await store.staff()) == ["ada@localhost", "bo@localhost", "li@localhost"]
