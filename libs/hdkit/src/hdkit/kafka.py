"""Kafka wiring: the broker with tracing and metrics, publishing envelopes, and consuming them safely.

Consumers commit an offset only after the handler has finished. A message that cannot be read (bad
JSON, unknown version, failed validation) or that a handler refuses for good goes to the dead-letter
topic with the reason; a passing failure (store or broker away) is retried with back-off.

A busy topic can be consumed in batches (`subscribe_batch`): the messages of one poll are split into
lanes by key, the lanes run concurrently and each lane in order, and the offsets are committed once
the whole batch is done. A failure rewinds the batch; handlers are idempotent, so what already ran is
a no-op the second time.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from contracts.envelope import utcnow
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from opentelemetry import trace
from opentelemetry.propagate import extract
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry, Counter
from pydantic import ValidationError
from pymongo.errors import ConnectionFailure

from contracts import REGISTRY, DeadLettered, Envelope, UnknownMessageType, decode_envelope, topics
from hdkit import failpoints
from hdkit.settings import KafkaSettings
from hdkit.telemetry import traceparent_context

log = logging.getLogger(__name__)

Handler = Callable[[Envelope, Any], Awaitable[None]]


class Rejected(Exception):
    """A handler's verdict that a message can never be processed (it goes to the dead-letter topic)."""


def make_broker(
    settings: KafkaSettings, *, service: str, tracer_provider: TracerProvider, metrics: CollectorRegistry
) -> KafkaBroker:
    """Return a broker whose publishes wait for all in-sync replicas and carry the trace context."""
    return KafkaBroker(
        settings.kafka_bootstrap,
        client_id=f"helpdesk-{service}",
        acks="all",
        enable_idempotence=True,
        middlewares=[
            KafkaTelemetryMiddleware(tracer_provider=tracer_provider),
            KafkaPrometheusMiddleware(registry=metrics, app_name=service, metrics_prefix="helpdesk"),
        ],
        logger=logging.getLogger(f"faststream.{service}"),
        log_level=logging.DEBUG,  # "Received"/"Processed" for every message: only when debugging
    )


class Publisher:
    """Publishes envelopes; returns only after Kafka has acknowledged them."""

    def __init__(self, broker: KafkaBroker) -> None:
        self._broker = broker

    async def publish(self, topic: str, envelope: Envelope) -> None:
        """Send one envelope, inside the trace it was made in."""
        with traceparent_context(envelope.traceparent):
            await self._broker.publish(
                envelope.to_bytes(),
                topic=topic,
                key=envelope.key.encode() if envelope.key else None,
                headers={"content-type": "application/json", "x-event-type": envelope.type},
            )

    async def publish_many(self, items: list[tuple[str, Envelope]]) -> None:
        """Send several envelopes in order."""
        for topic, envelope in items:
            await self.publish(topic, envelope)


class RetryLater(Exception):
    """A handler's verdict that the message will succeed later (e.g. contention): retried without limit."""


# Errors that say "the store or the broker is away for now": retried without limit.
TRANSIENT: tuple[type[BaseException], ...] = (ConnectionFailure, asyncio.TimeoutError, OSError, RetryLater)


class RecordMessage(NamedTuple):
    """One record of a batch, shaped like the message FastStream hands a single-message subscriber."""

    body: bytes
    raw_message: Any


