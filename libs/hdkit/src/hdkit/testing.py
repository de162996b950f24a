"""Helpers for tests: a started broker and reading a topic back (real Kafka), and in-memory fakes for fast tests."""

import asyncio
import copy
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

from aiokafka import AIOKafkaConsumer
from faststream.kafka import KafkaBroker
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry

from contracts import Envelope
from hdkit.kafka import Publisher, make_broker
from hdkit.settings import KafkaSettings


@asynccontextmanager
async def started_publisher(bootstrap: str) -> AsyncIterator[Publisher]:
    """Yield a publisher on a started broker, as the services build it."""
    broker: KafkaBroker = make_broker(
        KafkaSettings(kafka_bootstrap=bootstrap),
        service="test",
        tracer_provider=TracerProvider(),
        metrics=CollectorRegistry(),
    )
    await asyncio.wait_for(broker.start(), 60)
    try:
        yield Publisher(broker)
    finally:
        # A stop that never returns (a producer flushing forever) must fail its test, not stall the run.
        await asyncio.wait_for(broker.stop(), 60)


async def read_envelopes(
    bootstrap: str, topic: str, match: Callable[[dict[str, Any]], bool], *, expect: int, wait: float = 20.0
) -> list[dict[str, Any]]:
    """Read a topic from the start and return the envelopes that match, waiting for `expect` of them.

    It keeps reading for a second after `expect` are found, so that a doubled message shows up too.
    """
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    found: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + wait
        settle: float | None = None
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            for records in batch.values():
                for record in records:
                    envelope = json.loads(record.value)
                    if match(envelope):
                        found.append(envelope)
            if len(found) >= expect:
                settle = settle or time.monotonic() + 1.0
                if time.monotonic() >= settle:
                    break
    finally:
        await consumer.stop()
    return found


class OutboxCollection:
    """The few collection methods `hdkit.mongo.OutboxRelay.flush` uses, over a dict of documents."""

    def __init__(self) -> None:
        self.docs: dict[Any, dict[str, Any]] = {}
        self.name = "fake"

    async def find_one(self, flt: dict[str, Any], projection: Any = None) -> dict[str, Any] | None:
        """Return a copy of the document with this `_id`."""
        doc = self.docs.get(flt["_id"])
        return copy.deepcopy(doc) if doc else None

    async def update_one(self, flt: dict[str, Any], update: dict[str, Any]) -> SimpleNamespace:
        """Apply the `$set` / `$unset` of an outbox flush if the filter matches; say whether it did."""
        doc = self.docs.get(flt["_id"])
        if doc is None or ("outbox" in flt and doc.get("outbox") != flt["outbox"]):
            return SimpleNamespace(matched_count=0, modified_count=0)
        for key, value in update.get("$set", {}).items():
            doc[key] = copy.deepcopy(value)
        for key in update.get("$unset", {}):
            *path, last = key.split(".")
            target = doc
            for part in path:
                target = target.get(part, {})
            target.pop(last, None)
        return SimpleNamespace(matched_count=1, modified_count=1)


class FakePublisher:
    """Records what would have gone to Kafka; can be told to fail the next publishes."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Envelope]] = []
        self.fail_next = 0

    async def publish(self, topic: str, envelope: Envelope) -> None:
        """Record one envelope, or fail if told to."""
        if self.fail_next:
            self.fail_next -= 1
            raise ConnectionError("broker away")
        self.sent.append((topic, envelope))

    async def publish_many(self, items: list[tuple[str, Envelope]]) -> None:
        """Record several envelopes in order."""
        for topic, envelope in items:
            await self.publish(topic, envelope)


async def first_published(broker: KafkaBroker, envelope: Envelope, *, to: str, watch: str) -> Envelope:
    """Publish an envelope to topic `to` on an in-memory test broker; return the first envelope seen on `watch`."""
    from faststream.kafka import TestKafkaBroker
    from faststream.kafka.annotations import KafkaMessage

    received: list[bytes] = []
    done = asyncio.Event()

    @broker.subscriber(watch, group_id="test-capture")
    async def capture(msg: KafkaMessage) -> None:
        received.append(msg.body)
        done.set()

    async with TestKafkaBroker(broker) as test_broker:
        await test_broker.publish(envelope.to_bytes(), topic=to, key=(envelope.key or "k").encode())
        await asyncio.wait_for(done.wait(), 5)
    return Envelope.model_validate_json(received[0])
