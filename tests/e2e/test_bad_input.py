"""Bad and repeated input gets a quarantine, a dead letter or a clear refusal, never a crash or a double."""

import asyncio
import json
import smtplib
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from local import LocalHelpdesk
from prometheus_client.parser import text_string_to_metric_families

from contracts import topics

from .client import api, caught, customer_mail, eventually, get_text, send_mail


def tickets_of(hd: LocalHelpdesk, requester: str) -> list[dict]:
    items = api(hd, "tickets", "/api/tickets?view=all&limit=200")["items"]
    return [t for t in items if t["requester"]["email"] == requester]


def replies_to(hd: LocalHelpdesk, address: str) -> int:
    return len([m for m in caught(hd) if address in str(m.get("To", ""))])


def test_an_unreadable_message_is_quarantined_and_the_next_one_still_becomes_a_ticket(
    helpdesk: LocalHelpdesk,
) -> None:
    raw = b"Subject: nobody sent this\r\nTo: support@localhost\r\n\r\nno From, no Sender, no Return-Path\r\n"
    send_mail(helpdesk, raw, sender="")
    listed = eventually(lambda: api(helpdesk, "ingest", "/api/quarantine"), what="the quarantine list")
    assert any("no usable sender" in q["reason"] and q["size"] == len(raw) for q in listed)
    metrics = get_text(helpdesk, "ingest", "/metrics")
    assert 'helpdesk_ingest_messages_total{channel="email",outcome="quarantined"}' in metrics

    customer = "after.quarantine@example.dk"
    send_mail(helpdesk, customer_mail(customer, "Efter", "Hej", "after-q@example.dk"), sender=customer)
    eventually(lambda: tickets_of(helpdesk, customer), what="the next message's ticket")


def test_the_same_email_delivered_again_and_ten_times_at_once_makes_one_ticket_and_one_reply(
    helpdesk: LocalHelpdesk,
) -> None:
    customer = "twice@example.se"
    message = customer_mail(customer, "Dubbel", "Samma mejl", "dup-1@example.se")
    send_mail(helpdesk, message, sender=customer)
    with ThreadPoolExecutor(10) as pool:
        list(pool.map(lambda _: send_mail(helpdesk, message, sender=customer), range(10)))
    eventually(lambda: replies_to(helpdesk, customer) == 1, what="the automatic reply")
    time.sleep(2)  # give a wrongly doubled reply the time to show up
    assert len(tickets_of(helpdesk, customer)) == 1
    assert replies_to(helpdesk, customer) == 1


def test_automatic_mail_makes_a_ticket_but_gets_no_automatic_reply(helpdesk: LocalHelpdesk) -> None:
    robot = "robot@example.com"
    send_mail(
        helpdesk,
        customer_mail(robot, "Out of office", "Away", "ooo-1@example.com", Auto_Submitted="auto-replied"),
        sender=robot,
    )
    (ticket,) = eventually(lambda: tickets_of(helpdesk, robot), what="the ticket")
    detail = api(helpdesk, "tickets", f"/api/tickets/{ticket['number']}")
    assert any(a["action"] == "automatic mail" for a in detail["activity"])
    time.sleep(2)
    assert replies_to(helpdesk, robot) == 0


def test_a_message_over_the_size_limit_is_refused_with_552(helpdesk: LocalHelpdesk) -> None:
    limit = int(helpdesk.extra_env["HELPDESK_MAX_MESSAGE_BYTES"])
    big = customer_mail("big@example.com", "Big", "x" * (limit + 1000), "big-1@example.com")
    with pytest.raises(smtplib.SMTPException) as refused:
        send_mail(helpdesk, big, sender="big@example.com")
    assert "552" in str(refused.value)


def test_mail_to_an_address_that_is_not_ours_is_refused(helpdesk: LocalHelpdesk) -> None:
    with smtplib.SMTP("127.0.0.1", helpdesk.ports.smtp, timeout=10) as smtp:
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            smtp.sendmail("a@example.com", ["someone@elsewhere.example"], b"Subject: x\r\n\r\nx")


def test_invalid_events_go_to_the_dead_letter_topic_with_the_reason(helpdesk: LocalHelpdesk) -> None:
    bootstrap = f"127.0.0.1:{helpdesk.ports.kafka}"
    bad_envelope = {
        "event_id": "bad-email-1",
        "type": "EmailReceived",
        "schema_version": 1,
        "occurred_at": "2026-11-23T10:00:00Z",
        "correlation_id": "bad-email-1",
        "payload": {"mailbox": "x"},
    }

    async def produce_and_read() -> list[dict]:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(topics.INBOUND_EMAIL, b"{not json", key=b"bad-1")
            await producer.send_and_wait(topics.INBOUND_EMAIL, json.dumps(bad_envelope).encode(), key=b"bad-2")
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(topics.DEAD_LETTER, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
        await consumer.start()
        letters: list[dict] = []
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and len({letter["key"] for letter in letters} & {"bad-1", "bad-2"}) < 2:
                batch = await consumer.getmany(timeout_ms=1000)
                for records in batch.values():
                    letters += [json.loads(r.value)["payload"] for r in records]
        finally:
            await consumer.stop()
        return letters

    letters = {letter["key"]: letter for letter in asyncio.run(produce_and_read())}
    assert letters["bad-1"]["error_type"] == "InvalidEnvelope" and letters["bad-1"]["service"] == "tickets"
    assert letters["bad-1"]["value"] == "{not json"
    assert "EmailReceived v1" in letters["bad-2"]["reason"] and "message_id" in letters["bad-2"]["reason"]
    dead = {
        sample.labels["error"]: sample.value
        for family in text_string_to_metric_families(get_text(helpdesk, "tickets", "/metrics"))
        for sample in family.samples
        if sample.name == "helpdesk_dead_letters_total"
    }
    assert dead["InvalidEnvelope"] >= 1 and dead["ValidationError"] >= 1


def test_an_auto_responder_that_marks_nothing_cannot_start_an_endless_mail_loop(helpdesk: LocalHelpdesk) -> None:
    """Two auto-responders ping-pong for hours in other helpdesks; ours stops at its per-address cap."""
    responder = "naive.responder@example.org"
    send_mail(helpdesk, customer_mail(responder, "Hello", "Anyone there?", "pingpong-0@example.org"), sender=responder)
    answered: set[str] = set()
    quiet_since = time.monotonic()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and time.monotonic() - quiet_since < 6:
        # The responder answers each of our mails with a new mail that carries no loop marker at all.
        for mail in [m for m in caught(helpdesk) if responder in str(m.get("To", ""))]:
            if mail["Message-ID"] not in answered:
                answered.add(mail["Message-ID"])
                quiet_since = time.monotonic()
                n = len(answered)
                body = customer_mail(responder, f"I am away ({n})", "Back on Monday.", f"pingpong-{n}@example.org")
                send_mail(helpdesk, body, sender=responder)
        time.sleep(0.3)
    assert replies_to(helpdesk, responder) == 10  # HELPDESK_AUTO_MAIL_PER_RECIPIENT_PER_HOUR
    tickets = eventually(lambda: len(tickets_of(helpdesk, responder)) == 11 and tickets_of(helpdesk, responder))
    suppressed = [
        a
        for t in tickets
        for a in api(helpdesk, "tickets", f"/api/tickets/{t['number']}")["activity"]
        if a["action"] == "email failed"
    ]
    assert len(suppressed) == 1
    assert "cap of 10 automatic mails to naive.responder@example.org" in suppressed[0]["detail"]
