"""The admin API (signatures, mail settings) and the in-app notifications API, behind the service token."""

from datetime import UTC, datetime, timedelta

import pytest
from faststream.kafka import TestKafkaBroker

from contracts import Envelope, topics
from tests_notify.builders import agent_reply, comment_added, envelope_of, ticket_assigned
from tests_notify.conftest import AUTH

PERSONAL = {"scope": "personal", "user_id": "u-bo", "text": "Bo Berg\nAcme Support"}


def field_named(response):
    assert response.status_code == 422, response.text
    return response.json()["detail"][0]["loc"]


@pytest.mark.parametrize(
    ("path", "method"),
    [("/signatures", "get"), ("/settings", "get"), ("/inapp?user_id=u-bo", "get"), ("/inapp/read", "post")],
)
async def test_every_new_route_refuses_callers_without_the_service_token(client, path, method):
    assert (await client.request(method.upper(), path, json={})).status_code == 401


async def test_an_admin_can_store_list_and_delete_a_signature(client):
    assert (await client.put("/signatures", json=PERSONAL, headers=AUTH)).status_code == 200

    listed = (await client.get("/signatures", params={"user_id": "u-bo"}, headers=AUTH)).json()
    assert [(s["scope"], s["user_id"], s["text"]) for s in listed] == [("personal", "u-bo", "Bo Berg\nAcme Support")]

    deleted = await client.delete("/signatures", params={"scope": "personal", "user_id": "u-bo"}, headers=AUTH)
    assert deleted.status_code == 204
    assert (await client.get("/signatures", headers=AUTH)).json() == []
    again = await client.delete("/signatures", params={"scope": "personal", "user_id": "u-bo"}, headers=AUTH)
    assert again.status_code == 404


async def test_a_stored_signature_signs_the_next_mail(app, client, smtp):
    await client.put("/signatures", json=PERSONAL, headers=AUTH)
    command = agent_reply()

    await app.state.handlers.send_notification(envelope_of(command), command)

    assert smtp.outbox[0][0].get_body(("plain",)).get_content().rstrip().endswith("-- \nBo Berg\nAcme Support")


async def test_putting_the_same_scope_again_replaces_it(client):
    await client.put("/signatures", json=PERSONAL, headers=AUTH)
    await client.put("/signatures", json={**PERSONAL, "text": "Bo"}, headers=AUTH)

    assert [s["text"] for s in (await client.get("/signatures", headers=AUTH)).json()] == ["Bo"]


async def test_the_html_of_a_signature_is_made_safe_before_it_is_stored(client):
    body = {**PERSONAL, "html": '<p onclick="steal()">Bo<script>alert(1)</script></p>'}

    stored = (await client.put("/signatures", json=body, headers=AUTH)).json()

    assert "script" not in stored["html"] and "onclick" not in stored["html"]
    assert "Bo" in stored["html"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"scope": "mailbox", "text": "x"}, "mailbox"),
        ({"scope": "personal_mailbox", "mailbox": "support@localhost", "text": "x"}, "user_id"),
        ({"scope": "general", "user_id": "u-bo", "text": "x"}, "user_id"),
        ({"scope": "everyone", "text": "x"}, "scope"),
        ({"scope": "mailbox", "mailbox": "not-an-address", "text": "x"}, "mailbox"),
        ({"scope": "general", "language": "Swedish", "text": "x"}, "language"),
        ({"scope": "general", "text": ""}, "text"),
        ({"scope": "personal", "user_id": "  ", "text": "x"}, "user_id"),
    ],
)
async def test_a_signature_that_does_not_fit_is_refused_with_the_field_named(client, body, field):
    assert field_named(await client.put("/signatures", json=body, headers=AUTH)) == ["body", field]


async def test_the_settings_start_as_email_with_english_and_swedish_greetings(client):
    settings = (await client.get("/settings", headers=AUTH)).json()

    assert settings == {
        "notify_mode": "email",
        "closing_greeting": {"en": "Best regards,", "sv": "Vänliga hälsningar,"},
        "from_name": "",
    }


async def test_an_admin_can_change_the_notify_mode_and_the_greetings(app, client, smtp, store):
    body = {"notify_mode": "never", "closing_greeting": {"en": "Cheers,", "sv": "Hälsningar,"}}

    assert (await client.put("/settings", json=body, headers=AUTH)).status_code == 200

    assert (await client.get("/settings", headers=AUTH)).json() == {**body, "from_name": ""}
    command = agent_reply()
    await app.state.handlers.send_notification(envelope_of(command), command)
    assert smtp.outbox == [] and store.docs["reply-1"]["state"] == "skipped"


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"notify_mode": "sometimes"}, ["body", "notify_mode"]),
        ({"closing_greeting": {"Swedish": "Hej"}}, ["body", "closing_greeting"]),
        ({"closing_greeting": {"en": "Best\nregards"}}, ["body", "closing_greeting"]),
        ({"notify_mode": "email", "colour": "red"}, ["body", "colour"]),
    ],
)
async def test_settings_that_do_not_fit_are_refused_with_the_field_named(client, body, loc):
    assert field_named(await client.put("/settings", json=body, headers=AUTH)) == loc


