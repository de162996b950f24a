"""The SMTP/LMTP receiver as a real client sees it: swaks (Debian's SMTP test tool) against ingest, Kafka, store.

swaks is installed from Debian's packages when it is missing (as root or through ``sudo -n``).
"""

import asyncio
import re
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hdkit.mongo import OutboxRelay
from hdkit.testing import read_envelopes, started_publisher
from ingest.handlers import EmailIntake, Limits
from ingest.mailboxes import MailboxDirectory
from ingest.smtp import DeliveryHandler, start_receivers
from ingest.store import Store
from prometheus_client import CollectorRegistry

from contracts import topics

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "infra"))

from debian import ensure_debian_package  # noqa: E402

MAX_BYTES = 50_000
REPLY = re.compile(r"^<(?:-|\*\*)\s+(\S.*)$")


@dataclass
class Receiver:
    """Where the test's receiver listens, and its store."""

    smtp_port: int
    lmtp_port: int
    store: Store


@dataclass
class Sent:
    """What swaks reported."""

    code: int
    transcript: str


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def swaks() -> Iterator[str]:
    """The swaks binary (installed with apt-get when missing)."""
    yield ensure_debian_package("swaks", "swaks")


@pytest.fixture
async def receiver(infra: Any, mongo: Any) -> AsyncIterator[Receiver]:
    """Ingest's SMTP and LMTP listeners on free ports, accepting into the real store and Kafka."""
    async with started_publisher(infra.bootstrap) as publisher:
        store = Store(mongo)
        await store.ensure_indexes()
        intake = EmailIntake(
            store, OutboxRelay(store.messages, publisher), CollectorRegistry(), loop_domain="x", limits=Limits()
        )
        directory = MailboxDirectory("http://127.0.0.1:1", "t" * 20)
        directory.set({"support@localhost", "sales@localhost"})
        smtp_port, lmtp_port = free_port(), free_port()
        servers = await start_receivers(
            DeliveryHandler(intake, directory),
            host="127.0.0.1",
            smtp_port=smtp_port,
            lmtp_port=lmtp_port,
            hostname="ingest.test",
            max_bytes=MAX_BYTES,
        )
        try:
            yield Receiver(smtp_port, lmtp_port, store)
        finally:
            for server in servers:
                server.close()
                await server.wait_closed()


async def send(swaks: str, port: int, *args: str, to: str = "support@localhost") -> Sent:
    """Run swaks against 127.0.0.1:port (the receiver runs on this event loop, so never block it)."""
    proc = await asyncio.create_subprocess_exec(
        swaks,
        *("--server", "127.0.0.1", "--port", str(port), "--helo", "client.test", "--timeout", "10"),
        *("--from", "asa@example.se", "--to", to),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode is not None
    return Sent(proc.returncode, out.decode(errors="replace"))


def replies(sent: Sent) -> list[str]:
    """The server's reply lines from swaks' transcript (`<-` for success, `<**` for errors)."""
    return [m.group(1) for line in sent.transcript.splitlines() if (m := REPLY.match(line))]


def new_id() -> str:
    return f"{uuid.uuid4().hex[:12]}@swaks.test"


def for_message(message_id: str) -> Any:
    return lambda env: env["type"] == "EmailReceived" and env["payload"]["message_id"] == message_id


async def test_a_plain_message_gets_250_and_is_published(swaks: str, receiver: Receiver, infra: Any) -> None:
    message_id = new_id()
    sent = await send(swaks, receiver.smtp_port, "--header", f"Message-Id: <{message_id}>", "--body", "Hej från swaks")

    assert sent.code == 0, sent.transcript
    assert replies(sent)[-2].startswith("250 2.0.0 Message accepted"), sent.transcript  # the reply to DATA
    (event,) = await read_envelopes(infra.bootstrap, topics.INBOUND_EMAIL, for_message(message_id), expect=1)
    assert event["payload"]["mailbox"] == "support@localhost"
    assert event["payload"]["sender"]["email"] == "asa@example.se"
    assert "Hej från swaks" in event["payload"]["text"]


async def test_an_attachment_sent_with_swaks_is_kept_and_downloadable(
    swaks: str, receiver: Receiver, infra: Any, tmp_path: Path
) -> None:
    message_id = new_id()
    report = tmp_path / "rapport.pdf"
    report.write_bytes(b"%PDF-1.4 swaks test\n" * 20)
    sent = await send(
        swaks,
        receiver.smtp_port,
        *("--header", f"Message-Id: <{message_id}>", "--body", "see attached"),
        *("--attach-type", "application/pdf", "--attach", f"@{report}"),
    )

    assert sent.code == 0, sent.transcript
    (event,) = await read_envelopes(infra.bootstrap, topics.INBOUND_EMAIL, for_message(message_id), expect=1)
    (attachment,) = event["payload"]["attachments"]
    assert attachment["filename"] == "rapport.pdf" and attachment["content_type"] == "application/pdf"
    assert await receiver.store.load_raw(attachment["attachment_id"]) == report.read_bytes()
    meta = await receiver.store.find_attachment(attachment["attachment_id"])
    assert meta is not None and meta["filename"] == "rapport.pdf" and meta["size"] == report.stat().st_size


async def test_mail_for_an_unknown_recipient_is_refused_with_550(swaks: str, receiver: Receiver) -> None:
    sent = await send(swaks, receiver.smtp_port, "--body", "hello?", to="nobody@elsewhere.example")

    assert sent.code == 24, sent.transcript  # swaks: no RCPTs accepted
    assert any(r.startswith("550 5.1.1 <nobody@elsewhere.example>") for r in replies(sent)), sent.transcript
    assert await receiver.store.messages.count_documents({}) == 0


async def test_a_message_over_the_size_limit_is_refused_with_552(
    swaks: str, receiver: Receiver, tmp_path: Path
) -> None:
    body = tmp_path / "big.txt"
    body.write_text(("x" * 70 + "\n") * (MAX_BYTES // 70 + 100))
    sent = await send(swaks, receiver.smtp_port, "--body", f"@{body}")

    assert sent.code == 26, sent.transcript  # swaks: server did not accept mail following data
    assert any(r.startswith("552") for r in replies(sent)), sent.transcript
    assert await receiver.store.messages.count_documents({}) == 0


async def test_lmtp_answers_each_recipient_and_publishes_one_event_per_mailbox(
    swaks: str, receiver: Receiver, infra: Any
) -> None:
    message_id = new_id()
    sent = await send(
        swaks,
        receiver.lmtp_port,
        *("--protocol", "LMTP", "--header", f"Message-Id: <{message_id}>", "--body", "via LMTP"),
        to="support@localhost,sales@localhost",
    )

    assert sent.code == 0, sent.transcript
    after_data = [r for r in replies(sent) if r.startswith("250 2.0.0")]
    assert len(after_data) == 2, sent.transcript
    events = await read_envelopes(infra.bootstrap, topics.INBOUND_EMAIL, for_message(message_id), expect=2)
    assert sorted(e["payload"]["mailbox"] for e in events) == ["sales@localhost", "support@localhost"]
