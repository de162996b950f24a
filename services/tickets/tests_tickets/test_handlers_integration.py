"""The tickets handlers on the real store and Kafka: idempotent, threaded, and events published once."""

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from contracts.message_ids import make_message_id
from contracts.models import Address
from hdkit.mongo import OutboxRelay
from hdkit.testing import read_envelopes, started_publisher
from tickets.domain import Mailbox
from tickets.handlers import Handlers
from tickets.store import Store

from contracts import EmailReceived, Envelope, NotificationSent, derived_id, topics

SECRET = "integration-secret-0123456789"


def email(message_id: str, sender: str = "kund@example.se", **overrides: Any) -> tuple[Envelope, EmailReceived]:
    fields: dict[str, Any] = {
        "mailbox": "support@localhost",
        "message_id": message_id,
        "subject": "Trasig skrivare",
        "sender": Address(email=sender),
        "received_at": datetime.now(UTC),
        "text": "Hej",
        "raw_id": message_id,
        "size": 10,
    }
    fields.update(overrides)
    event = EmailReceived(**fields)
    return Envelope.wrap(event, event_id=derived_id("email", message_id)), event


async def handlers_on(mongo: Any, publisher: Any) -> tuple[Handlers, Store]:
    store = Store(mongo)
    await store.ensure_indexes()
    await store.seed_defaults(Mailbox(address="support@localhost", group="support"))
    return Handlers(store, OutboxRelay(store.tickets, publisher), message_id_secret=SECRET), store


@pytest.mark.asyncio
async def test_the_same_email_handled_twice_makes_one_ticket_and_one_created_event(infra: Any, mongo: Any) -> None:
    envelope, event = email("twice@example.se")
    async with started_publisher(infra.bootstrap) as publisher:
        handlers, store = await handlers_on(mongo, publisher)
        await handlers.email_received(envelope, event)
        await handlers.email_received(envelope, event)
        assert await store.tickets.count_documents({}) == 1
        ticket = await store.tickets.find_one({})
    created = await read_envelopes(
        infra.bootstrap,
        topics.TICKET_EVENTS,
        lambda e: e["type"] == "TicketCreated" and e["key"] == ticket["_id"],
        expect=1,
    )
    assert len({e["event_id"] for e in created}) == 1
    assert created[0]["causation_id"] == envelope.event_id


@pytest.mark.asyncio
async def test_a_reply_to_our_message_handled_ten_times_at_once_adds_one_comment(infra: Any, mongo: Any) -> None:
    async with started_publisher(infra.bootstrap) as publisher:
        handlers, store = await handlers_on(mongo, publisher)
        await handlers.email_received(*email("first@example.se"))
        ticket = await store.tickets.find_one({})
        ours = make_message_id(ticket_id=ticket["_id"], token="n1", secret=SECRET, domain="helpdesk.localhost")
        reply = email("reply@example.se", subject=f"Re: [#{ticket['number']}] Trasig", in_reply_to=(ours,))
        await asyncio.gather(*(handlers.email_received(*reply) for _ in range(10)))
        after = await store.get(ticket["_id"])
    assert after is not None
    assert len(after["comments"]) == 2
    assert after["status"] == "waiting_for_agent"
    assert after["version"] == 2
    assert await store.tickets.count_documents({}) == 1


@pytest.mark.asyncio
async def test_a_stranger_with_a_ticket_number_in_the_subject_gets_a_new_ticket(infra: Any, mongo: Any) -> None:
    async with started_publisher(infra.bootstrap) as publisher:
        handlers, store = await handlers_on(mongo, publisher)
        await handlers.email_received(*email("victim@example.se"))
        victim = await store.tickets.find_one({})
        await handlers.email_received(
            *email("spoof@evil.example", sender="mallory@evil.example", subject=f"Re: [#{victim['number']}] hi")
        )
        assert len((await store.get(victim["_id"]))["comments"]) == 1
        spoofed = await store.tickets.find_one({"requester.email": "mallory@evil.example"})
    assert spoofed is not None and spoofed["_id"] != victim["_id"]
    assert any("not a participant" in a["detail"] for a in spoofed["activity"])


@pytest.mark.asyncio
async def test_our_sent_message_id_is_remembered_so_a_reply_quoting_it_threads(infra: Any, mongo: Any) -> None:
    async with started_publisher(infra.bootstrap) as publisher:
        handlers, store = await handlers_on(mongo, publisher)
        await handlers.email_received(*email("orig@example.se"))
        ticket = await store.tickets.find_one({})
        sent = NotificationSent(
            notification_id="n-1",
            ticket_id=ticket["_id"],
            message_id="plain-id@mailer.example",
            to=Address(email="kund@example.se"),
            subject="x",
            template="auto_reply",
            sent_at=datetime.now(UTC),
        )
        sent_envelope = Envelope.wrap(sent)
        await handlers.notification_sent(sent_envelope, sent)
        await handlers.notification_sent(sent_envelope, sent)
        await handlers.email_received(*email("re@example.se", references=("plain-id@mailer.example",)))
        after = await store.get(ticket["_id"])
    assert after is not None
    assert len(after["comments"]) == 2
    assert [a["action"] for a in after["activity"]].count("email sent") == 1


@pytest.mark.asyncio
async def test_mail_answering_a_merged_ticket_joins_the_survivor(infra: Any, mongo: Any) -> None:
    from contracts.commands import AbsorbTicket, MergeTicket
    from contracts.models import Actor
    from tickets.workflow import Viewer

    async with started_publisher(infra.bootstrap) as publisher:
        handlers, store = await handlers_on(mongo, publisher)
        await handlers.email_received(*email("first@example.se", subject="Skrivaren"))
        await handlers.email_received(*email("second@example.se", sender="kollega@example.se", subject="Skrivaren 2"))
        first = await store.tickets.find_one({"source_message_id": "first@example.se"})
        second = await store.tickets.find_one({"source_message_id": "second@example.se"})
        admin = Viewer(id="ada", role="admin")
        merge = MergeTicket(command_id="merge-0001", actor=admin.actor(), number=first["number"], into=second["number"])
        await handlers.execute(merge, admin)
        system = Actor(role="system", name="tickets")
        absorb = AbsorbTicket(command_id="absorb-0001", actor=system, number=second["number"], source=first["number"])
        await handlers.execute(absorb, Viewer(id="tickets", role="system"))
        await handlers.email_received(*email("reply@example.se", in_reply_to=("first@example.se",), subject="Re: x"))
        survivor = await store.get(second["_id"])
        merged = await store.get(first["_id"])
    assert survivor is not None and merged is not None
    assert [c["message_id"] for c in survivor["comments"]] == [
        "second@example.se",
        "first@example.se",
        "reply@example.se",
    ]
    assert len(merged["comments"]) == 1 and merged["merged_into"] == second["number"]
    assert await store.tickets.count_documents({}) == 2
