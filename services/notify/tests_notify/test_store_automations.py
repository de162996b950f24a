"""Signatures, mail settings, skipped mail, in-app notifications and seeds on the real store."""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from hdkit.mongo import OutboxRelay
from hdkit.testing import FakePublisher
from notify.domain import MailSettings, Signature
from notify.handlers import Handlers, InAppNotifier, MailIdentity
from notify.seeds import default_templates
from notify.store import Store
from prometheus_client import CollectorRegistry

from tests_notify.builders import DOMAIN, SECRET, agent_reply, comment_added, event_envelope
from tests_notify.conftest import Naps, handle
from tests_notify.fakes import FakeMailServer

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


async def ready(mongo: Any) -> Store:
    store = Store(mongo)
    await store.ensure_indexes()
    return store


async def test_signatures_are_stored_per_scope_replaced_in_place_and_deleted(mongo: Any) -> None:
    store = await ready(mongo)
    mailbox = Signature(scope="mailbox", mailbox="Support@Localhost", text="Support")
    personal = Signature(scope="personal", user_id="u-bo", language="sv", text="Bo", html="<p>Bo</p>")
    await store.put_signature(mailbox)
    await store.put_signature(personal)
    await store.put_signature(personal.model_copy(update={"text": "Bo Berg"}))

    assert sorted(s.text for s in await store.signatures()) == ["Bo Berg", "Support"]
    assert await store.delete_signature("mailbox", "SUPPORT@localhost", None, None)
    assert not await store.delete_signature("mailbox", "support@localhost", None, None)
    (left,) = await store.signatures()
    assert left == personal.model_copy(update={"text": "Bo Berg"})


async def test_the_mail_settings_are_the_defaults_until_an_admin_saves_some(mongo: Any) -> None:
    store = await ready(mongo)
    assert await store.mail_settings() == MailSettings()

    saved = MailSettings(notify_mode="link", closing_greeting={"sv": "Hälsningar,"})
    await store.put_mail_settings(saved)

    assert await Store(mongo).mail_settings() == saved  # a fresh process reads it back


async def test_a_mail_the_notify_mode_stops_is_recorded_once_as_skipped(mongo: Any) -> None:
    store = await ready(mongo)
    await store.put_mail_settings(MailSettings(notify_mode="never"))
    smtp, publisher = FakeMailServer(), FakePublisher()
    handlers = Handlers(
        store,
        OutboxRelay(store.collection, publisher),
        smtp,
        identity=MailIdentity(SECRET, DOMAIN, {}),
        metrics=CollectorRegistry(),
        sleep=Naps(),
    )
    command = agent_reply()

    await asyncio.gather(*(handle(handlers, command) for _ in range(3)))

    (doc,) = await store.for_ticket("t1001")
    assert doc["state"] == "skipped" and doc["reason"] == "not sent: the global notify mode is `never`"
    assert smtp.outbox == [] and publisher.sent == []


async def test_an_event_delivered_many_times_at_once_stores_one_notification_per_person(mongo: Any) -> None:
    store = await ready(mongo)
    inapp = InAppNotifier(store, metrics=CollectorRegistry())
    event = comment_added(("u-bo", "u-dan"))
    envelope = event_envelope(event)

    await asyncio.gather(*(inapp.tell_mentioned(envelope, event) for _ in range(5)))

    assert await store.inapp.count_documents({}) == 2
    (items, unread) = await store.list_inapp("u-bo", unread=False, limit=50)
    assert unread == 1 and items[0]["text"] == "Cia Carlsson mentioned you on #1001"


def notice(user_id: str, n: int) -> dict[str, Any]:
    return {
        "_id": f"{user_id}-{n}",
        "user_id": user_id,
        "ticket_id": "t1001",
        "ticket_number": 1001,
        "ticket_title": "Printer on fire",
        "kind": "mentioned",
        "text": f"notice {n}",
        "comment_id": None,
        "cause": f"e{n}",
        "created_at": T0 + timedelta(minutes=n),
        "read_at": None,
    }


async def test_in_app_notifications_list_newest_first_and_only_the_users_own_are_marked_read(mongo: Any) -> None:
    store = await ready(mongo)
    assert await store.add_inapp([notice("u-bo", n) for n in range(4)] + [notice("u-dan", 9)]) == 5

    assert await store.mark_inapp_read("u-bo", ["u-bo-1", "u-dan-9"], T0 + timedelta(hours=1)) == 1

    items, unread = await store.list_inapp("u-bo", unread=True, limit=2)
    assert [i["_id"] for i in items] == ["u-bo-3", "u-bo-2"] and unread == 3
    every, _ = await store.list_inapp("u-bo", unread=False, limit=10)
    assert [i["_id"] for i in every] == ["u-bo-3", "u-bo-2", "u-bo-1", "u-bo-0"]
    assert every[2]["read_at"] == T0 + timedelta(hours=1)
    assert await store.mark_inapp_read("u-bo", None, T0 + timedelta(hours=2)) == 3
    assert (await store.list_inapp("u-bo", unread=True, limit=10)) == ([], 0)
    assert (await store.list_inapp("u-dan", unread=True, limit=10))[1] == 1


async def test_seeding_twice_adds_the_new_templates_once_and_keeps_an_admins_edit(mongo: Any) -> None:
    store = await ready(mongo)
    first = await store.seed_templates(default_templates())
    seeded = await store.find_template("agent_reply", ["sv"])
    await store.put_template(seeded.model_copy(update={"subject": "Svar: {{ ticket.title }}"}))

    again = await store.seed_templates(default_templates())

    assert first == len(default_templates()) == 16 and again == 0
    assert (await store.find_template("agent_reply", ["sv"])).subject == "Svar: {{ ticket.title }}"
