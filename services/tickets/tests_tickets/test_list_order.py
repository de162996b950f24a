"""Queue pages oldest activity first: keyset paging both ways over the same (sort, number) indexes."""

from datetime import UTC, datetime, timedelta
from typing import Any

from tickets.store import Store


def matches(doc: dict[str, Any], query: dict[str, Any]) -> bool:
    for key, want in query.items():
        have = doc.get(key)
        if isinstance(want, dict) and "$in" in want:
            if have not in want["$in"]:
                return False
        elif isinstance(want, dict):
            ((op, value),) = want.items()
            if have is None or not (have < value if op == "$lt" else have > value):
                return False
        elif have != want:
            return False
    return True


class Cursor:
    def __init__(self, docs: list[dict[str, Any]]) -> None:
        self.docs = docs

    def sort(self, order: list[tuple[str, int]]) -> "Cursor":
        for key, direction in reversed(order):
            self.docs.sort(key=lambda d, k=key: d[k], reverse=direction < 0)
        return self

    def limit(self, n: int) -> "Cursor":
        self.docs = self.docs[:n]
        return self

    def __aiter__(self) -> Any:
        async def rows() -> Any:
            for doc in self.docs:
                yield doc

        return rows()


class Collection:
    """Just enough of a collection for `Store.page`: find with equality, $in, $lt and $gt; inclusion
    projection; sort; limit. `reads` counts the documents each find returned, by id."""

    def __init__(self, docs: list[dict[str, Any]]) -> None:
        self.docs = docs
        self.name = "tickets"
        self.reads: list[dict[str, Any]] = []

    def find(self, query: dict[str, Any], fields: dict[str, int] | None = None) -> Cursor:
        found = [d for d in self.docs if matches(d, query)]
        if fields is not None:
            found = [{k: v for k, v in d.items() if k == "_id" or fields.get(k)} for d in found]
        self.reads += found
        return Cursor([dict(d) for d in found])


class Db(dict[str, Collection]):
    def __missing__(self, key: str) -> Collection:
        self[key] = Collection([])
        return self[key]


START = datetime(2025, 1, 1, tzinfo=UTC)


def store_with(docs: list[dict[str, Any]]) -> Store:
    db = Db()
    db["tickets"] = Collection(docs)
    return Store(db)  # type: ignore[arg-type]


def tickets() -> list[dict[str, Any]]:
    # Two groups, and two tickets sharing an update time, so ties across a page boundary are exercised.
    times = [0, 5, 5, 2, 9, 1, 7]
    return [
        {"_id": f"t-{n}", "number": n, "group": "a" if n % 2 else "b", "updated_at": START + timedelta(minutes=m)}
        for n, m in enumerate(times, start=1)
    ]


async def all_pages(store: Store, *, oldest_first: bool) -> list[int]:
    seen: list[int] = []
    cursor = None
    while True:
        docs, cursor = await store.page(
            [{"group": "a"}, {"group": "b"}], sort="updated_at", limit=2, cursor=cursor, oldest_first=oldest_first
        )
        seen += [d["number"] for d in docs]
        if cursor is None:
            return seen


async def test_pages_oldest_first_list_every_ticket_once_by_ascending_activity() -> None:
    store = store_with(tickets())

    oldest = await all_pages(store, oldest_first=True)

    assert oldest == [1, 6, 4, 2, 3, 7, 5]


async def test_pages_newest_first_are_the_same_tickets_in_reverse() -> None:
    store = store_with(tickets())

    assert await all_pages(store, oldest_first=False) == [5, 7, 3, 2, 4, 6, 1]
