"""The shared view counts: one store count per filter and period, however many viewers ask."""

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from tickets.countcache import CountCache


class FakeCounts:
    """A store whose counts are looked up in a table and recorded, optionally held until released."""

    def __init__(self, table: dict[str, int]) -> None:
        self.table = table
        self.asked: list[dict[str, Any]] = []
        self.gate: asyncio.Event | None = None
        self.fail = False

    async def __call__(self, query: dict[str, Any]) -> int:
        self.asked.append(query)
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise ConnectionError("store away")
        return self.table[str(query.get("group"))]


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


SUPPORT = {"group": "support", "phase": "active"}
BILLING = {"group": "billing", "phase": "active"}
NO_GROUP = {"group": None, "phase": "active"}


@pytest.mark.asyncio
async def test_agents_of_the_same_groups_share_one_count_per_filter_within_the_period() -> None:
    store, clock = FakeCounts({"support": 7, "billing": 5, "None": 1}), Clock()
    cache = CountCache(store, ttl=5, clock=clock)
    assert await cache.count([SUPPORT, BILLING, NO_GROUP]) == 13
    assert await cache.count([SUPPORT, NO_GROUP]) == 8
    assert len(store.asked) == 3
    store.table["support"] = 9
    clock.now += 5.1
    assert await cache.count([SUPPORT, NO_GROUP]) == 10
    assert len(store.asked) == 5


@pytest.mark.asyncio
async def test_viewers_asking_at_once_wait_for_the_one_count_under_way() -> None:
    store = FakeCounts({"support": 7, "billing": 5, "None": 1})
    store.gate = asyncio.Event()
    cache = CountCache(store, ttl=5)
    waiting = [asyncio.create_task(cache.count([SUPPORT, NO_GROUP])) for _ in range(20)]
    await asyncio.sleep(0.01)
    store.gate.set()
    assert await asyncio.gather(*waiting) == [8] * 20
    assert sorted(str(q["group"]) for q in store.asked) == ["None", "support"]


@pytest.mark.asyncio
async def test_a_viewer_who_gives_up_does_not_cancel_the_count_others_wait_for() -> None:
    store = FakeCounts({"support": 7, "billing": 5, "None": 1})
    store.gate = asyncio.Event()
    cache = CountCache(store, ttl=5)
    impatient = asyncio.create_task(cache.count([SUPPORT]))
    patient = asyncio.create_task(cache.count([SUPPORT]))
    await asyncio.sleep(0.01)
    impatient.cancel()
    store.gate.set()
    assert await patient == 7
    assert len(store.asked) == 1


@pytest.mark.asyncio
async def test_a_failed_count_reaches_its_viewers_and_is_not_kept() -> None:
    store = FakeCounts({"support": 7, "billing": 5, "None": 1})
    store.fail = True
    cache = CountCache(store, ttl=5)
    with pytest.raises(ConnectionError):
        await cache.count([SUPPORT])
    store.fail = False
    assert await cache.count([SUPPORT]) == 7
    assert len(store.asked) == 2


@pytest.mark.asyncio
async def test_without_a_period_every_count_asks_the_store() -> None:
    store = FakeCounts({"support": 7, "billing": 5, "None": 1})
    cache = CountCache(store, ttl=0)
    for _ in range(3):
        assert await cache.count([SUPPORT]) == 7
    assert len(store.asked) == 3


@pytest.mark.asyncio
async def test_filters_that_differ_only_in_a_values_type_are_counted_apart() -> None:
    when = datetime(2026, 1, 1, tzinfo=UTC)
    store = FakeCounts({"support": 7, "billing": 5, "None": 1})
    cache = CountCache(store, ttl=5)
    await cache.count([{"group": "support", "updated_at": when}])
    await cache.count([{"group": "support", "updated_at": repr(when)}])
    await cache.count([{"group": "support", "updated_at": str(when)}])
    assert len(store.asked) == 3


@pytest.mark.asyncio
async def test_a_full_cache_makes_room_instead_of_growing() -> None:
    store, clock = FakeCounts({"support": 7, "billing": 5, "None": 1}), Clock()
    cache = CountCache(store, ttl=5, max_entries=2, clock=clock)
    for handler in ("a", "b", "c", "d"):
        await cache.count([{**SUPPORT, "handler": handler}])
    assert len(cache._entries) <= 2
