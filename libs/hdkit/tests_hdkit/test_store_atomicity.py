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
