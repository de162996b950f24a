"""Helpers for tests against the real Kafka: a started broker and reading a topic back."""

import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaConsumer
from faststream.kafka import KafkaBroker
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry

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
    await broker.start()
    try:
        yield Publisher(broker)
    finally:
        await broker.stop()


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
