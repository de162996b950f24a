"""The admin's From name: used for mailboxes without a name of their own, never over one."""

import pytest
from hdkit.mongo import OutboxRelay
from notify.domain import MailSettings
from notify.handlers import Handlers, MailIdentity
from pydantic import ValidationError

from tests_notify.builders import DOMAIN, SECRET, send_notification
from tests_notify.conftest import AUTH, handle


def from_of(smtp):
    return smtp.outbox[0][0]["From"].addresses[0]


async def test_a_mailbox_without_a_name_sends_as_the_admins_from_name(handlers, store, smtp):
    store.settings = MailSettings(from_name="Acme Helpdesk")

    await handle(handlers, send_notification())

    assert from_of(smtp).display_name == "Acme Helpdesk"
    assert from_of(smtp).addr_spec == "support@localhost"


async def test_a_mailbox_with_its_own_name_keeps_it_whatever_the_admins_from_name(
    store, publisher, smtp, metrics, naps
):
    handlers = Handlers(
        store,
        OutboxRelay(store.collection, publisher),
        smtp,
        identity=MailIdentity(SECRET, DOMAIN, {"support@localhost": "Acme Support"}),
        metrics=metrics,
        sleep=naps,
    )
    store.settings = MailSettings(from_name="Acme Helpdesk")

    await handle(handlers, send_notification())

    assert from_of(smtp).display_name == "Acme Support"


async def test_without_an_admins_from_name_the_configured_default_is_used(handlers, store, smtp):
    await handle(handlers, send_notification())

    assert from_of(smtp).display_name == "Support"


def test_a_from_name_of_two_lines_is_refused():
    with pytest.raises(ValidationError, match="one line"):
        MailSettings(from_name="Acme\nBcc: x@example.com")


async def test_the_from_name_is_saved_and_read_through_the_settings_api(client):
    saved = await client.put("/settings", json={"notify_mode": "link", "from_name": " Acme "}, headers=AUTH)
    assert saved.status_code == 200, saved.text
    read = await client.get("/settings", headers=AUTH)
    assert read.json()["from_name"] == "Acme"
    assert read.json()["notify_mode"] == "link"
