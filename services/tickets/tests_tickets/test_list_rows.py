"""Queue pages read their rows' keys first and whole rows only of tickets changed since they were listed.

`Store.page` asks the store for each row's id, sort keys and revision (`rev`, bumped by every change in the
same write), takes unchanged rows from its `RowCache` and reads the others by id. A kept row must never be
shown once its ticket changed, whichever tickets process changed it.
"""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tickets.domain import Change
from tickets.store import REVISION, SUMMARY_FIELDS, RowCache, Store

from .test_list_order import Collection, Db

START = datetime(2026, 1, 1, tzinfo=UTC)
QUERY = [{"group": "a", "phase": "active"}]


def ticket(n: int, **fields: Any) -> dict[str, Any]:
    return {
        "_id": f"t-{n}",
        "number": n,
        "title": f"Ticket {n}",
        "group": "a",
        "phase": "active",
        "priority": "normal",
        "updated_at": START + timedelta(minutes=n),
        "comments": [{"text": "long conversation"}],
        **fields,
    }


def store_of(docs: list[dict[str, Any]], rows: int = 100) -> tuple[Store, Collection]:
    db = Db()
    db["tickets"] = collection = Collection(docs)
    return Store(db, list_rows_kept=rows), collection  # type: ignore[arg-type]


def whole_rows(collection: Collection) -> list[str]:
    """Ids of the documents read with their list fields (not just their keys)."""
    return [doc["_id"] for doc in collection.reads if "title" in doc]


async def test_a_second_look_at_an_unchanged_queue_reads_only_keys_and_gives_the_same_rows() -> None:
    store, collection = store_of([ticket(n) for n in range(1, 6)])

    first, _ = await store.page(QUERY, sort="updated_at", limit=10, cursor=None)
    collection.reads.clear()
    second, _ = await store.page(QUERY, sort="updated_at", limit=10, cursor=None)

    assert second == first
    assert [d["number"] for d in second] == [5, 4, 3, 2, 1]
    assert whole_rows(collection) == []
    assert all("comments" not in d and REVISION not in d for d in second)
    assert store.rows.hits == 5


async def test_a_ticket_changed_since_it_was_listed_is_read_again_and_shown_as_it_is_now() -> None:
    docs = [ticket(n) for n in range(1, 4)]
    store, collection = store_of(docs)
    await store.page(QUERY, sort="updated_at", limit=10, cursor=None)
    collection.reads.clear()

    docs[1].update(priority="urgent", rev=1)  # as Store.apply writes a change (possibly another process's)
    rows, _ = await store.page(QUERY, sort="updated_at", limit=10, cursor=None)

    assert {d["number"]: d["priority"] for d in rows} == {3: "normal", 2: "urgent", 1: "normal"}
    assert whole_rows(collection) == ["t-2"]


async def test_rows_kept_are_shared_by_queries_of_the_same_fields_but_not_of_other_fields() -> None:
    store, collection = store_of([ticket(n) for n in range(1, 4)])
    await store.page(QUERY, sort="updated_at", limit=10, cursor=None)
    collection.reads.clear()

    rows, _ = await store.page(QUERY, sort="updated_at", limit=10, cursor=None, projection={"title": 1})

    assert sorted(whole_rows(collection)) == ["t-1", "t-2", "t-3"]
    assert all(set(d) == {"_id", "title", "updated_at", "number"} for d in rows)


async def test_a_ticket_gone_between_the_key_read_and_the_row_read_is_left_out() -> None:
    docs = [ticket(n) for n in range(1, 4)]
    store, collection = store_of(docs)
    find = collection.find

    def find_then_delete(query: dict[str, Any], fields: Any = None) -> Any:
        if "_id" in query:  # the row read: t-2 was purged right after the keys were read
            collection.docs = [d for d in collection.docs if d["_id"] != "t-2"]
        return find(query, fields)

    collection.find = find_then_delete  # type: ignore[method-assign]
    rows, _ = await store.page(QUERY, sort="updated_at", limit=10, cursor=None)

    assert [d["number"] for d in rows] == [3, 1]


async def test_changing_a_caller_s_rows_does_not_change_what_the_next_page_shows() -> None:
    store, _ = store_of([ticket(1)])
    rows, _ = await store.page(QUERY, sort="updated_at", limit=10, cursor=None)
    rows[0]["title"] = "scribbled on"

    again, _ = await store.page(QUERY, sort="updated_at", limit=10, cursor=None)

    assert again[0]["title"] == "Ticket 1"


def test_the_row_cache_keeps_the_most_recently_used_rows_up_to_its_size() -> None:
    cache = RowCache(2)
    for n in (1, 2):
        cache.put(f"t-{n}", None, "s", {"n": n})
    assert cache.get("t-1", None, "s") == {"n": 1}  # t-1 used: t-2 is now the least recent
    cache.put("t-3", None, "s", {"n": 3})

    assert len(cache) == 2
    assert cache.get("t-2", None, "s") is None
    assert cache.get("t-1", None, "s") == {"n": 1}
    assert cache.get("t-1", 1, "s") is None  # another revision is another row
    assert RowCache(0).get("t-1", None, "s") is None


@pytest.mark.asyncio
async def test_two_tickets_processes_on_the_real_store_never_show_a_row_the_other_changed(mongo: Any) -> None:
    reader, writer = Store(mongo), Store(mongo)
    await reader.ensure_indexes()
    await reader.tickets.insert_many([ticket(n) for n in range(1, 4)])
    fields = {**SUMMARY_FIELDS, "phase": 1}
    before, _ = await reader.page(QUERY, sort="updated_at", limit=10, cursor=None, projection=fields)

    changed = Change(set_fields={"priority": "urgent", "title": "Printer on fire"})
    assert await writer.apply("t-2", changed, event_id="e-1", outbox=[])
    after, _ = await reader.page(QUERY, sort="updated_at", limit=10, cursor=None, projection=fields)

    assert [(d["number"], d["priority"], d["title"]) for d in after] == [
        (3, "normal", "Ticket 3"),
        (2, "urgent", "Printer on fire"),
        (1, "normal", "Ticket 1"),
    ]
    assert reader.rows.hits == 2  # the two unchanged rows came from memory
    assert [d for d in after if d["number"] != 2] == [d for d in before if d["number"] != 2]
    detail = await reader.detail({"_id": "t-2"})
    assert detail is not None and REVISION not in detail
