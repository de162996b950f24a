"""The shared queue pages: one store read per query and moment, never hiding this process's own writes."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from hdkit.testing import started_publisher
from prometheus_client import CollectorRegistry
from tickets.api import install_error_handlers, router
from tickets.domain import Change
from tickets.keyset import decode_cursor, encode_cursor
from tickets.listcache import UNKNOWN, AnswersMetric, ListCache, Seen, Write, Writes, _may_match, changed, seen
from tickets.store import Store, _write_of

from tests_tickets.wiring import handlers_on

PageResult = tuple[list[dict[str, Any]], str | None]
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def ticket(number: int, group: str = "support", **fields: Any) -> dict[str, Any]:
    """A ticket as the store holds it, updated `number` minutes after T0 (the newest has the highest number)."""
    return {
        "_id": f"t-{number}",
        "number": number,
        "group": group,
        "phase": "active",
        "handler": None,
        "priority": "medium",
        "updated_at": T0 + timedelta(minutes=number),
        "comments": [{"text": "hej"}],
        **fields,
    }


class FakePages:
    """A store of tickets answering queue pages newest first with a cursor, recorded, optionally held."""

    def __init__(self, *tickets: dict[str, Any]) -> None:
        self.tickets = {t["_id"]: t for t in tickets or (ticket(1), ticket(2))}
        self.asked: list[tuple[list[dict[str, Any]], dict[str, Any]]] = []
        self.gate: asyncio.Event | None = None
        self.fail = False
        self.writes = Writes()

    async def __call__(self, filters: list[dict[str, Any]], **options: Any) -> PageResult:
        self.asked.append((filters, options))
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise ConnectionError("store away")
        rows = sorted(
            (t for t in self.tickets.values() if any(all(t.get(k) == v for k, v in f.items()) for f in filters)),
            key=lambda t: (t["updated_at"], t["number"]),
            reverse=True,
        )
        if options.get("cursor"):
            value, number = decode_cursor(options["cursor"])
            rows = [t for t in rows if (t["updated_at"], t["number"]) < (value, number)]
        limit = options.get("limit", 50)
        more = len(rows) > limit
        rows = rows[:limit]
        shown = [{k: t.get(k) for k in ("_id", "number", "group", "priority", "updated_at")} for t in rows]
        return shown, encode_cursor(rows[-1]["updated_at"], rows[-1]["number"]) if more else None

    def write(self, doc: dict[str, Any], change: Change | None = None) -> None:
        """Change or add a ticket as Store.apply / insert_ticket would, noting the write."""
        before = self.tickets.get(doc["_id"])
        if before is None:
            self.tickets[doc["_id"]] = doc
            self.writes.note(Write(doc["_id"], None, seen(doc), None))
            return
        change = change or Change()
        self.tickets[doc["_id"]] = {**before, **change.set_fields}
        update = {"$set": change.set_fields, "$push": {"applied": ["e"], **change.push}, "$inc": {"rev": 1}}
        self.writes.note(_write_of(doc["_id"], update, change, before))


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


SUPPORT = [{"group": "support", "phase": "active", "handler": None}]
BILLING = [{"group": "billing", "phase": "active", "handler": None}]
OPTIONS: dict[str, Any] = {"sort": "updated_at", "limit": 50, "cursor": None, "oldest_first": False}


def cache_of(store: FakePages, *, ttl: float = 2, clock: Clock | None = None, **kwargs: Any) -> ListCache:
    return ListCache(store, ttl=ttl, writes=store.writes, clock=clock or Clock(), **kwargs)


def numbers(result: PageResult) -> list[int]:
    return [row["number"] for row in result[0]]


@pytest.mark.asyncio
async def test_viewers_of_the_same_query_share_one_read_within_the_period() -> None:
    store, clock = FakePages(), Clock()
    cache = cache_of(store, clock=clock)
    assert numbers(await cache.page(SUPPORT, **OPTIONS)) == [2, 1]
    store.tickets["t-3"] = ticket(3)  # written by another process: not noted here
    clock.now += 1.9
    assert numbers(await cache.page(SUPPORT, **OPTIONS)) == [2, 1]
    assert len(store.asked) == 1
    clock.now += 0.2
    assert numbers(await cache.page(SUPPORT, **OPTIONS)) == [3, 2, 1]
    assert len(store.asked) == 2
    assert cache.answers == {"kept": 1, "shared": 0, "read": 2}


@pytest.mark.asyncio
async def test_another_query_is_read_on_its_own() -> None:
    store = FakePages()
    cache = cache_of(store)
    await cache.page(SUPPORT, **OPTIONS)
    await cache.page(BILLING, **OPTIONS)
    await cache.page(SUPPORT, **{**OPTIONS, "oldest_first": True})
    await cache.page(SUPPORT, **{**OPTIONS, "limit": 25})
    await cache.page(SUPPORT, **OPTIONS, projection={"title": 1})
    assert len(store.asked) == 5


@pytest.mark.asyncio
async def test_a_ticket_written_by_this_process_is_seen_by_the_next_list_at_once() -> None:
    store = FakePages()
    cache = cache_of(store)
    assert numbers(await cache.page(SUPPORT, **OPTIONS)) == [2, 1]
    store.write(ticket(3))
    assert numbers(await cache.page(SUPPORT, **OPTIONS)) == [3, 2, 1]
    assert numbers(await cache.page(SUPPORT, **OPTIONS)) == [3, 2, 1]
    assert len(store.asked) == 2


@pytest.mark.asyncio
async def test_a_change_to_a_row_on_the_page_is_shown_even_when_it_does_not_move() -> None:
    store = FakePages()
    cache = cache_of(store)
    await cache.page(SUPPORT, **OPTIONS)
    store.write(ticket(1), Change(set_fields={"priority": "high"}))
    rows = (await cache.page(SUPPORT, **OPTIONS))[0]
    assert [row["priority"] for row in rows] == ["medium", "high"]


@pytest.mark.asyncio
async def test_a_ticket_leaving_or_entering_the_view_drops_the_page() -> None:
    store = FakePages(ticket(1), ticket(2), ticket(3, handler="bo"))
    cache = cache_of(store)
    assert numbers(await cache.page(SUPPORT, **OPTIONS)) == [2, 1]
    store.write(ticket(2), Change(set_fields={"handler": "bo"}))  # taken: leaves Unassigned
    assert numbers(await cache.page(SUPPORT, **OPTIONS)) == [1]
    store.write(ticket(3), Change(set_fields={"handler": None}))  # given back: enters it
    assert numbers(await cache.page(SUPPORT, **OPTIONS)) == [3, 1]
    assert len(store.asked) == 3


@pytest.mark.asyncio
async def test_writes_that_cannot_reach_a_page_keep_it() -> None:
    store = FakePages(ticket(1), ticket(2), ticket(3, "billing"), ticket(4, handler="bo"))
    cache = cache_of(store)
    assert numbers(await cache.page(SUPPORT, **OPTIONS)) == [2, 1]
    later = T0 + timedelta(hours=1)
    store.write(ticket(3, "billing"), Change(set_fields={"priority": "high", "updated_at": later}))  # other group
    store.write(ticket(4, handler="bo"), Change(set_fields={"priority": "high", "updated_at": later}))  # not unassigned
    store.write(ticket(5, "billing"))  # a new ticket of another group
    store.write(ticket(6, handler="bo"))  # a new ticket already taken
    assert numbers(await cache.page(SUPPORT, **OPTIONS)) == [2, 1]
    assert len(store.asked) == 1
    assert numbers(await cache.page(BILLING, **OPTIONS)) == [3, 5]  # 3 was worked on last


@pytest.mark.asyncio
async def test_a_later_page_is_kept_when_a_ticket_moves_to_the_top_and_dropped_when_one_moves_into_it() -> None:
    store = FakePages(*(ticket(n) for n in range(1, 8)))
    cache = cache_of(store)
    first_options = {**OPTIONS, "limit": 3}
    first = await cache.page(SUPPORT, **first_options)
    assert numbers(first) == [7, 6, 5]
    second_options = {**first_options, "cursor": first[1]}
    assert numbers(await cache.page(SUPPORT, **second_options)) == [4, 3, 2]
    assert len(store.asked) == 2
    # ticket 1 (the next page's) is worked on and moves to the top: the first page changes, the second not
    store.write(ticket(1), Change(set_fields={"updated_at": T0 + timedelta(hours=1)}))
    assert numbers(await cache.page(SUPPORT, **second_options)) == [4, 3, 2]
    assert len(store.asked) == 2
    assert numbers(await cache.page(SUPPORT, **first_options)) == [1, 7, 6]
    assert len(store.asked) == 3
    # an old ticket coming back into the view lands within the second page's stretch: it is read again
    store.write(ticket(1), Change(set_fields={"updated_at": T0 + timedelta(minutes=3, seconds=30)}))
    assert numbers(await cache.page(SUPPORT, **second_options)) == [4, 1, 3]
    assert len(store.asked) == 4


@pytest.mark.asyncio
async def test_a_write_of_unknown_state_keeps_pages_only_when_it_touches_nothing_lists_use() -> None:
    store = FakePages()
    cache = cache_of(store)
    await cache.page(SUPPORT, **OPTIONS)
    store.writes.note(Write("t-9", UNKNOWN, UNKNOWN, frozenset({"activity", "applied", "rev"})))  # a mail's record
    await cache.page(SUPPORT, **OPTIONS)
    assert len(store.asked) == 1
    store.writes.note(Write("t-9", UNKNOWN, UNKNOWN, frozenset({"activity", "updated_at"})))
    await cache.page(SUPPORT, **OPTIONS)
    assert len(store.asked) == 2
    store.writes.note(Write("t-1", UNKNOWN, UNKNOWN, frozenset({"activity"})))  # on the page
    await cache.page(SUPPORT, **OPTIONS)
    assert len(store.asked) == 3
    store.writes.note(Write(None, UNKNOWN, UNKNOWN, None))  # any ticket (a purge of many)
    await cache.page(SUPPORT, **OPTIONS)
    assert len(store.asked) == 4


@pytest.mark.asyncio
async def test_a_page_older_than_the_writes_kept_is_read_again() -> None:
    store = FakePages(ticket(1), ticket(2), ticket(3, "billing"))
    store.writes = Writes(kept=3)
    cache = cache_of(store)
    await cache.page(SUPPORT, **OPTIONS)
    for _ in range(3):
        store.write(ticket(3, "billing"), Change(set_fields={"priority": "low"}))
    await cache.page(SUPPORT, **OPTIONS)
    assert len(store.asked) == 1
    for _ in range(4):
        store.write(ticket(3, "billing"), Change(set_fields={"priority": "low"}))
    await cache.page(SUPPORT, **OPTIONS)
    assert len(store.asked) == 2


@pytest.mark.asyncio
async def test_a_read_under_way_during_a_write_is_not_kept_nor_shared_with_later_viewers() -> None:
    store = FakePages()
    store.gate = asyncio.Event()
    cache = cache_of(store)
    before = asyncio.create_task(cache.page(SUPPORT, **OPTIONS))
    await asyncio.sleep(0.01)
    store.write(ticket(1), Change(set_fields={"priority": "high"}))  # lands while the first read is still out
    store.gate.set()
    after = await cache.page(SUPPORT, **OPTIONS)
    await before
    assert [row["priority"] for row in after[0]] == ["medium", "high"]
    assert len(store.asked) == 2
    await cache.page(SUPPORT, **OPTIONS)
    assert len(store.asked) == 2  # the read begun after the write is kept


@pytest.mark.asyncio
async def test_a_read_under_way_is_shared_after_a_write_that_cannot_reach_it() -> None:
    store = FakePages(ticket(1), ticket(2), ticket(3, "billing"))
    store.gate = asyncio.Event()
    cache = cache_of(store)
    first = asyncio.create_task(cache.page(SUPPORT, **OPTIONS))
    await asyncio.sleep(0.01)
    store.write(ticket(3, "billing"), Change(set_fields={"priority": "high"}))
    second = asyncio.create_task(cache.page(SUPPORT, **OPTIONS))
    await asyncio.sleep(0.01)
    store.gate.set()
    assert numbers(await first) == numbers(await second) == [2, 1]
    assert len(store.asked) == 1
    assert cache.answers["shared"] == 1


@pytest.mark.asyncio
async def test_a_read_begun_after_a_write_is_kept_even_when_an_older_read_ends_last() -> None:
    store = FakePages()
    gates = [asyncio.Event(), asyncio.Event()]

    async def held(filters: list[dict[str, Any]], **options: Any) -> PageResult:
        gate = gates[len(store.asked)]
        result = await store(filters, **options)
        await gate.wait()
        return result

    cache = ListCache(held, ttl=2, writes=store.writes, clock=Clock())
    older = asyncio.create_task(cache.page(SUPPORT, **OPTIONS))
    await asyncio.sleep(0.01)
    store.write(ticket(1), Change(set_fields={"priority": "high"}))
    newer = asyncio.create_task(cache.page(SUPPORT, **OPTIONS))
    await asyncio.sleep(0.01)
    gates[1].set()
    await newer
    gates[0].set()
    await older
    assert len(store.asked) == 2
    assert [row["priority"] for row in (await cache.page(SUPPORT, **OPTIONS))[0]] == ["medium", "high"]
    assert len(store.asked) == 2


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
    cache = cache_of(store, max_entries=4)
    for i in range(10):
        await cache.page([{"group": f"g{i}"}], **OPTIONS)
    assert len(cache) <= 4


# --- telling whether a ticket may match a page's filters --------------------------------------------------


def test_matching_follows_the_stores_rules_where_it_can_tell() -> None:
    doc = seen(ticket(1, organisation="Org 5", requester={"email": "kund@example.se", "name": "Kund"}))
    assert _may_match([{"handler": None}], doc)  # absent or null
    assert not _may_match([{"handler": "bo"}], doc)
    assert _may_match([{"requester.email": "kund@example.se"}], doc)
    assert not _may_match([{"requester.email": "other@example.se"}], doc)
    assert not _may_match([{"requester.email": "kund@example.se", "organisation": None}], doc)
    assert _may_match([{"organisation": {"$gt": "Org 4"}}], doc)
    assert not _may_match([{"organisation": {"$lt": "Org 4"}}], doc)
    assert not _may_match([{"last_customer_comment_at": {"$gt": T0}}], doc)  # absent is never above a value
    naive = (T0 + timedelta(minutes=1)).replace(tzinfo=None)  # the store's client may answer naive datetimes
    assert _may_match([{"updated_at": naive}], doc)
    assert not _may_match([{"priority": {"$in": ["low", "high"]}}], doc)
    assert _may_match([{"priority": {"$nin": ["low", "high"]}, "handler": {"$ne": "bo"}}], doc)
    assert not _may_match([{"phase": "dormant"}, {"group": "billing"}], doc)
    assert _may_match([{"phase": "dormant"}, {"group": "support"}], doc)
    assert not _may_match([{"number": True}], seen({"number": 1}))  # a boolean is not a number to the store


def test_what_cannot_be_told_may_match() -> None:
    doc = seen(ticket(1, tags=["vip"], description="x" * 501))
    assert {"comments", "tags", "description"} <= (doc.unknown or frozenset())  # long texts are not kept
    assert _may_match([{"tags": "nothing-like-it"}], doc)  # lists are not followed
    assert _may_match([{"priority": {"$regex": "^x"}}], doc)  # nor operators not known here
    assert _may_match([{"$or": [{"group": "billing"}]}], doc)
    assert _may_match([{"group": "billing"}], UNKNOWN)
    assert not _may_match([{"phase": "active"}], Seen({"phase": "deleted"}, None))
    assert _may_match([{"phase": "deleted", "group": "billing"}], Seen({"phase": "deleted"}, None))


def test_a_change_is_followed_where_it_is_plain_and_unknown_where_not() -> None:
    before = seen(ticket(1, requester={"email": "kund@example.se"}))
    after = changed(before, {"handler": "bo", "requester.email": "ny@example.se", "sla.due.at": T0}, ["tags"])
    assert after.get("handler") == (True, "bo")
    assert after.get("requester.email") == (True, "ny@example.se")
    assert before.get("requester.email") == (True, "kund@example.se")  # the old state is its own
    assert after.get("sla.due") == (False, None)
    assert after.get("tags") == (False, None)
    assert after.get("group") == (True, "support")


# --- on the real store, through the API ---------------------------------------------------------------

TOKEN = "service-token-for-tests-0123456789"
ADMIN = {"X-Actor-Id": "ada", "X-Actor-Role": "admin", "X-Actor-Email": "ada@helpdesk.example"}
AGENT = {"X-Actor-Id": "bo", "X-Actor-Role": "agent", "X-Actor-Groups": "support"}


@pytest.fixture
async def cached_api(infra: Any, mongo: Any) -> AsyncIterator[tuple[httpx.AsyncClient, Store]]:
    async with started_publisher(infra.bootstrap) as publisher:
        handlers, store = await handlers_on(mongo, publisher)
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


@pytest.mark.asyncio
async def test_writes_to_another_groups_tickets_keep_a_groups_page_and_a_change_on_it_shows_at_once(
    cached_api: tuple[httpx.AsyncClient, Store],
) -> None:
    client, store = cached_api

    async def create(group: str) -> int:
        body = {"requester": {"email": "kund@example.se"}, "fields": {"title": f"In {group}", "group": group}}
        created = await client.post("/api/tickets", json=body, headers=ADMIN)
        assert created.status_code == 201, created.text
        return int(created.json()["number"])

    ours = await create("support")
    assert (await listed(client, "unassigned", AGENT))[ours]["title"] == "In support"
    # another process renames ours: not noted here, so it shows only when the page is read again
    await store.tickets.update_one({"number": ours}, {"$set": {"title": "Renamed elsewhere"}})
    theirs = await create("billing")
    changed = await client.patch(f"/api/tickets/{theirs}", json={"fields": {"priority": "high"}}, headers=ADMIN)
    assert changed.status_code == 200, changed.text
    assert (await listed(client, "unassigned", AGENT))[ours]["title"] == "In support"  # kept: billing's writes
    changed = await client.patch(f"/api/tickets/{ours}", json={"fields": {"priority": "high"}}, headers=AGENT)
    assert changed.status_code == 200, changed.text
    row = (await listed(client, "unassigned", AGENT))[ours]
    assert (row["priority"], row["title"]) == ("high", "Renamed elsewhere")  # read again: our own write


@pytest.mark.asyncio
async def test_the_answers_show_on_metrics() -> None:
    store = FakePages()
    cache = cache_of(store)
    registry = CollectorRegistry()
    AnswersMetric.register(registry, "helpdesk_list_pages", "pages", lambda: cache.answers)
    await cache.page(SUPPORT, **OPTIONS)
    await cache.page(SUPPORT, **OPTIONS)
    await cache.page(SUPPORT, **OPTIONS)
    assert registry.get_sample_value("helpdesk_list_pages_total", {"answer": "kept"}) == 2
    assert registry.get_sample_value("helpdesk_list_pages_total", {"answer": "read"}) == 1
    assert registry.get_sample_value("helpdesk_list_pages_total", {"answer": "shared"}) == 0


@pytest.mark.asyncio
async def test_the_tickets_api_shows_how_list_pages_and_rows_were_answered(infra: Any, mongo: Any) -> None:
    async with started_publisher(infra.bootstrap) as publisher:
        handlers, store = await handlers_on(mongo, publisher)
        registry = CollectorRegistry()
        app = FastAPI()
        app.include_router(router(store, handlers, TOKEN, list_cache_seconds=60, metrics=registry))
        headers = {"Authorization": f"Bearer {TOKEN}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tickets", headers=headers) as client:
            body = {"requester": {"email": "kund@example.se"}, "fields": {"title": "Trasig", "group": "support"}}
            assert (await client.post("/api/tickets", json=body, headers=ADMIN)).status_code == 201
            for view in ("unassigned", "unassigned", "all_open"):
                await listed(client, view, AGENT)

    def sample(name: str, answer: str) -> float | None:
        return registry.get_sample_value(name, {"answer": answer})

    assert (sample("helpdesk_list_pages_total", "read"), sample("helpdesk_list_pages_total", "kept")) == (2, 1)
    assert sample("helpdesk_list_rows_total", "read") == 1  # the new ticket, read once
    assert sample("helpdesk_list_rows_total", "kept") == 1  # then from memory in the other view
