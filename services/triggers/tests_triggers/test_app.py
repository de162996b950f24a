"""The wired app: the rules API behind the service token, and the consumer path on the test broker."""

import httpx
import pytest
from hdkit.testing import first_published
from triggers.app import create_app
from triggers.domain import default_rules
from triggers.settings import Settings

from contracts import REGISTRY, SendNotification, topics
from tests_triggers.builders import LEFT_OUT, comment_added, envelope_of, ticket_created
from tests_triggers.fakes import FakeTriggerStore

TOKEN = "test-service-token-0123456789"  # noqa: S105 (a token for tests only)
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def store():
    return FakeTriggerStore(default_rules())


@pytest.fixture
def app(store):
    return create_app(Settings(service_token=TOKEN, mongo_url="mongodb://127.0.0.1:1/"), store=store)


@pytest.fixture
async def client(app):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://triggers") as c:
        yield c


async def test_the_rules_api_refuses_callers_without_the_service_token(client):
    assert (await client.get("/rules")).status_code == 401
    assert (await client.get("/rules", headers={"Authorization": "Bearer wrong"})).status_code == 401


async def test_an_admin_sees_the_default_rules(client):
    response = await client.get("/rules", headers=AUTH)

    assert response.status_code == 200
    assert sorted(r["name"] for r in response.json()) == sorted(r.name for r in default_rules())
    assert (await client.get("/rules/auto-reply-new-ticket", headers=AUTH)).json()["active"] is True
    assert (await client.get("/rules/no-such-rule", headers=AUTH)).status_code == 404


async def test_an_invalid_rule_is_refused_with_the_wrong_part_named(client):
    body = {
        "name": "Broken",
        "event": "ticket.created",
        "conditions": [{"field": "ticket.channel", "op": "sounds_like", "value": "email"}],
        "actions": [{"type": "send_template", "template": "auto_reply", "target": "customer"}],
    }

    response = await client.put("/rules/broken", json=body, headers=AUTH)

    assert response.status_code == 422
    assert ["body", "conditions", 0, "op"] in [e["loc"] for e in response.json()["detail"]]


async def test_a_rule_body_with_another_id_than_the_path_is_refused(client):
    rule = (await client.get("/rules/auto-reply-new-ticket", headers=AUTH)).json()

    response = await client.put("/rules/something-else", json=rule, headers=AUTH)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "id"]


async def test_an_edited_rule_is_used_for_the_next_event(app, client, store):
    rule = (await client.get("/rules/auto-reply-new-ticket", headers=AUTH)).json()
    handlers = app.state.handlers
    assert len(await handlers.rules.get()) == len([r for r in default_rules() if r.active])

    rule["conditions"].append({"field": "ticket.type", "op": "is", "value": "question"})
    response = await client.put("/rules/auto-reply-new-ticket", json=rule, headers=AUTH)

    assert response.status_code == 200
    (cached,) = [r for r in await handlers.rules.get() if r.id == "auto-reply-new-ticket"]
    assert cached.conditions[-1].value == "question"


async def test_switching_a_rule_off_and_on(client):
    off = await client.post("/rules/auto-reply-new-ticket/active", json={"active": False}, headers=AUTH)
    flipped = await client.post("/rules/auto-reply-new-ticket/active", headers=AUTH)

    assert off.json()["active"] is False
    assert flipped.json()["active"] is True
    assert (await client.post("/rules/nope/active", headers=AUTH)).status_code == 404


async def test_a_ticket_created_on_kafka_comes_out_as_a_send_notification_command(app):
    event = ticket_created()
    envelope = await first_published(
        app.state.runtime.broker, envelope_of(event), to=topics.TICKET_EVENTS, watch=topics.NOTIFY_COMMANDS
    )
    command = REGISTRY.parse(envelope)
    assert isinstance(command, SendNotification)
    assert command.to.email == "alice@example.com"
    assert envelope.key == "t-1001"


async def test_a_customer_reply_with_attachments_left_out_on_kafka_comes_out_as_the_notice(store):
    settings = Settings(service_token=TOKEN, mongo_url="mongodb://127.0.0.1:1/", max_attachment_bytes=1_000_000)
    app = create_app(settings, store=store)
    event = comment_added(left_out=LEFT_OUT)
    envelope = await first_published(
        app.state.runtime.broker, envelope_of(event, "evt-c2"), to=topics.TICKET_EVENTS, watch=topics.NOTIFY_COMMANDS
    )
    command = REGISTRY.parse(envelope)
    assert isinstance(command, SendNotification)
    assert command.template == "attachments_left_out" and command.to.email == "bo@example.se"
    assert command.context["limits"]["per_file"] == 1_000_000
