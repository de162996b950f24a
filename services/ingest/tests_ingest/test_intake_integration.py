"""EmailIntake on the real store and Kafka: kept, published once, and nothing lost when Kafka fails."""

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hdkit.kafka import Publisher
from hdkit.mongo import OutboxRelay
from hdkit.testing import read_envelopes, started_publisher
from ingest.handlers import EmailIntake, Limits, NotAccepted, Outcome
from ingest.store import Store
from prometheus_client import CollectorRegistry

from contracts import Envelope, topics


class KafkaDownOnce(Publisher):
    """The real publisher, but Kafka is unreachable for the first publish (as in a crash or outage)."""

    def __init__(self, real: Publisher) -> None:
        self._real = real
        self.failures = 1

    async def publish(self, topic: str, envelope: Envelope) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("kafka unreachable")
        await self._real.publish(topic, envelope)


def mail(message_id: str) -> bytes:
    return (
        f"From: Åsa <asa@example.se>\r\nTo: support@localhost\r\nSubject: Fråga\r\n"
        f"Message-ID: <{message_id}>\r\n\r\nHej\r\n"
    ).encode()


async def intake_on(mongo: Any, publisher: Publisher) -> tuple[EmailIntake, Store, OutboxRelay]:
    store = Store(mongo)
    await store.ensure_indexes()
    relay = OutboxRelay(store.messages, publisher)
    return EmailIntake(store, relay, CollectorRegistry(), loop_domain="x", limits=Limits()), store, relay


def for_message(message_id: str) -> Any:
    return lambda env: env["type"] == "EmailReceived" and env["payload"]["message_id"] == message_id


@pytest.mark.asyncio
async def test_a_message_is_kept_with_its_raw_bytes_and_published_once(infra: Any, mongo: Any) -> None:
    async with started_publisher(infra.bootstrap) as publisher:
        intake, store, _ = await intake_on(mongo, publisher)
        assert await intake.accept(mail("once@example.se"), ["support@localhost"]) is Outcome.ACCEPTED
        assert await intake.accept(mail("once@example.se"), ["support@localhost"]) is Outcome.DUPLICATE
    events = await read_envelopes(infra.bootstrap, topics.INBOUND_EMAIL, for_message("once@example.se"), expect=1)
    assert len(events) == 1
    raw_id = events[0]["payload"]["raw_id"]
    assert await store.load_raw(raw_id) == mail("once@example.se")


@pytest.mark.asyncio
async def test_when_kafka_fails_the_sender_is_told_to_retry_and_the_retry_publishes_it_once(
    infra: Any, mongo: Any
) -> None:
    async with started_publisher(infra.bootstrap) as real:
        intake, _, _ = await intake_on(mongo, KafkaDownOnce(real))
        with pytest.raises(NotAccepted):
            await intake.accept(mail("retry@example.se"), ["support@localhost"])
        assert await intake.accept(mail("retry@example.se"), ["support@localhost"]) is Outcome.DUPLICATE
    events = await read_envelopes(infra.bootstrap, topics.INBOUND_EMAIL, for_message("retry@example.se"), expect=1)
    assert len(events) == 1


@pytest.mark.asyncio
async def test_a_message_left_unpublished_by_a_crash_is_published_by_the_sweeper(infra: Any, mongo: Any) -> None:
    async with started_publisher(infra.bootstrap) as real:
        intake, store, relay = await intake_on(mongo, KafkaDownOnce(real))
        with pytest.raises(NotAccepted):
            await intake.accept(mail("swept@example.se"), ["support@localhost"])
        assert await relay.sweep(older_than=timedelta(0)) == 1
        assert await relay.sweep(older_than=timedelta(0)) == 0
        assert await store.messages.count_documents({"outbox_since": {"$exists": True}}) == 0
    events = await read_envelopes(infra.bootstrap, topics.INBOUND_EMAIL, for_message("swept@example.se"), expect=1)
    assert len(events) == 1


@pytest.mark.asyncio
async def test_an_oversized_attachment_is_left_out_with_a_note_and_the_message_still_kept(
    infra: Any, mongo: Any
) -> None:
    raw = (
        b"From: a@example.com\r\nTo: support@localhost\r\nSubject: files\r\nMessage-ID: <att@example.com>\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\n"
        b"Content-Type: text/plain\r\n\r\nsee files\r\n--XX\r\nContent-Type: application/pdf\r\n"
        b"Content-Disposition: attachment; filename=small.pdf\r\n\r\nsmall\r\n--XX\r\n"
        b"Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=big.bin\r\n\r\n"
        + b"x" * 2000
        + b"\r\n--XX--\r\n"
    )
    async with started_publisher(infra.bootstrap) as publisher:
        store = Store(mongo)
        relay = OutboxRelay(store.messages, publisher)
        intake = EmailIntake(
            store, relay, CollectorRegistry(), loop_domain="x", limits=Limits(max_attachment_bytes=1000)
        )
        assert await intake.accept(raw, ["support@localhost"]) is Outcome.ACCEPTED
    (event,) = await read_envelopes(infra.bootstrap, topics.INBOUND_EMAIL, for_message("att@example.com"), expect=1)
    payload = event["payload"]
    assert [a["filename"] for a in payload["attachments"]] == ["small.pdf"]
    assert "big.bin" in payload["text"] and "left out" in payload["text"]
    assert payload["left_out"] == [{"filename": "big.bin", "size": 2000, "reason": "file_too_large"}]
    assert await store.load_raw(payload["attachments"][0]["attachment_id"]) == b"small"


@pytest.mark.asyncio
async def test_the_event_carries_the_new_part_of_a_reply_and_what_a_bounce_reports(infra: Any, mongo: Any) -> None:
    corpus = Path(__file__).parent / "corpus"
    reply = (corpus / "011-gmail-reply-on-wrote.eml").read_bytes()
    bounce = (corpus / "031-postfix-bounce-user-unknown.eml").read_bytes()
    async with started_publisher(infra.bootstrap) as publisher:
        intake, _, _ = await intake_on(mongo, publisher)
        for raw in (reply, bounce):
            assert await intake.accept(raw, ["events-check@localhost"]) is Outcome.ACCEPTED
    events = await read_envelopes(
        infra.bootstrap, topics.INBOUND_EMAIL, lambda e: e["payload"]["mailbox"] == "events-check@localhost", expect=2
    )
    by_bounce = {e["payload"]["bounce"] is not None: e["payload"] for e in events}
    answer = by_bounce[False]
    assert answer["text_new"] and len(answer["text_new"]) < len(answer["text"])
    assert answer["text"].startswith(answer["text_new"].strip()[:20])
    report = by_bounce[True]["bounce"]
    assert report["permanent"] is True and report["status"].startswith("5.") and report["recipients"]
