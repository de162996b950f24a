"""The shared queue pages: one store read per query and moment, never hiding this process's own writes."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from hdkit.mongo import OutboxRelay
from hdkit.testing import started_publisher
from tickets.api import install_error_handlers, router
from tickets.domain import Mailbox
from tickets.handlers import Handlers
from tickets.listcache import ListCache
from tickets.store import Store

PageResult = tuple[list[dict[str, Any]], str | None]


class FakePages:
    """A store whose pages come from a table by group, recorded, optionally held until released."""

    def __init__(self) -> None:
        self.rows: dict[str, list[dict[str, Any]]] = {"support": [{"number": 2}, {"number": 1}], "billing": []}
        self.asked: list[tuple[list[dict[str, Any]], dict[str, Any]]] = []
        self.gate: asyncio.Event | None = None
        self.fail = False
        self.writes = 0

    async def __call__(self, filters: list[dict[str, Any]], **options: Any) -> PageResult:
        self.asked.append((filters, options))
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise ConnectionError("store away")
        rows = [row for f in filters for row in self.rows[f["group"]]]
        return [dict(row) for row in rows], None

    def generation(self) -> int:
        return self.writes


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


SUPPORT = [{"group": "support", "phase": "active", "handler": None}]
BILLING = [{"group": "billing", "phase": "active", "handler": None}]
OPTIONS: dict[str, Any] = {"sort": "updated_at", "limit": 50, "cursor": None, "oldest_first": False}


def cache_of(store: FakePages, *, ttl: float = 2, clock: Clock | None = None) -> ListCache:
    return ListCache(store, ttl=ttl, generation=store.generation, clock=clock or Clock())


def numbers(result: PageResult) -> list[int]:
    return [row["number"] for row in result[0]]


@pytest.mark.asyncio
async def test_viewers_of_the_same_query_share_one_read_within_the_period() -> None:
    store, clock = FakePages(), Clock()
    cache = cache_of(store, clock=clock)
    assert numbers(await cache.page(SUPPORT, **OPTIONS)) == [2, 1]
    store.rows["support"].insert(0, {"number": 3})  # written by another process
    clock.now += 1.9
    assert numbers(await cache.page(SUPPORT, **OPTIONS)) == [2, 1]
    assert len(store.asked) == 1
    clock.now += 0.2
    assert numbers(await cache.page(SUPPORT, **OPTIONS)) == [3, 2, 1]
    assert len(store.asked) == 2


@pytest.mark.asyncio
async def test_another_query_is_read_on_its_own() -> None:
    store = FakePages()
    cache = cache_of(store)
    await cache.page(SUPPORT, **OPTIONS)
    await cache.page(BILLING, **OPTIONS)
    await cache.page(SUPPORT, **{**OPTIONS, "oldest_first": True})
    await cache.page(SUPPORT, **{**OPTIONS, "cursor": "abc"})
    await cache.page(SUPPORT, **{**OPTIONS, "limit": 25})
    await cache.page(SUPPORT, **OPTIONS, projection={"title": 1})
    assert len(store.asked) == 6


@pytest.mark.asyncio
async def test_a_ticket_written_by_this_process_is_seen_by_the_next_list_at_once() -> None:
    store = FakePages()
    cache = cache_of(store)
    assert numbers(await cache.page(SUPPORT, **OPTIONS)) == [2, 1]
    store.rows["support"].insert(0, {"number": 3})
    store.writes += 1
    assert numbers(await cache.page(SUPPORT, **OPTIONS)) == [3, 2, 1]
    assert numbers(await cache.page(SUPPORT, **OPTIONS)) == [3, 2, 1]
    assert len(store.asked) == 2


@pytest.mark.asyncio
async def test_a_read_under_way_during_a_write_is_not_kept_nor_shared_with_later_viewers() -> None:
    store = FakePages()
    store.gate = asyncio.Event()
    cache = cache_of(store)
    before = asyncio.create_task(cache.page(SUPPORT, **OPTIONS))
    await asyncio.sleep(0.01)
    store.writes += 1  # the write lands while the first read is still out
    store.gate.set()
    after = await cache.page(SUPPORT, **OPTIONS)
    assert numbers(await before) == [2, 1]
    assert numbers(after) == [2, 1]
    assert len(store.asked) == 2
    await cache.page(SUPPORT, **OPTIONS)
    assert len(store.asked) == 2  # the read begun after the write is kept


@pytest.mark.asyncio
async def test_viewers_asking_at_once_wait_for_the_one_read_under_way() -> None:
    store = FakePages()
    store.gate = asyncio.Event()
    cache = cache_of(store)
    waiting = [asyncio.create_task(cache.page(SUPPORT, **OPTIONS)) for _ in range(20)]
    await asyncio.sleep(0.01)
    store.gate.set()
    assert [numbers(result) for result in await asyncio.gather(*waiting)] == [[2, 1]] * 20
    assert len(store.asked) == 1


@pytest.mark.asyncio
async def test_a_viewer_who_gives_up_does_not_cancel_the_read_others_wait_for() -> None:
    store = FakePages()
    store.gate = asyncio.Event()
    cache = cache_of(store)
    impatient = asyncio.create_task(cache.page(SUPPORT, **OPTIONS))
    patient = asyncio.create_task(cache.page(SUPPORT, **OPTIONS))
    await asyncio.sleep(0.01)
    impatient.cancel()
    store.gate.set()
    assert numbers(await patient) == [2, 1]
    assert len(store.asked) == 1


@pytest.mark.asyncio
async def test_a_failed_read_is_not_kept() -> None:
    store = FakePages()
    store.fail = True
    cache = cache_of(store)
    with pytest.raises(ConnectionError):
        await cache.page(SUPPORT, **OPTIONS)
    store.fail = False
    assert numbers(await cache.page(SUPPORT, **OPTIONS)) == [2, 1]
    assert len(store.asked) == 2


@pytest.mark.asyncio
async def test_a_viewer_changing_their_rows_does_not_change_the_next_viewers() -> None:
    store = FakePages()
    cache = cache_of(store)
    first = await cache.page(SUPPORT, **OPTIONS)
    first[0][0]["number"] = 99
    first[0].clear()
    assert numbers(await cache.page(SUPPORT, **OPTIONS)) == [2, 1]


@pytest.mark.asyncio
async def test_nothing_is_shared_when_the_period_is_zero() -> None:
    store = FakePages()
    cache = cache_of(store, ttl=0)
    await cache.page(SUPPORT, **OPTIONS)
    await cache.page(SUPPORT, **OPTIONS)
    assert len(store.asked) == 2


@pytest.mark.asyncio
async def test_the_cache_keeps_at_most_its_bound_of_pages() -> None:
    store = FakePages()
    store.rows.update({f"g{i}": [] for i in range(10)})
    cache = ListCache(store, ttl=2, generation=store.generation, max_entries=4, clock=Clock())
    for i in range(10):
        await cache.page([{"group": f"g{i}"}], **OPTIONS)
    assert len(cache) <= 4


# --- on the real store, through the API ---------------------------------------------------------------

TOKEN = "service-token-for-tests-0123456789"
ADMIN = {"X-Actor-Id": "ada", "X-Actor-Role": "admin", "X-Actor-Email": "ada@helpdesk.example"}
AGENT = {"X-Actor-Id": "bo", "X-Actor-Role": "agent", "X-Actor-Groups": "support"}


@pytest.fixture
async def cached_api(infra: Any, mongo: Any) -> AsyncIterator[tuple[httpx.AsyncClient, Store]]:
    async with started_publisher(infra.bootstrap) as publisher:
        store = Store(mongo)
        await store.ensure_indexes()
        await store.seed_defaults(Mailbox(address="support@localhost", group="support"))
        handlers = Handlers(
            store,
            OutboxRelay(store.tickets, publisher),
            message_id_secret="integration-secret-0123456789",
            contacts_relay=OutboxRelay(store.contacts, publisher),
        )
        app = FastAPI()
        app.include_router(router(store, handlers, TOKEN, list_cache_seconds=60))
        install_error_handlers(app)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tickets", headers=headers) as client:
            yield client, store


async def listed(client: httpx.AsyncClient, view: str, who: dict[str, str]) -> dict[int, dict[str, Any]]:
    response = await client.get("/api/tickets", params={"view": view}, headers=who)
    assert response.status_code == 200, response.text
    return {item["number"]: item for item in response.json()["items"]}


@pytest.mark.asyncio
async def test_an_agents_own_assignment_shows_in_their_next_list_while_other_writes_wait_for_the_period(
    cached_api: tuple[httpx.AsyncClient, Store],
) -> None:
    client, store = cached_api
    body = {"requester": {"email": "kund@example.se"}, "fields": {"title": "Trasig", "group": "support"}}
    created = await client.post("/api/tickets", json=body, headers=ADMIN)
    assert created.status_code == 201, created.text
    number = created.json()["number"]
    assert number in await listed(client, "unassigned", AGENT)
    assert number not in await listed(client, "mine", AGENT)
    assigned = await client.patch(f"/api/tickets/{number}", json={"fields": {"handler": "bo"}}, headers=AGENT)
    assert assigned.status_code == 200, assigned.text
    assert number not in await listed(client, "unassigned", AGENT)
    assert number in await listed(client, "mine", AGENT)
    # a change made by another process (straight into the store) waits for the period: the page is shared
    await store.tickets.update_one({"number": number}, {"$set": {"title": "Elsewhere"}})
    assert (await listed(client, "mine", AGENT))[number]["title"] == "Trasig"
