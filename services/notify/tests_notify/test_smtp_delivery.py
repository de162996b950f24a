"""Temporary and permanent SMTP failures, end to end: the handler, the real SMTP client and an SMTP server."""

import socket

import pytest
from notify.handlers import MailServerUnavailable
from notify.settings import OutboundSmtpSettings
from notify.smtp import SmtpSender

from contracts import REGISTRY, NotificationFailed, NotificationSent
from tests_notify.builders import agent_reply, send_notification
from tests_notify.conftest import handle, make_handlers
from tests_notify.smtp_server import StubSmtpServer


def events(publisher):
    return [REGISTRY.parse(envelope) for _, envelope in publisher.sent]


def handlers_for(port, store, publisher, metrics, naps):
    sender = SmtpSender(OutboundSmtpSettings(outbound_smtp_port=port, outbound_smtp_timeout=5))
    return make_handlers(store, publisher, sender, metrics, naps)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_a_4xx_is_retried_after_a_pause_and_the_mail_then_arrives_once(store, publisher, metrics, naps):
    command = send_notification()
    async with StubSmtpServer(rcpt_replies=["451 4.3.0 try again later"]) as server:
        handlers = handlers_for(server.port, store, publisher, metrics, naps)
        with pytest.raises(MailServerUnavailable):  # the consumer redelivers the command
            await handle(handlers, command)
        assert store.docs[command.notification_id]["state"] == "deferred"
        await handle(handlers, command)
        await handle(handlers, command)  # a late duplicate sends nothing

    assert len(server.received) == 1
    assert naps.taken == [0.5]
    (event,) = events(publisher)
    assert isinstance(event, NotificationSent)
    assert store.docs[command.notification_id]["state"] == "sent"


async def test_a_mail_server_that_refuses_connections_is_waited_for(store, publisher, metrics, naps):
    command = send_notification()
    port = free_port()
    handlers = handlers_for(port, store, publisher, metrics, naps)
    with pytest.raises(MailServerUnavailable):
        await handle(handlers, command)

    async with StubSmtpServer(port=port) as server:
        await handle(handlers, command)

    assert len(server.received) == 1
    assert isinstance(events(publisher)[0], NotificationSent)


async def test_a_5xx_fails_the_mail_for_good_and_it_is_never_tried_again(store, publisher, metrics, naps):
    command = send_notification()
    async with StubSmtpServer(rcpt_reply="550 5.1.1 no such user") as server:
        handlers = handlers_for(server.port, store, publisher, metrics, naps)
        await handle(handlers, command)
        await handle(handlers, command)

    assert server.received == [] and server.connections == 1
    assert naps.taken == []
    (event,) = events(publisher)
    assert isinstance(event, NotificationFailed)
    assert event.permanent is True and "550 alice@example.com: 5.1.1 no such user" in event.reason
    assert store.docs[command.notification_id]["state"] == "failed"


COPY = ({"email": "carl@example.com", "name": "Carl"},)


async def test_a_refused_copy_does_not_stop_the_mail_to_the_customer(store, publisher, metrics, naps):
    async with StubSmtpServer(rcpt_replies=["250 OK", "550 5.1.1 no such user"]) as server:
        await handle(handlers_for(server.port, store, publisher, metrics, naps), agent_reply(cc=COPY))

    assert server.recipients == [["alice@example.com"]]
    assert isinstance(events(publisher)[0], NotificationSent)


async def test_a_customer_refused_for_good_fails_the_mail_even_when_a_copy_went_out(store, publisher, metrics, naps):
    async with StubSmtpServer(rcpt_replies=["550 5.1.1 no such user", "250 OK"]) as server:
        await handle(handlers_for(server.port, store, publisher, metrics, naps), agent_reply(cc=COPY))

    assert server.recipients == [["carl@example.com"]]
    (event,) = events(publisher)
    assert isinstance(event, NotificationFailed) and event.permanent is True


async def test_a_4xx_for_the_customer_after_a_copy_went_out_is_not_retried_so_the_copy_is_not_doubled(
    store, publisher, metrics, naps
):
    async with StubSmtpServer(rcpt_replies=["451 4.2.1 later", "250 OK"]) as server:
        handlers = handlers_for(server.port, store, publisher, metrics, naps)
        await handle(handlers, agent_reply(cc=COPY))
        await handle(handlers, agent_reply(cc=COPY))

    assert len(server.received) == 1
    (event,) = events(publisher)
    assert isinstance(event, NotificationFailed) and event.permanent is False
    assert "the copies went out" in event.reason
