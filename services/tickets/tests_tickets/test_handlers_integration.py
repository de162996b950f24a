"""The tickets handlers on the real store and Kafka: idempotent, threaded, and events published once."""

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from contracts.message_ids import make_message_id
from contracts.models import Address, Bounce
from hdkit.mongo import OutboxRelay
from hdkit.staff import StaffDirectory
from hdkit.testing import read_envelopes, started_publisher

from contracts import EmailReceived, Envelope, NotificationSent, derived_id, topics
from tests_tickets.wiring import SECRET, handlers_on


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


async def ticket_events(bootstrap: str, type_: str, key: str) -> list[dict[str, Any]]:
    """Return the envelopes of one type and key on the tickets events topic (expecting one)."""
    return await read_envelopes(
        bootstrap, topics.TICKET_EVENTS, lambda e: e["type"] == type_ and e["key"] == key, expect=1
    )


@pytest.mark.asyncio
async def test_the_same_email_handled_twice_makes_one_ticket_and_one_created_event(infra: Any, mongo: Any) -> None:
    envelope, event = email("twice@example.se")
    async with started_publisher(infra.bootstrap) as publisher:
        handlers, store = await handlers_on(mongo, publisher)
        await handlers.email_received(envelope, event)
        await handlers.email_received(envelope, event)
        assert await store.tickets.count_documents({}) == 1
        ticket = await store.tickets.find_one({})
    created = await ticket_events(infra.bootstrap, "TicketCreated", ticket["_id"])
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
    assert after["status"] == ticket["status"]  # triggers' default rule moves it, not tickets
    assert after["version"] == 2
    assert await store.tickets.count_documents({}) == 1
    added = await ticket_events(infra.bootstrap, "CommentAdded", ticket["_id"])
    assert len({e["event_id"] for e in added}) == 1  # published at least once, one event
    assert added[0]["payload"]["author_role"] == "customer" and added[0]["payload"]["kind"] == "customer_comment"
    assert await read_envelopes(
        infra.bootstrap, topics.TICKET_EVENTS, lambda e: e["type"] == "TicketUpdated" and e["key"] == ticket["_id"],
        expect=1, wait=2,
    ) == []  # fmt: skip


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


@pytest.mark.asyncio
async def test_a_bounce_of_our_mail_is_shown_on_its_ticket_and_marks_the_address(infra: Any, mongo: Any) -> None:
    async with started_publisher(infra.bootstrap) as publisher:
        handlers, store = await handlers_on(mongo, publisher)
        await handlers.email_received(*email("ask@example.se", sender="Kund <kund@example.se>"))
        ticket = await store.tickets.find_one({})
        ours = make_message_id(ticket_id=ticket["_id"], token="n1", secret=SECRET, domain="helpdesk.localhost")
        bounce = Bounce(
            recipients=("kund@example.se",),
            action="failed",
            status="5.1.1",
            permanent=True,
            diagnostic="550 5.1.1 user unknown",
            original_message_id=ours,
        )
        report = email(
            "dsn-1@mx.example.se",
            sender="MAILER-DAEMON@mx.example.se",
            subject="Undelivered Mail Returned to Sender",
            auto_submitted=True,
            auto_reason="delivery status notification",
            bounce=bounce,
        )
        await handlers.email_received(*report)
        assert (await store.contacts.find_one({"_id": "kund@example.se"}))["outbox"] == {}  # published at once
        await handlers.email_received(*report)  # the same report again changes nothing more
        after = await store.get(ticket["_id"])
        contact = await store.contact("kund@example.se")
    assert after is not None and await store.tickets.count_documents({}) == 1
    assert len(after["comments"]) == 1 and after["status"] == ticket["status"]  # no comment, no status change
    (problem,) = after["delivery_problems"]
    assert problem["address"] == "kund@example.se" and problem["status"] == "5.1.1" and problem["permanent"]
    bounced = [a for a in after["activity"] if a["action"] == "email bounced"]
    assert len(bounced) == 1 and "could not be delivered" in bounced[0]["detail"]
    assert "user unknown" in bounced[0]["detail"]
    assert contact is not None and contact["undeliverable"]["status"] == "5.1.1"
    assert contact["undeliverable"]["diagnostic"] == "550 5.1.1 user unknown"
    marked = await ticket_events(infra.bootstrap, "AddressUndeliverable", "kund@example.se")
    assert len(marked) == 1  # the same report twice: one event
    (event,) = marked
    assert event["causation_id"] == report[0].event_id
    assert event["payload"]["cause"] == report[0].event_id
    assert event["payload"]["status"] == "5.1.1" and event["payload"]["diagnostic"] == "550 5.1.1 user unknown"
    assert (await store.contacts.find_one({"_id": "kund@example.se"}))["outbox"] == {}


