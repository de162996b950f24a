"""Mail to an address that bounced for good is not sent, until an agent lifts the mark."""

from datetime import UTC, datetime, timedelta

from contracts.models import Actor

from contracts import REGISTRY, AddressDeliverable, AddressUndeliverable, Envelope, NotificationFailed, topics
from tests_notify.builders import send_notification
from tests_notify.conftest import handle

BOUNCED_AT = datetime(2026, 3, 2, 9, 15, tzinfo=UTC)
AGENT = Actor(role="agent", id="bo", name="Bo")


def undeliverable(address="alice@example.com", since=BOUNCED_AT):
    return AddressUndeliverable(
        address=address, since=since, status="5.1.1", diagnostic="550 5.1.1 user unknown", cause="dsn-1"
    )


def deliverable(address="alice@example.com", at=BOUNCED_AT + timedelta(days=1)):
    return AddressDeliverable(address=address, actor=AGENT, at=at)


async def deliver(handlers, event):
    envelope = Envelope.wrap(event, key=event.address)
    if isinstance(event, AddressUndeliverable):
        await handlers.address_undeliverable(envelope, event)
    else:
        await handlers.address_deliverable(envelope, event)


def failures(publisher):
    return [e for _, e in ((t, REGISTRY.parse(env)) for t, env in publisher.sent) if isinstance(e, NotificationFailed)]


async def test_an_automatic_mail_to_an_undeliverable_address_is_failed_without_smtp(handlers, store, publisher, smtp):
    await deliver(handlers, undeliverable())

    await handle(handlers, send_notification())

    assert smtp.outbox == []
    (failed,) = failures(publisher)
    assert failed.permanent is True
    assert failed.reason == (
        "not sent: alice@example.com is undeliverable since 2026-03-02 09:15 UTC (5.1.1: 550 5.1.1 user unknown)"
    )
    assert publisher.sent[0][0] == topics.NOTIFY_EVENTS
    doc = store.docs[send_notification().notification_id]
    assert doc["state"] == "failed" and doc["reason"] == failed.reason


async def test_a_mail_an_agent_wrote_to_an_undeliverable_address_is_not_sent_either(handlers, publisher, smtp):
    await deliver(handlers, undeliverable(address="Alice@Example.com"))

    await handle(handlers, send_notification(auto_submitted=None, to={"email": "ALICE@example.com"}))

    assert smtp.outbox == []
    (failed,) = failures(publisher)
    assert failed.permanent is True and "is undeliverable since" in failed.reason


async def test_the_same_suppressed_notification_handled_twice_is_reported_once(handlers, publisher, smtp, metrics):
    await deliver(handlers, undeliverable())
    command = send_notification()

    await handle(handlers, command)
    await handle(handlers, command)

    assert smtp.outbox == []
    assert len(failures(publisher)) == 1
    labels = {"template": "auto_reply", "outcome": "suppressed"}
    assert metrics.get_sample_value("helpdesk_notifications_total", labels) == 1


async def test_mail_to_other_addresses_still_goes_out(handlers, smtp):
    await deliver(handlers, undeliverable())

    await handle(handlers, send_notification(to={"email": "bob@example.com"}))

    assert [to for _, _, (to,) in smtp.outbox] == ["bob@example.com"]


async def test_after_an_agent_lifts_the_mark_mail_is_sent_again(handlers, smtp):
    await deliver(handlers, undeliverable())
    await deliver(handlers, deliverable())

    await handle(handlers, send_notification())

    assert len(smtp.outbox) == 1


async def test_an_older_bounce_arriving_late_does_not_undo_a_newer_lift(handlers, publisher, smtp):
    await deliver(handlers, deliverable(at=BOUNCED_AT + timedelta(days=1)))
    await deliver(handlers, undeliverable(since=BOUNCED_AT))

    await handle(handlers, send_notification())

    assert len(smtp.outbox) == 1 and failures(publisher) == []


async def test_an_older_lift_arriving_late_does_not_undo_a_newer_bounce(handlers, publisher, smtp):
    await deliver(handlers, undeliverable(since=BOUNCED_AT + timedelta(days=2)))
    await deliver(handlers, deliverable(at=BOUNCED_AT + timedelta(days=1)))

    await handle(handlers, send_notification())

    assert smtp.outbox == [] and len(failures(publisher)) == 1
