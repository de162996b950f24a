"""The wired app: the API behind the service token, and the consumer path on the test broker."""

from datetime import UTC, datetime

from faststream.kafka import TestKafkaBroker
from hdkit.testing import first_published

from contracts import REGISTRY, AddressUndeliverable, Envelope, NotificationFailed, NotificationSent, topics
from tests_notify.builders import DOMAIN, envelope_of, send_notification
from tests_notify.conftest import AUTH


async def test_the_api_refuses_callers_without_the_service_token(client):
    assert (await client.get("/notifications", params={"ticket_id": "t1001"})).status_code == 401


async def test_the_notifications_of_a_ticket_show_what_was_sent(app, client):
    command = send_notification()
    await app.state.handlers.send_notification(envelope_of(command), command)

    response = await client.get("/notifications", params={"ticket_id": "t1001"}, headers=AUTH)

    assert response.status_code == 200
    (notification,) = response.json()
    assert notification["notification_id"] == command.notification_id
    assert notification["state"] == "sent"
    assert notification["message_id"].endswith(f"@{DOMAIN}")
    assert (await client.get("/notifications", params={"ticket_id": "other"}, headers=AUTH)).json() == []


async def test_the_metrics_count_notifications_by_template_and_outcome(app, client):
    command = send_notification()
    await app.state.handlers.send_notification(envelope_of(command), command)

    metrics = (await client.get("/metrics")).text

    assert 'helpdesk_notifications_total{outcome="sent",template="auto_reply"} 1.0' in metrics


async def test_an_admin_can_replace_a_template(client):
    body = {"subject": "Thanks! {{ ticket.title }}", "text": "We got it: {{ link }}", "html": None}

    response = await client.put("/templates/auto_reply/en", json=body, headers=AUTH)

    assert response.status_code == 200
    fetched = (await client.get("/templates/auto_reply/en", headers=AUTH)).json()
    assert fetched["subject"] == "Thanks! {{ ticket.title }}"


async def test_a_template_that_does_not_compile_is_refused_with_the_part_named(client):
    body = {"subject": "ok", "text": "{% for %}", "html": None}

    response = await client.put("/templates/auto_reply/en", json=body, headers=AUTH)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "text"]


async def test_a_send_notification_on_kafka_becomes_a_mail_and_a_notification_sent_event(app, smtp):
    command = send_notification()
    out = await first_published(
        app.state.runtime.broker, envelope_of(command), to=topics.NOTIFY_COMMANDS, watch=topics.NOTIFY_EVENTS
    )
    assert len(smtp.outbox) == 1
    event = REGISTRY.parse(out)
    assert isinstance(event, NotificationSent)
    assert event.notification_id == command.notification_id


async def test_an_address_reported_undeliverable_on_kafka_gets_no_more_mail(app, store, smtp):
    bounced = AddressUndeliverable(
        address="alice@example.com",
        since=datetime(2026, 3, 2, 9, 15, tzinfo=UTC),
        status="5.1.1",
        diagnostic="550 user unknown",
        cause="dsn-1",
    )
    async with TestKafkaBroker(app.state.runtime.broker) as broker:
        envelope = Envelope.wrap(bounced, key=bounced.address)
        await broker.publish(envelope.to_bytes(), topic=topics.TICKET_EVENTS, key=b"alice@example.com")
    assert await store.suppression("alice@example.com") is not None

    command = send_notification()
    out = await first_published(
        app.state.runtime.broker, envelope_of(command), to=topics.NOTIFY_COMMANDS, watch=topics.NOTIFY_EVENTS
    )
    assert smtp.outbox == []
    event = REGISTRY.parse(out)
    assert isinstance(event, NotificationFailed) and event.permanent
    assert "alice@example.com is undeliverable since 2026-03-02 09:15 UTC" in event.reason