@pytest.mark.asyncio
async def test_an_agent_lifts_the_mark_once_and_the_old_report_again_does_not_mark_anew(infra: Any, mongo: Any) -> None:
    from tickets.handlers import NotMarked
    from tickets.workflow import NotFound, Viewer

    bounce = Bounce(recipients=("Gone@Example.se",), action="failed", status="5.1.2", permanent=True)
    report = email("dsn-3@mx.example.se", sender="MAILER-DAEMON@mx.example.se", bounce=bounce)
    agent = Viewer(id="bo", role="agent", name="Bo")
    async with started_publisher(infra.bootstrap) as publisher:
        handlers, store = await handlers_on(mongo, publisher)
        await handlers.email_received(*report)
        contact = await handlers.set_deliverable("gone@example.se", agent)
        with pytest.raises(NotMarked):
            await handlers.set_deliverable("gone@example.se", agent)
        with pytest.raises(NotFound):
            await handlers.set_deliverable("nobody@example.se", agent)
        await handlers.email_received(*report)  # redelivered after the lift
        after = await store.contact("gone@example.se")
    assert "undeliverable" not in contact and contact["lifted"]["by"]["id"] == "bo"
    assert after is not None and "undeliverable" not in after
    lifted = await ticket_events(infra.bootstrap, "AddressDeliverable", "gone@example.se")
    assert len(lifted) == 1
    assert lifted[0]["payload"]["address"] == "gone@example.se" and lifted[0]["payload"]["actor"]["id"] == "bo"
    marked = await ticket_events(infra.bootstrap, "AddressUndeliverable", "gone@example.se")
    assert len(marked) == 1


@pytest.mark.asyncio
async def test_an_undeliverable_event_left_in_the_outbox_by_a_crash_goes_out_when_the_report_comes_again(
    infra: Any, mongo: Any
) -> None:
    bounce = Bounce(recipients=("crash@example.se",), action="failed", status="5.1.1", permanent=True)
    report = email("dsn-4@mx.example.se", sender="MAILER-DAEMON@mx.example.se", bounce=bounce)
    async with started_publisher(infra.bootstrap) as publisher:
        handlers, store = await handlers_on(mongo, publisher)
        handlers._contacts_relay = None  # as if the process stopped before publishing
        await handlers.email_received(*report)
        assert (await store.contacts.find_one({"_id": "crash@example.se"}))["outbox"]
        handlers._contacts_relay = OutboxRelay(store.contacts, publisher)
        await handlers.email_received(*report)
    marked = await ticket_events(infra.bootstrap, "AddressUndeliverable", "crash@example.se")
    assert len(marked) == 1


@pytest.mark.asyncio
async def test_a_delay_warning_is_logged_but_marks_nothing(infra: Any, mongo: Any) -> None:
    async with started_publisher(infra.bootstrap) as publisher:
        handlers, store = await handlers_on(mongo, publisher)
        await handlers.email_received(*email("slow@example.se"))
        ticket = await store.tickets.find_one({})
        ours = make_message_id(ticket_id=ticket["_id"], token="n2", secret=SECRET, domain="helpdesk.localhost")
        bounce = Bounce(recipients=("kund@example.se",), action="delayed", status="4.4.1", permanent=False,
                        original_message_id=ours)  # fmt: skip
        await handlers.email_received(*email("dsn-2@mx.example.se", sender="postmaster@mx.example.se", bounce=bounce))
        after = await store.get(ticket["_id"])
        contact = await store.contact("kund@example.se")
    assert any("is delayed" in a["detail"] for a in after["activity"] if a["action"] == "email bounced")
    assert contact is not None and "undeliverable" not in contact


@pytest.mark.asyncio
async def test_an_unknown_sender_becomes_a_contact_with_the_name_they_first_gave(infra: Any, mongo: Any) -> None:
    async with started_publisher(infra.bootstrap) as publisher:
        handlers, store = await handlers_on(mongo, publisher)
        await handlers.email_received(*email("c1@example.se", sender="kund@example.se"))
        contact = await store.contact("KUND@example.se")
    assert contact is not None and contact["email"] == "kund@example.se"


