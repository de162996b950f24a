"""The SMTP and LMTP listeners: what an MTA is told for our mailboxes, strangers, big mail and outages."""

import asyncio
import smtplib
import socket
from typing import Any

import pytest
from ingest.handlers import NotAccepted, Outcome
from ingest.mailboxes import MailboxDirectory
from ingest.smtp import DeliveryHandler, start_receivers

MAIL = b"From: a@example.com\r\nTo: support@localhost\r\nSubject: hi\r\nMessage-ID: <r@x>\r\n\r\nhello\r\n"


class FakeIntake:
    def __init__(self) -> None:
        self.accepted: list[tuple[bytes, list[str]]] = []
        self.down = False

    async def accept(self, raw: bytes, mailboxes: list[str], *, peer: str = "") -> Outcome:
        if self.down:
            raise NotAccepted("kafka away")
        self.accepted.append((raw, mailboxes))
        return Outcome.ACCEPTED


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def receiver() -> Any:
    intake = FakeIntake()
    directory = MailboxDirectory("http://127.0.0.1:1", "t" * 20)
    directory.set({"support@localhost", "sales@localhost"})
    smtp_port, lmtp_port = free_port(), free_port()
    servers = await start_receivers(
        DeliveryHandler(intake, directory),  # type: ignore[arg-type]
        host="127.0.0.1", smtp_port=smtp_port, lmtp_port=lmtp_port, hostname="test", max_bytes=10_000,
    )  # fmt: skip
    yield intake, smtp_port, lmtp_port
    for server in servers:
        server.close()


def in_thread(fn: Any) -> Any:
    return asyncio.get_running_loop().run_in_executor(None, fn)


async def test_smtp_accepts_mail_for_our_mailboxes_with_250(receiver: Any) -> None:
    intake, smtp_port, _ = receiver

    def send() -> dict[str, Any]:
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=5) as smtp:
            return smtp.sendmail("a@example.com", ["Support@localhost", "sales@localhost"], MAIL)

    assert await in_thread(send) == {}
    assert intake.accepted == [(MAIL, ["support@localhost", "sales@localhost"])]


async def test_lmtp_answers_once_per_recipient(receiver: Any) -> None:
    intake, _, lmtp_port = receiver

    def send() -> list[int]:
        # smtplib.LMTP reads one reply after DATA; RFC 2033 gives one per recipient, so read them all here.
        with smtplib.LMTP("127.0.0.1", lmtp_port, timeout=5) as lmtp:
            lmtp.ehlo_or_helo_if_needed()
            lmtp.mail("a@example.com")
            for rcpt in ("support@localhost", "sales@localhost"):
                assert lmtp.rcpt(rcpt)[0] == 250
            codes = [lmtp.data(MAIL)[0], lmtp.getreply()[0]]
            return codes

    assert await asyncio.wait_for(in_thread(send), 10) == [250, 250]
    assert len(intake.accepted) == 1


async def test_strangers_get_550_big_mail_552_and_an_outage_451(receiver: Any) -> None:
    intake, smtp_port, _ = receiver

    def unknown() -> None:
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=5) as smtp:
            smtp.sendmail("a@example.com", ["nobody@elsewhere.example"], MAIL)

    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        await in_thread(unknown)
    assert refused.value.recipients["nobody@elsewhere.example"][0] == 550

    def big() -> None:
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=5) as smtp:
            smtp.sendmail("a@example.com", ["support@localhost"], MAIL + b"x" * 20_000)

    with pytest.raises(smtplib.SMTPException) as too_big:
        await in_thread(big)
    assert "552" in str(too_big.value)

    intake.down = True

    def during_outage() -> None:
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=5) as smtp:
            smtp.sendmail("a@example.com", ["support@localhost"], MAIL)

    with pytest.raises(smtplib.SMTPDataError) as deferred:
        await in_thread(during_outage)
    assert deferred.value.smtp_code == 451
    assert intake.accepted == []


@pytest.mark.parametrize(
    "path",
    [
        "<a@b.se>",
        "<a.b+c@mx.example.se> SIZE=100 BODY=8BITMIME",
        "<a@b.se>  SIZE=5",
        " <kund1.17@example.se>",
        "<>",
        "a@b.se",
        '<"quoted local"@x.se>',
        "<a@b.se",
        "<åsa@exempel.se> SMTPUTF8",
        "<a@[127.0.0.1]>",
        "<@route:a@b.se>",
        "<" + "x" * 70 + "@b.se>",
        "<a@-b.se>",
    ],
)
def test_the_quick_path_reader_reads_mail_and_rcpt_paths_exactly_as_aiosmtpd_does(path: str) -> None:
    from aiosmtpd.smtp import SMTP
    from ingest.smtp import QuickSMTP

    quick, full = QuickSMTP(object()), SMTP(object())  # type: ignore[arg-type]
    quick.local_part_limit = full.local_part_limit = 64
    assert quick._getaddr(path) == full._getaddr(path)