async def add_inapp(store, user_id, n, *, kind="assigned", at=datetime(2026, 11, 23, 9, 0, tzinfo=UTC)):
    await store.add_inapp(
        [
            {
                "_id": f"{user_id}-{i}",
                "user_id": user_id,
                "ticket_id": f"t{i}",
                "ticket_number": 1000 + i,
                "ticket_title": f"Ticket {i}",
                "kind": kind,
                "text": f"#{1000 + i} assigned to you by Cia",
                "comment_id": None,
                "cause": f"e{i}",
                "created_at": at + timedelta(minutes=i),
                "read_at": None,
            }
            for i in range(n)
        ]
    )


async def test_a_user_sees_their_notifications_newest_first_with_the_unread_count(client, store):
    await add_inapp(store, "u-bo", 3)
    await add_inapp(store, "u-dan", 1)

    listed = (await client.get("/inapp", params={"user_id": "u-bo"}, headers=AUTH)).json()

    assert [i["id"] for i in listed["items"]] == ["u-bo-2", "u-bo-1", "u-bo-0"]
    assert listed["unread"] == 3
    assert listed["items"][0]["ticket_number"] == 1002 and listed["items"][0]["read_at"] is None


async def test_marking_some_read_leaves_them_out_of_the_unread_list(client, store):
    await add_inapp(store, "u-bo", 3)

    marked = await client.post("/inapp/read", json={"user_id": "u-bo", "ids": ["u-bo-0", "u-bo-2"]}, headers=AUTH)

    assert marked.json() == {"marked": 2, "unread": 1}
    unread = (await client.get("/inapp", params={"user_id": "u-bo", "unread": "true"}, headers=AUTH)).json()
    assert [i["id"] for i in unread["items"]] == ["u-bo-1"] and unread["unread"] == 1
    every = (await client.get("/inapp", params={"user_id": "u-bo", "limit": 2}, headers=AUTH)).json()
    assert len(every["items"]) == 2 and every["items"][0]["read_at"] is not None


async def test_a_user_cannot_mark_another_users_notifications_read(client, store):
    await add_inapp(store, "u-dan", 1)

    marked = await client.post("/inapp/read", json={"user_id": "u-bo", "ids": ["u-dan-0"]}, headers=AUTH)

    assert marked.json()["marked"] == 0
    assert (await client.get("/inapp", params={"user_id": "u-dan"}, headers=AUTH)).json()["unread"] == 1


async def test_marking_all_read_marks_only_that_users(client, store):
    await add_inapp(store, "u-bo", 2)
    await add_inapp(store, "u-dan", 1)

    marked = await client.post("/inapp/read", json={"user_id": "u-bo", "all": True}, headers=AUTH)

    assert marked.json() == {"marked": 2, "unread": 0}
    assert (await client.get("/inapp", params={"user_id": "u-dan"}, headers=AUTH)).json()["unread"] == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"user_id": "u-bo"}, "ids"),
        ({"user_id": "u-bo", "ids": ["a"], "all": True}, "ids"),
        ({"ids": ["a"]}, "user_id"),
        ({"user_id": "u-bo", "all": "sometimes"}, "all"),
    ],
)
async def test_a_mark_read_request_that_does_not_say_what_to_mark_names_the_field(client, body, field):
    assert field_named(await client.post("/inapp/read", json=body, headers=AUTH)) == ["body", field]


async def test_the_user_id_is_required_to_list_notifications(client):
    assert field_named(await client.get("/inapp", headers=AUTH)) == ["query", "user_id"]


async def test_ticket_events_on_kafka_become_in_app_notifications(app, client):
    assigned = ticket_assigned(handler="u-bo")
    mentioned = comment_added(("u-bo", "u-cia"))  # Cia wrote it
    async with TestKafkaBroker(app.state.runtime.broker) as broker:
        for event, event_id in ((assigned, "assigned-1"), (mentioned, "mentioned-1")):
            envelope = Envelope.wrap(event, event_id=event_id, key="t1001")
            await broker.publish(envelope.to_bytes(), topic=topics.TICKET_EVENTS, key=b"t1001")

    listed = (await client.get("/inapp", params={"user_id": "u-bo"}, headers=AUTH)).json()

    assert sorted(i["text"] for i in listed["items"]) == [
        "#1001 assigned to you by Cia Carlsson",
        "Cia Carlsson mentioned you on #1001",
    ]
    assert (await client.get("/inapp", params={"user_id": "u-cia"}, headers=AUTH)).json()["items"] == []
