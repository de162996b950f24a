"""The consumer's policy: bad messages go to the dead-letter topic with the reason, passing failures retry."""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from contracts.models import Address
from faststream.kafka import KafkaBroker
from hdkit.kafka import Consumer, Rejected, RetryLater
from hdkit.testing import FakePublisher
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
