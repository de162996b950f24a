"""Notify mode: how much a customer is told by mail (never / link / email), globally or per ticket."""

import pytest
from notify.domain import MailSettings, Template, notify_mode_for, without_content

from contracts import REGISTRY
from tests_notify.builders import agent_reply, send_notification, ticket
from tests_notify.conftest import handle

LINK = "http://127.0.0.1:8000/t/secret-link-token"
SECRET_TEXT = "The toner was loose"


def count(metrics, outcome, template="agent_reply"):
    value = metrics.get_sample_value("helpdesk_notifications_total", {"template": template, "outcome": outcome})
    return value or 0


def with_ticket_mode(command, mode):
    context = {**command.context, "ticket": {**command.context["ticket"], "notify_mode": mode}}
    return command.model_copy(update={"context": context})


def test_the_tickets_own_mode_wins_over_the_global_one():
    assert notify_mode_for({"notify_mode": "link"}, "never") == ("link", "the ticket's notify mode")
    assert notify_mode_for({"notify_mode": None}, "never") == ("never", "the global notify mode")
    assert notify_mode_for(None, "email")[0] == "email"


def test_link_mode_takes_the_comments_text_and_html_out_of_the_context():
    context = {"comment": {"author": {"name": "Bo"}, "text": "t", "text_new": "n", "html": "h"}, "description": "d"}

    assert without_content(context) == {"comment": {"author": {"name": "Bo"}}}


async def test_never_records_the_mail_as_skipped_with_the_reason_and_sends_nothing(
    handlers, store, publisher, smtp, metrics
):
    store.settings = MailSettings(notify_mode="never")
    command = agent_reply()

    await handle(handlers, command)

    assert smtp.outbox == []
    assert publisher.sent == []  # no NotificationFailed: nothing failed
    doc = store.docs[command.notification_id]
    assert doc["state"] == "skipped"
    assert doc["reason"] == "not sent: the global notify mode is `never`"
    assert count(metrics, "skipped") == 1


async def test_a_skipped_mail_handled_again_stays_one_skipped_record(handlers, store, smtp, metrics):
    command = with_ticket_mode(agent_reply(), "never")

    await handle(handlers, command)
    await handle(handlers, command)

    assert smtp.outbox == []
    assert store.docs[command.notification_id]["reason"] == "not sent: the ticket's notify mode is `never`"
    assert count(metrics, "skipped") == 1 and count(metrics, "duplicate") == 1


async def test_a_ticket_set_to_email_gets_mail_when_the_global_mode_is_never(handlers, store, smtp):
    store.settings = MailSettings(notify_mode="never")

    await handle(handlers, with_ticket_mode(agent_reply(), "email"))

    assert len(smtp.outbox) == 1


@pytest.mark.parametrize("audience", ["staff", "other"])
async def test_mail_to_staff_or_a_fixed_address_goes_out_whatever_the_mode(handlers, store, smtp, audience):
    store.settings = MailSettings(notify_mode="never")

    await handle(handlers, with_ticket_mode(send_notification(audience=audience), "never"))

    assert len(smtp.outbox) == 1


async def test_link_mode_mails_only_that_there_is_a_reply_and_the_link(handlers, store, publisher, smtp):
    await handle(handlers, with_ticket_mode(agent_reply(), "link"))

    message = smtp.outbox[0][0]
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "There is a new reply to your request #1001" in text and LINK in text
    assert LINK in html
    assert SECRET_TEXT not in text and SECRET_TEXT not in html and "loose" not in html
    assert store.docs["reply-1"]["notify_mode"] == "link"
    assert REGISTRY.parse(publisher.sent[0][1]).__class__.__name__ == "NotificationSent"


async def test_link_mode_keeps_the_content_out_even_of_a_template_that_prints_it(handlers, store, smtp):
    await store.put_template(
        Template(
            key="agent_reply",
            subject="{{ comment.text }}",
            text="mode={{ notify_mode }} [{{ comment.text }}] [{{ comment.text_new }}] [{{ description }}] {{ link }}",
            html="<p>{{ comment.html | safe }}</p>",
        )
    )
    command = agent_reply(context={**agent_reply().context, "description": SECRET_TEXT})

    await handle(handlers, with_ticket_mode(command, "link"))

    message = smtp.outbox[0][0]
    assert message.get_body(("plain",)).get_content().strip() == f"mode=link [] [] [] {LINK}"
    assert message.get_body(("html",)).get_content().strip() == "<p></p>"
    assert message["Subject"] == "[#1001]"


async def test_email_mode_mails_the_reply_itself(handlers, smtp):
    await handle(handlers, agent_reply())

    message = smtp.outbox[0][0]
    assert SECRET_TEXT in message.get_body(("plain",)).get_content()
    assert "<em>loose</em>" in message.get_body(("html",)).get_content()


async def test_the_mode_is_read_from_the_tickets_snapshot_in_the_context(handlers, smtp):
    command = send_notification(context={"ticket": ticket(notify_mode="never"), "link": LINK})

    await handle(handlers, command)

    assert smtp.outbox == []
