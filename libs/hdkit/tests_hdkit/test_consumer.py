"""The consumer's policy: bad messages go to the dead-letter topic with the reason, passing failures retry."""

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from contracts.models import Address
from faststream.kafka import KafkaBroker
from hdkit.kafka import Consumer, Rejected, RetryLater
from hdkit.testing import FakePublisher
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from contracts import EmailReceived, Envelope, topics


@dataclass
class Record:
    partition: int = 0
    offset: int = 7
    key: bytes | None = b"k"
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass
class Msg:
    body: bytes
    raw_message: Record


def email_envelope() -> Envelope:
    return Envelope.wrap(
        EmailReceived(
            mailbox="support@localhost", message_id="m@x", subject="s", sender=Address(email="a@example.com"),
            received_at=datetime.now(UTC), text="t", raw_id="r", size=1,
        )
    )  # fmt: skip


def consumer() -> tuple[Consumer, FakePublisher]:
    publisher = FakePublisher()
    c = Consumer(
        broker=KafkaBroker(), publisher=publisher, service="test", metrics=CollectorRegistry(),  # type: ignore[arg-type]
        max_attempts=3, retry_delay=0,
    )  # fmt: skip
    return c, publisher


def letters(publisher: FakePublisher) -> list[dict[str, Any]]:
    return [env.payload for topic, env in publisher.sent if topic == topics.DEAD_LETTER]


async def test_bytes_that_are_no_envelope_are_dead_lettered_with_their_value() -> None:
    c, publisher = consumer()
    await c.dispatch(topics.INBOUND_EMAIL, Msg(b"{nope", Record()), {"EmailReceived": lambda e, m: None})
    (letter,) = letters(publisher)
    assert letter["error_type"] == "InvalidEnvelope" and letter["value"] == "{nope" and letter["offset"] == 7


async def test_types_this_service_does_not_handle_are_skipped_quietly() -> None:
    c, publisher = consumer()
    await c.dispatch(topics.INBOUND_EMAIL, Msg(email_envelope().to_bytes(), Record()), {})
    assert publisher.sent == []


async def test_a_rejected_message_is_dead_lettered_once_with_the_handlers_reason() -> None:
    c, publisher = consumer()

    async def refuse(envelope: Envelope, message: Any) -> None:
        raise Rejected("ticket was deleted")

    await c.dispatch(topics.INBOUND_EMAIL, Msg(email_envelope().to_bytes(), Record()), {"EmailReceived": refuse})
    assert [letter["reason"] for letter in letters(publisher)] == ["ticket was deleted"]


async def test_a_failing_handler_is_retried_then_dead_lettered_after_the_last_attempt() -> None:
    c, publisher = consumer()

    async def broken(envelope: Envelope, message: Any) -> None:
        raise ValueError("bug")

    msg = Msg(email_envelope().to_bytes(), Record())
    for _ in range(2):
        with pytest.raises(ValueError):
            await c.dispatch(topics.INBOUND_EMAIL, msg, {"EmailReceived": broken})
    assert letters(publisher) == []
    await c.dispatch(topics.INBOUND_EMAIL, msg, {"EmailReceived": broken})
    assert "failed 3 times" in letters(publisher)[0]["reason"]


async def test_passing_failures_are_retried_without_limit_and_never_dead_lettered() -> None:
    c, publisher = consumer()

    async def busy(envelope: Envelope, message: Any) -> None:
        raise RetryLater("ticket changed meanwhile")

    for _ in range(10):
        with pytest.raises(RetryLater):
            await c.dispatch(topics.INBOUND_EMAIL, Msg(email_envelope().to_bytes(), Record()), {"EmailReceived": busy})
    assert letters(publisher) == []


@dataclass
class BatchRecord:
    value: bytes
    key: bytes | None
    offset: int
    partition: int = 0
    headers: tuple[tuple[str, bytes], ...] = ()


def batch(*keys: bytes | None) -> tuple[list[Envelope], tuple[BatchRecord, ...]]:
    envelopes = [email_envelope() for _ in keys]
    records = tuple(BatchRecord(e.to_bytes(), k, i) for i, (e, k) in enumerate(zip(envelopes, keys, strict=True)))
    return envelopes, records


async def test_a_batch_runs_one_key_in_order_and_different_keys_side_by_side() -> None:
    c, _ = consumer()
    envelopes, records = batch(b"a", b"a", b"b")
    log: list[tuple[str, str]] = []

    async def handle(envelope: Envelope, message: Any) -> None:
        log.append(("start", envelope.event_id))
        await asyncio.sleep(0.01)
        log.append(("end", envelope.event_id))

    await c.dispatch_batch(topics.INBOUND_EMAIL, records, {"EmailReceived": handle})
    a1, a2, b = (e.event_id for e in envelopes)
    assert log.index(("end", a1)) < log.index(("start", a2))  # same key: one after the other
    assert log.index(("start", b)) < log.index(("end", a1))  # another key: meanwhile
    assert len(log) == 6


async def test_a_failure_in_a_batch_lets_the_other_lanes_finish_then_is_raised() -> None:
    c, publisher = consumer()
    envelopes, records = batch(b"a", b"a", b"b")
    done: list[str] = []

    async def handle(envelope: Envelope, message: Any) -> None:
        if envelope.event_id == envelopes[0].event_id:
            raise RetryLater("store away")
        done.append(envelope.event_id)

    with pytest.raises(RetryLater):
        await c.dispatch_batch(topics.INBOUND_EMAIL, records, {"EmailReceived": handle})
    assert done == [envelopes[2].event_id]  # the failed key stopped at its failure; the other key ran
    assert letters(publisher) == []


async def test_a_rejected_message_in_a_batch_is_dead_lettered_and_the_rest_goes_on() -> None:
    c, publisher = consumer()
    envelopes, records = batch(b"a", b"a", None)
    done: list[str] = []

    async def handle(envelope: Envelope, message: Any) -> None:
        if envelope.event_id == envelopes[0].event_id:
            raise Rejected("ticket was deleted")
        done.append(envelope.event_id)

    await c.dispatch_batch(topics.INBOUND_EMAIL, records + (BatchRecord(b"{nope", b"c", 9),), {"EmailReceived": handle})
    assert sorted(done) == sorted(e.event_id for e in envelopes[1:])
    assert sorted((letter["error_type"], letter["offset"]) for letter in letters(publisher)) == [
        ("InvalidEnvelope", 9),
        ("Rejected", 0),
    ]


async def test_each_message_of_a_batch_gets_its_own_span_in_the_senders_trace() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    c, _ = consumer()
    c.tracer_provider = provider
    envelopes, records = batch(b"a", b"b")
    parents = {e.event_id: f"00-{i + 1:032x}-{i + 1:016x}-01" for i, e in enumerate(envelopes)}
    records = tuple(
        BatchRecord(e.model_copy(update={"traceparent": parents[e.event_id]}).to_bytes(), r.key, r.offset)
        for e, r in zip(envelopes, records, strict=True)
    )

    async def handle(envelope: Envelope, message: Any) -> None:
        return None

    await c.dispatch_batch(topics.INBOUND_EMAIL, records, {"EmailReceived": handle})
    spans = {s.attributes["messaging.message.id"]: s for s in exporter.get_finished_spans()}
    for event_id, traceparent in parents.items():
        assert f"{spans[event_id].context.trace_id:032x}" == traceparent.split("-")[1]
        assert spans[event_id].kind.name == "CONSUMER"
