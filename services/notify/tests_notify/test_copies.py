"""Copies (Cc): the ticket's CC list gets the mail too, except addresses that bounced for good."""

from datetime import UTC, datetime

from contracts import REGISTRY, NotificationSent
from tests_notify.builders import agent_reply
from tests_notify.conftest import handle

BOUNCED = {"since": datetime(2026, 3, 2, 9, 15, tzinfo=UTC), "status": "5.1.1", "diagnostic": "550 user unknown"}


def cc(*emails):
    return tuple({"email": e, "name": e.split("@")[0].title()} for e in emails)


async def test_copies_are_named_in_cc_and_get_the_mail(handlers, store, smtp):
    await handle(handlers, agent_reply(cc=cc("carl@example.com", "dora@example.com")))

    ((message, _, recipients),) = smtp.outbox
    assert recipients == ["alice@example.com", "carl@example.com", "dora@example.com"]
    assert [a.addr_spec for a in message["Cc"].addresses] == ["carl@example.com", "dora@example.com"]
    assert message["Cc"].addresses[0].display_name == "Carl"
    assert store.docs["reply-1"]["cc"] == ["carl@example.com", "dora@example.com"]


async def test_an_undeliverable_copy_is_left_out_and_the_mail_still_goes(handlers, store, publisher, smtp):
    await store.suppress("Carl@example.com", BOUNCED["since"], BOUNCED)

    await handle(handlers, agent_reply(cc=cc("carl@example.com", "dora@example.com")))

    ((message, _, recipients),) = smtp.outbox
    assert recipients == ["alice@example.com", "dora@example.com"]
    assert [a.addr_spec for a in message["Cc"].addresses] == ["dora@example.com"]
    ((_, envelope),) = publisher.sent
    assert isinstance(REGISTRY.parse(envelope), NotificationSent)


async def test_the_main_recipient_and_repeated_copies_are_not_copied_again(handlers, smtp):
    await handle(handlers, agent_reply(cc=cc("ALICE@example.com", "carl@example.com", "Carl@Example.com")))

    ((message, _, recipients),) = smtp.outbox
    assert recipients == ["alice@example.com", "carl@example.com"]
    assert [a.addr_spec for a in message["Cc"].addresses] == ["carl@example.com"]


async def test_a_copy_that_is_no_address_at_all_is_left_out(handlers, smtp):
    await handle(handlers, agent_reply(cc=cc("carl@example.com", "not an address@@")))

    ((_, _, recipients),) = smtp.outbox
    assert recipients == ["alice@example.com", "carl@example.com"]


async def test_a_mail_without_copies_has_no_cc_header(handlers, smtp):
    await handle(handlers, agent_reply())

    assert smtp.outbox[0][0]["Cc"] is None


async def test_an_undeliverable_main_recipient_still_fails_the_mail_whatever_the_copies(handlers, store, smtp):
    await store.suppress("alice@example.com", BOUNCED["since"], BOUNCED)

    await handle(handlers, agent_reply(cc=cc("carl@example.com")))

    assert smtp.outbox == []
    assert store.docs["reply-1"]["state"] == "failed"


async def test_a_main_recipient_that_is_no_address_fails_the_mail_for_good(handlers, store, publisher, smtp):
    await handle(handlers, agent_reply(to={"email": "not an address@@", "name": "X"}))

    assert smtp.outbox == []
    assert store.docs["reply-1"]["state"] == "failed"
    assert REGISTRY.parse(publisher.sent[0][1]).permanent is True