@dataclass
class Consumer:
    """Registers one subscriber for a topic and routes envelopes to handlers by type."""

    broker: KafkaBroker
    publisher: Publisher
    service: str
    metrics: CollectorRegistry
    workers: int = 1
    max_attempts: int = 5
    retry_delay: float = 0.5
    tracer_provider: TracerProvider | None = None
    _attempts: dict[tuple[str, int, int], int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._dead = Counter(
            "helpdesk_dead_letters_total",
            "Messages sent to the dead-letter topic, by topic and error.",
            ["service", "topic", "error"],
            registry=self.metrics,
        )
        self._handled = Counter(
            "helpdesk_events_handled_total",
            "Envelopes handled, by topic and type.",
            ["service", "topic", "type"],
            registry=self.metrics,
        )

    def subscribe(self, topic: str, handlers: Mapping[str, Handler], *, group_id: str | None = None) -> None:
        """Consume `topic` in this service's consumer group; types without a handler are skipped."""
        group = group_id or f"helpdesk-{self.service}"

        async def on_message(msg: KafkaMessage) -> None:
            await self.dispatch(topic, msg, handlers)

        on_message.__name__ = f"{self.service}_{topic.replace('.', '_').replace('-', '_')}"
        self.broker.subscriber(
            topic,
            group_id=group,
            ack_policy=AckPolicy.NACK_ON_ERROR,
            auto_offset_reset="earliest",
            max_workers=self.workers,
            title=f"{self.service}:{topic}",
            description=f"{self.service} handles {', '.join(sorted(handlers))} from this topic.",
        )(on_message)

    def subscribe_batch(
        self,
        topic: str,
        handlers: Mapping[str, Handler],
        *,
        group_id: str | None = None,
        max_records: int = 500,
        lanes: int = 64,
    ) -> None:
        """Consume `topic` in batches of up to `max_records`: different keys concurrently, one key in order."""
        group = group_id or f"helpdesk-{self.service}"

        async def on_batch(msg: KafkaMessage) -> None:
            records = msg.raw_message if isinstance(msg.raw_message, tuple) else (msg.raw_message,)
            await self.dispatch_batch(topic, records, handlers, lanes=lanes)

        on_batch.__name__ = f"{self.service}_{topic.replace('.', '_').replace('-', '_')}_batch"
        self.broker.subscriber(
            topic,
            group_id=group,
            batch=True,
            max_records=max_records,
            batch_timeout_ms=20,
            ack_policy=AckPolicy.NACK_ON_ERROR,
            auto_offset_reset="earliest",
            title=f"{self.service}:{topic}",
            description=f"{self.service} handles {', '.join(sorted(handlers))} from this topic, in batches.",
        )(on_batch)

    async def dispatch_batch(
        self, topic: str, records: tuple[Any, ...], handlers: Mapping[str, Handler], *, lanes: int = 64
    ) -> None:
        """Run a batch: records with the same key in order, different keys side by side (at most `lanes`).

        Every lane runs to its end or its first failure; then the first failure is raised, so the batch is
        redelivered from its start (what already ran is a no-op then, handlers being idempotent).
        """
        by_key: dict[Any, list[Any]] = {}
        for record in records:
            key = getattr(record, "key", None) or (getattr(record, "partition", -1), getattr(record, "offset", -1))
            by_key.setdefault(key, []).append(record)
        gate = asyncio.Semaphore(lanes)

        async def lane(batch: list[Any]) -> None:
            async with gate:
                for record in batch:
                    await self.dispatch(topic, RecordMessage(record.value, record), handlers, traced=True)

        outcomes = await asyncio.gather(*(lane(batch) for batch in by_key.values()), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def dispatch(self, topic: str, msg: Any, handlers: Mapping[str, Handler], *, traced: bool = False) -> None:
        """Decode, route and run one message; dead-letter what cannot be processed."""
        raw: bytes = msg.body if isinstance(msg.body, bytes) else bytes(msg.body)
        record = msg.raw_message
        where = (topic, getattr(record, "partition", -1), getattr(record, "offset", -1))
        try:
            envelope = decode_envelope(raw)
        except ValidationError as exc:
            await self.dead_letter(topic, msg, f"not a valid envelope: {exc}", "InvalidEnvelope")
            return
        handler = handlers.get(envelope.type)
        if handler is None:
            return
        try:
            message = REGISTRY.parse(envelope)
        except (ValidationError, UnknownMessageType) as exc:
            await self.dead_letter(topic, msg, f"{envelope.type} v{envelope.schema_version}: {exc}", type(exc).__name__)
            return
        try:
            if traced:  # a batch: FastStream's middleware made one span for all; give each message its own
                await self._traced(topic, envelope, handler, message)
            else:
                await handler(envelope, message)
        except Rejected as exc:
            await self.dead_letter(topic, msg, str(exc), "Rejected")
            return
        except TRANSIENT as exc:
            log.warning("passing failure on %s %s, will retry: %r", envelope.type, envelope.event_id, exc)
            await asyncio.sleep(self.retry_delay)
            raise
        except Exception as exc:
            log.exception("handler failed on %s %s", envelope.type, envelope.event_id)
            await asyncio.sleep(self.retry_delay)
            if await self._give_up(where, topic, msg, exc):
                return
            raise
        self._attempts.pop(where, None)
        self._handled.labels(self.service, topic, envelope.type).inc()
        failpoints.hit("after_handle")  # handled, offset not yet committed

    async def _traced(self, topic: str, envelope: Envelope, handler: Handler, message: Any) -> None:
        tracer = (self.tracer_provider or trace.get_tracer_provider()).get_tracer("hdkit.kafka")
        parent = extract({"traceparent": envelope.traceparent}) if envelope.traceparent else None
        with tracer.start_as_current_span(
            f"{topic} process",
            context=parent,
            kind=trace.SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.destination.name": topic,
                "messaging.message.id": envelope.event_id,
                "messaging.operation.type": "process",
            },
        ):
            await handler(envelope, message)

    async def _give_up(self, where: tuple[str, int, int], topic: str, msg: Any, exc: BaseException) -> bool:
        self._attempts[where] = self._attempts.get(where, 0) + 1
        if self._attempts[where] < self.max_attempts:
            return False
        self._attempts.pop(where, None)
        await self.dead_letter(topic, msg, f"failed {self.max_attempts} times: {exc!r}", type(exc).__name__)
        return True

    async def dead_letter(self, topic: str, msg: Any, reason: str, error: str) -> None:
        """Publish the message with its reason to the dead-letter topic, log it and count it."""
        record = msg.raw_message
        raw: bytes = msg.body if isinstance(msg.body, bytes) else bytes(msg.body)
        key = getattr(record, "key", None)
        headers = {k: v.decode("utf-8", "replace") for k, v in (getattr(record, "headers", None) or ())}
        letter = DeadLettered(
            service=self.service,
            topic=topic,
            partition=getattr(record, "partition", -1),
            offset=getattr(record, "offset", -1),
            key=key.decode("utf-8", "replace") if isinstance(key, bytes) else key,
            value=raw.decode("utf-8", "replace"),
            headers=headers,
            reason=reason[:100_000],
            error_type=error,
            failed_at=utcnow(),
        )
        log.error("dead-lettered a message from %s: %s", topic, reason[:2000])
        self._dead.labels(self.service, topic, error).inc()
        await self.publisher.publish(topics.DEAD_LETTER, Envelope.wrap(letter, key=letter.key))
