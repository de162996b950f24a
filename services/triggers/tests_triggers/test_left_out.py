"""The built-in notice: the sender of an email whose attachments were left out hears it once, robots never."""

import pytest
from contracts.models import Actor
from triggers.domain import AttachmentLimits, human_size, left_out_notice

from contracts import REGISTRY, SendNotification, derived_id, topics
from tests_triggers.builders import (
    LEFT_OUT,
    comment_added,
    envelope_of,
    ticket_created,
    ticket_created_with_left_out,
)
from tests_triggers.conftest import make_handlers


@pytest.fixture
def handlers(store, publisher):
    limits = AttachmentLimits(per_file=5 * 1024 * 1024, per_message=20 * 1024 * 1024)
    return make_handlers(store, publisher, attachment_limits=limits)


def notices(publisher) -> list[SendNotification]:
    parsed = [REGISTRY.parse(env) for topic, env in publisher.sent if topic == topics.NOTIFY_COMMANDS]
    return [c for c in parsed if isinstance(c, SendNotification) and c.template == "attachments_left_out"]


async def test_a_customer_reply_with_attachments_left_out_sends_the_sender_one_notice(handlers, publisher):
    event = comment_added(left_out=LEFT_OUT)

    await handlers.comment_added(envelope_of(event, "evt-c2"), event)

    (notice,) = notices(publisher)
    assert notice.notification_id == derived_id("notify", "attachments-left-out", "t-1001", "c-2")
    assert notice.to.email == "bo@example.se" and notice.to.name == "Bo Ström"  # the sender, not the requester
    assert notice.auto_submitted == "auto-replied"
    assert notice.in_reply_to == "reply-2@mail.example.se"
    assert notice.references == ("CAF1234@mail.example.com", "reply-2@mail.example.se")
    assert notice.mailbox == "support@localhost"
    files = notice.context["files"]
    assert [(f["filename"], f["human_size"], f["reason"]) for f in files] == [
        ("ritning-källare.pdf", "6.3 MB", "file_too_large"),
        ("bilder.zip", "2.9 MB", "message_total_too_large"),
    ]
    assert notice.context["limits"]["per_file_human"] == "5 MB"
    assert notice.context["ticket"]["number"] == 1001


async def test_a_new_ticket_from_an_email_with_attachments_left_out_gets_the_auto_reply_and_one_notice(
    handlers, publisher
):
    event = ticket_created_with_left_out()

    await handlers.ticket_created(envelope_of(event), event)

    assert sorted(REGISTRY.parse(env).template for _, env in publisher.sent) == ["attachments_left_out", "auto_reply"]
    (notice,) = notices(publisher)
    assert notice.notification_id == derived_id("notify", "attachments-left-out", "t-1001", "c-1")
    assert notice.to.email == "alice@example.com"
    assert notice.in_reply_to == "CAF1234@mail.example.com"
    assert notice.references == ("CAF1234@mail.example.com",)


async def test_a_message_with_every_attachment_kept_gets_no_notice(handlers, publisher):
    created = ticket_created()
    reply = comment_added()

    await handlers.ticket_created(envelope_of(created), created)
    await handlers.comment_added(envelope_of(reply, "evt-c2"), reply)

    assert notices(publisher) == []


async def test_automatic_mail_with_attachments_left_out_gets_no_notice(handlers, store, publisher):
    reply = comment_added(left_out=LEFT_OUT, auto_submitted=True)
    created = ticket_created_with_left_out(source_auto_submitted=True)

    await handlers.comment_added(envelope_of(reply, "evt-c2"), reply)
    await handlers.ticket_created(envelope_of(created), created)

    assert notices(publisher) == []


async def test_a_no_reply_sender_gets_no_notice_and_the_log_says_why(handlers, store, publisher):
    reply = comment_added(left_out=LEFT_OUT, author=Actor(role="customer", email="no-reply@shop.example"))

    await handlers.comment_added(envelope_of(reply, "evt-c2"), reply)

    assert notices(publisher) == []
    (record,) = await store.firings_for_ticket("t-1001")
    (firing,) = [f for f in record["firings"] if f["rule_id"] == "attachments-left-out"]
    assert "looks automatic" in firing["suppressed"][0]["reason"]


async def test_an_agent_comment_never_gets_a_notice(handlers, publisher):
    event = comment_added(author_role="agent", left_out=LEFT_OUT)

    await handlers.comment_added(envelope_of(event, "evt-c2"), event)

    assert notices(publisher) == []


async def test_the_same_comment_delivered_twice_sends_one_notice(handlers, store, publisher):
    event = comment_added(left_out=LEFT_OUT)

    await handlers.comment_added(envelope_of(event, "evt-c2"), event)
    await handlers.comment_added(envelope_of(event, "evt-c2"), event)

    assert len(notices(publisher)) == 1
    assert len(store.collection.docs) == 1


async def test_a_notice_left_in_the_outbox_by_a_crash_goes_out_once_on_redelivery(handlers, store, publisher):
    event = comment_added(left_out=LEFT_OUT)
    publisher.fail_next = 1
    with pytest.raises(ConnectionError):
        await handlers.comment_added(envelope_of(event, "evt-c2"), event)
    assert notices(publisher) == []

    await handlers.comment_added(envelope_of(event, "evt-c2"), event)
    await handlers.comment_added(envelope_of(event, "evt-c2"), event)

    assert len(notices(publisher)) == 1
    assert store.collection.docs["evt-c2"]["outbox"] == {}


def test_the_notice_is_due_only_for_ticket_creation_and_comments():
    event = comment_added(left_out=LEFT_OUT).model_dump(mode="json")
    assert left_out_notice("comment.added", event, AttachmentLimits()) is not None
    assert left_out_notice("ticket.updated", event, AttachmentLimits()) is None


def test_sizes_read_as_people_read_them():
    assert human_size(512) == "512 bytes"
    assert human_size(1536) == "1.5 kB"
    assert human_size(5 * 1024 * 1024) == "5 MB"
    assert human_size(6_606_029) == "6.3 MB"
