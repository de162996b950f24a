"""Writes grouped in time: records inserted together, outboxes written once published and emptied together."""

import asyncio
from datetime import timedelta
from typing import Any

from hdkit.mongo import OUTBOX, OUTBOX_SINCE, GroupInserter, OutboxRelay, outbox_fields
from hdkit.testing import FakePublisher
from pymongo.errors import DuplicateKeyError

from contracts import Envelope, topics
from tests_hdkit.test_consumer import email_envelope


def record(n: int) -> tuple[dict[str, Any], Envelope]:
    envelope = email_envelope()
    return {"_id": f"m{n}", **outbox_fields([(topics.INBOUND_EMAIL, envelope)])}, envelope


class CountingCollection:
    """Passes calls through to a real collection, counting the writes that empty outboxes."""

    def __init__(self, coll: Any) -> None:
        self._coll = coll
        self.update_many_calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._coll, name)

    async def update_many(self, *args: Any, **kwargs: Any) -> Any:
        self.update_many_calls += 1
        return await self._coll.update_many(*args, **kwargs)


async def test_records_published_together_are_emptied_in_one_write(mongo: Any) -> None:
    coll = CountingCollection(mongo["messages"])
    publisher = FakePublisher()
    relay = OutboxRelay(coll, publisher)  # type: ignore[arg-type]
    docs = [record(n)[0] for n in range(20)]
    await mongo["messages"].insert_many([dict(d) for d in docs])
    assert await asyncio.gather(*(relay.flush_written_once(d) for d in docs)) == [1] * 20
    await relay.drain()
    assert coll.update_many_calls == 1
    assert await mongo["messages"].count_documents({OUTBOX_SINCE: {"$exists": True}}) == 0
    assert await mongo["messages"].count_documents({OUTBOX: {}}) == 20
    assert sorted(e.event_id for _, e in publisher.sent) == sorted(d[OUTBOX].popitem()[0] for d in docs)


async def test_a_second_delivery_before_the_outbox_is_emptied_is_not_published_again(mongo: Any) -> None:
    publisher = FakePublisher()
    relay = OutboxRelay(mongo["messages"], publisher)
    doc, envelope = record(1)
    await mongo["messages"].insert_one(dict(doc))
    assert await relay.flush_written_once(doc) == 1
    assert await relay.flush_written_once(await mongo["messages"].find_one({"_id": "m1"})) == 0
    await relay.drain()
    assert await relay.flush_written_once(await mongo["messages"].find_one({"_id": "m1"})) == 0  # emptied
    assert [e.event_id for _, e in publisher.sent] == [envelope.event_id]


async def test_entries_whose_emptying_never_happened_are_published_again_by_the_sweeper(mongo: Any) -> None:
    publisher = FakePublisher()
    doc, envelope = record(1)
    await mongo["messages"].insert_one(dict(doc))
    crashed = OutboxRelay(mongo["messages"], publisher, clear_window=60)  # the process dies inside the window
    assert await crashed.flush_written_once(doc) == 1
    crashed._clearing.cancel()  # type: ignore[union-attr]
    restarted = OutboxRelay(mongo["messages"], publisher)
    assert await restarted.sweep(older_than=timedelta(0)) == 1
    assert [e.event_id for _, e in publisher.sent] == [envelope.event_id, envelope.event_id]


class SlowPublisher(FakePublisher):
    """Kafka taking its time: publishes wait until released."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def publish(self, topic: str, envelope: Envelope) -> None:
        await self.release.wait()
        await super().publish(topic, envelope)


async def test_the_sweeper_leaves_alone_what_this_process_is_still_publishing(mongo: Any) -> None:
    publisher = SlowPublisher()
    relay = OutboxRelay(mongo["messages"], publisher)
    once, _ = record(1)
    other, _ = record(2)
    await mongo["messages"].insert_many([dict(once), dict(other)])
    slow = [asyncio.create_task(relay.flush_written_once(once)), asyncio.create_task(relay.flush(other))]
    await asyncio.sleep(0.05)  # both are waiting for Kafka
    sweeping = asyncio.create_task(relay.sweep(older_than=timedelta(0)))
    await asyncio.sleep(0.05)
    publisher.release.set()
    assert await sweeping == 0
    assert await asyncio.gather(*slow) == [1, 1]
    await relay.drain()
    assert len(publisher.sent) == 2


async def test_documents_inserted_together_are_written_in_one_go_and_each_hears_its_outcome(mongo: Any) -> None:
    calls = CountingCollection(mongo["grouped"])
    calls.insert_many_calls = 0
    real_insert_many = mongo["grouped"].insert_many

    async def counting_insert_many(*args: Any, **kwargs: Any) -> Any:
        calls.insert_many_calls += 1
        return await real_insert_many(*args, **kwargs)

    calls.insert_many = counting_insert_many  # type: ignore[method-assign]
    inserter = GroupInserter(calls)  # type: ignore[arg-type]
    await mongo["grouped"].insert_one({"_id": "old"})
    outcomes = await asyncio.gather(
        *(inserter.insert({"_id": f"d{n}", "n": n}) for n in range(10)),
        inserter.insert({"_id": "old"}),
        inserter.insert({"_id": "d3"}),  # the same id twice in one group: the second one is the duplicate
        return_exceptions=True,
    )
    assert outcomes[:10] == [None] * 10
    assert isinstance(outcomes[10], DuplicateKeyError) and isinstance(outcomes[11], DuplicateKeyError)
    assert calls.insert_many_calls == 1
    assert await mongo["grouped"].count_documents({}) == 11


async def test_when_the_whole_write_fails_every_caller_of_the_group_hears_it() -> None:
    class Away:
        async def insert_many(self, docs: Any, ordered: bool) -> None:
            raise ConnectionError("store away")

    inserter = GroupInserter(Away())  # type: ignore[arg-type]
    outcomes = await asyncio.gather(*(inserter.insert({"_id": n}) for n in range(3)), return_exceptions=True)
    assert all(isinstance(o, ConnectionError) for o in outcomes)
