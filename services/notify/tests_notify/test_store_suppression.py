"""Suppressed addresses on the real store: the newest change wins, whatever order the events arrive in."""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from notify.store import Store

T0 = datetime(2026, 3, 2, 9, 15, tzinfo=UTC)
PROBLEM = {"since": T0, "status": "5.1.1", "diagnostic": "550 user unknown", "cause": "dsn-1"}


async def test_a_suppressed_address_is_found_by_any_spelling_until_it_is_lifted(mongo: Any) -> None:
    store = Store(mongo)
    assert await store.suppress("Alice@Example.com", T0, PROBLEM)
    found = await store.suppression("alice@EXAMPLE.com")
    assert found is not None and found["status"] == "5.1.1" and found["since"] == T0
    assert await store.unsuppress("alice@example.com", T0 + timedelta(hours=1), {"lifted_by": {"id": "bo"}})
    assert await store.suppression("alice@example.com") is None


async def test_the_same_event_twice_applies_once(mongo: Any) -> None:
    store = Store(mongo)
    results = await asyncio.gather(*(store.suppress("a@example.com", T0, PROBLEM) for _ in range(5)))
    assert results.count(True) == 1
    assert await store.suppressed.count_documents({}) == 1


async def test_an_older_event_never_undoes_a_newer_one(mongo: Any) -> None:
    store = Store(mongo)
    assert await store.unsuppress("late@example.com", T0 + timedelta(days=1), {})
    assert not await store.suppress("late@example.com", T0, PROBLEM)  # the bounce happened before the lift
    assert await store.suppression("late@example.com") is None
    assert await store.suppress(
        "late@example.com", T0 + timedelta(days=2), {**PROBLEM, "since": T0 + timedelta(days=2)}
    )
    assert not await store.unsuppress("late@example.com", T0 + timedelta(days=1, hours=1), {})
    assert await store.suppression("late@example.com") is not None
