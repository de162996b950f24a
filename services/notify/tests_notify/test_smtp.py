"""The SMTP sender against a small SMTP server on localhost: what each answer means."""

import socket
from email.message import EmailMessage

import pytest
from notify.settings import OutboundSmtpSettings
from notify.smtp import DeliveryDeferred, DeliveryRefused, SmtpSender

from tests_notify.smtp_server import StubSmtpServer


def mail() -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "support@localhost"
    msg["To"] = "alice@example.com"
    msg["Subject"] = "[#1001] Hello"
    msg.set_content("Hello")
    return msg


def sender_for(port: int) -> SmtpSender:
    return SmtpSender(OutboundSmtpSettings(outbound_smtp_port=port, outbound_smtp_timeout=5))


async def send(port: int) -> None:
    await sender_for(port).send(mail(), sender="support@localhost", recipients=["alice@example.com"])


async def test_a_mail_the_server_accepts_arrives_there():
    async with StubSmtpServer() as server:
        await send(server.port)

    (data,) = server.received
    assert b"Subject: [#1001] Hello" in data


async def test_a_5xx_for_the_recipient_is_a_permanent_refusal():
    async with StubSmtpServer(rcpt_reply="550 5.1.1 no such user") as server:
        with pytest.raises(DeliveryRefused, match="550"):
            await send(server.port)


async def test_a_4xx_for_the_recipient_is_worth_trying_again():
    async with StubSmtpServer(rcpt_reply="451 4.3.0 try later") as server:
        with pytest.raises(DeliveryDeferred, match="451") as caught:
            await send(server.port)
    assert caught.value.about_this_mail is True


async def test_a_server_that_is_not_there_is_worth_waiting_for():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with pytest.raises(DeliveryDeferred) as caught:
        await send(port)
    assert caught.value.about_this_mail is False