def staff_of(*members: dict[str, Any]) -> StaffDirectory:
    directory = StaffDirectory("http://127.0.0.1:1", "token", refresh_seconds=3600)
    directory.set(list(members))
    return directory


@pytest.mark.asyncio
async def test_mail_from_an_agents_address_is_the_agents_reply_not_the_customers(infra: Any, mongo: Any) -> None:
    async with started_publisher(infra.bootstrap) as publisher:
        handlers, store = await handlers_on(mongo, publisher)
        handlers._staff = staff_of(
            {"id": "u-bo", "email": "bo@helpdesk.se", "name": "Bo Agent", "role": "agent"},
            {"id": "u-li", "email": "li@helpdesk.se", "name": "Li", "role": "light_agent"},
        )
        await handlers.email_received(*email("q@example.se"))
        ticket = await store.tickets.find_one({})
        ours = make_message_id(ticket_id=ticket["_id"], token="n3", secret=SECRET, domain="helpdesk.localhost")
        await handlers.email_received(*email("a@helpdesk.se", sender="Bo@Helpdesk.se", in_reply_to=(ours,)))
        await handlers.email_received(*email("l@helpdesk.se", sender="li@helpdesk.se", in_reply_to=(ours,)))
        after = await store.get(ticket["_id"])
    agent, light = after["comments"][1:]
    assert agent["kind"] == "public_reply" and agent["author"]["role"] == "agent" and agent["author"]["id"] == "u-bo"
    assert light["kind"] == "internal_comment" and light["visibility"] == "internal"
    assert after["status"] == ticket["status"]  # not "waiting for agent": no customer spoke
    assert after["first_response_at"] is not None
    assert {"a@helpdesk.se", "l@helpdesk.se"} <= set(after["message_ids"])


@pytest.mark.asyncio
async def test_when_the_portal_never_answered_mail_counts_as_the_customers(infra: Any, mongo: Any) -> None:
    async with started_publisher(infra.bootstrap) as publisher:
        handlers, store = await handlers_on(mongo, publisher)
        handlers._staff = StaffDirectory("http://127.0.0.1:1", "token")  # nothing listens there
        await handlers.email_received(*email("q2@example.se"))
        ticket = await store.tickets.find_one({})
        ours = make_message_id(ticket_id=ticket["_id"], token="n4", secret=SECRET, domain="helpdesk.localhost")
        await handlers.email_received(*email("r2@example.se", sender="bo@helpdesk.se", in_reply_to=(ours,)))
        after = await store.get(ticket["_id"])
    assert after["comments"][1]["kind"] == "customer_comment"


@pytest.mark.asyncio
async def test_an_agents_mail_names_the_staff_its_new_text_mentions(infra: Any, mongo: Any) -> None:
    async with started_publisher(infra.bootstrap) as publisher:
        handlers, store = await handlers_on(mongo, publisher)
        handlers._staff = staff_of(
            {"id": "u-bo", "email": "bo@helpdesk.se", "name": "Bo Agent", "role": "agent"},
            {"id": "u-li", "email": "li@helpdesk.se", "name": "Li", "role": "light_agent"},
            {"id": "u-cy", "email": "cy@helpdesk.se", "name": "Cy", "role": "agent"},
        )
        await handlers.email_received(*email("m0@example.se"))
        ticket = await store.tickets.find_one({})
        ours = make_message_id(ticket_id=ticket["_id"], token="n5", secret=SECRET, domain="helpdesk.localhost")
        mail = email(
            "m1@helpdesk.se",
            sender="bo@helpdesk.se",
            in_reply_to=(ours,),
            text="@li tar du den här?\n\n> @cy skrev tidigare",
            text_new="@li tar du den här?",
        )
        await handlers.email_received(*mail)
    events = await read_envelopes(
        infra.bootstrap, topics.TICKET_EVENTS, lambda e: e["type"] == "CommentAdded" and e["key"] == ticket["_id"],
        expect=1,
    )  # fmt: skip
    (added,) = [e for e in events if e["payload"]["author_role"] == "agent"]
    assert added["payload"]["mentions"] == ["u-li"]  # not Cy, named only in the quoted history
