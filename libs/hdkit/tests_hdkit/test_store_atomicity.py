"""What the services rely on from the MongoDB-wire store, checked on the real one under concurrency."""

import asyncio
from typing import Any

import pytest
from pymongo import ReturnDocument


@pytest.mark.asyncio
async def test_concurrent_increments_of_one_counter_never_hand_out_the_same_number(mongo: Any) -> None:
    counters = mongo["counters"]

    async def next_number() -> int:
        doc = await counters.find_one_and_update(
            {"_id": "n"}, {"$inc": {"value": 1}}, upsert=True, return_document=ReturnDocument.AFTER
        )
        return int(doc["value"])

    await next_number()  # the first upsert creates the document
    numbers = await asyncio.gather(*(next_number() for _ in range(60)))
    assert sorted(numbers) == list(range(2, 62))


@pytest.mark.asyncio
async def test_of_concurrent_updates_based_on_the_same_version_exactly_one_wins(mongo: Any) -> None:
    docs = mongo["docs"]
    await docs.insert_one({"_id": "t", "version": 1, "applied": []})
    results = await asyncio.gather(
        *(
            docs.update_one({"_id": "t", "version": 1}, {"$inc": {"version": 1}, "$push": {"applied": n}})
            for n in range(20)
        )
    )
    assert sum(r.modified_count for r in results) == 1
    doc = await docs.find_one({"_id": "t"})
    assert doc["version"] == 2 and len(doc["applied"]) == 1


@pytest.mark.asyncio
async def test_an_update_by_id_among_many_documents_finds_its_document(mongo: Any) -> None:
    docs = mongo["many"]
    await docs.insert_many([{"_id": f"d{i}", "v": 0} for i in range(500)])
    await asyncio.gather(*(docs.update_one({"_id": f"d{i}", "v": 0}, {"$set": {"v": i}}) for i in range(500)))
    assert [d["v"] async for d in docs.find({}).sort("_id", 1)][:3] == [0, 1, 10]
    assert await docs.count_documents({"v": 0}) == 1


class CountingCollection:
    """Passes everything to a real collection and counts the writes."""

    def __init__(self, coll: Any) -> None:
        self._coll, self.writes = coll, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._coll, name)

    async def update_one(self, *args: Any, **kwargs: Any) -> Any:
        self.writes += 1
        return await self._coll.update_one(*args, **kwargs)


@pytest.mark.asyncio
async def test_the_outbox_is_emptied_in_one_write_and_newer_entries_are_never_lost(mongo: Any) -> None:
    from contracts.envelope import Envelope, utcnow
    from contracts.events import DeadLettered
    from hdkit.mongo import OutboxRelay, outbox_fields, outbox_set
    from hdkit.testing import FakePublisher

    def event(n: int) -> tuple[str, Envelope]:
        payload = DeadLettered(
            service="s", topic="t", partition=0, offset=n, value="v", reason="r", error_type="E", failed_at=utcnow()
        )
        return ("topic", Envelope.wrap(payload))

    coll = CountingCollection(mongo["docs"])
    relay = OutboxRelay(coll, FakePublisher())  # type: ignore[arg-type]
    first = [event(1), event(2)]
    await mongo["docs"].insert_one({"_id": "d", **outbox_fields(first)})
    assert await relay.flush_items("d", first) == 2
    assert coll.writes == 1
    doc = await mongo["docs"].find_one({"_id": "d"})
    assert doc["outbox"] == {} and "outbox_since" not in doc
    # a change adds an entry after ours were written but before they were flushed: it must stay, findable
    second, third = [event(3)], [event(4)]
    await mongo["docs"].update_one({"_id": "d"}, {"$set": outbox_set(second)})
    await mongo["docs"].update_one({"_id": "d"}, {"$set": outbox_set(third)})
    assert await relay.flush_items("d", second) == 1
    doc = await mongo["docs"].find_one({"_id": "d"})
    assert list(doc["outbox"]) == [third[0][1].event_id] and "outbox_since" in doc
