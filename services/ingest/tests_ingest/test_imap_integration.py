"""IMAP intake against a real Dovecot, Kafka and store: each message published once, marked only after Kafka took it."""

import asyncio
import imaplib
import shutil
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aioimaplib import Response
from hdkit.kafka import Publisher
from hdkit.mongo import OutboxRelay
from hdkit.testing import read_envelopes, started_publisher
from ingest.handlers import EmailIntake, Limits
from ingest.imap import INGESTED, REFUSED, ImapIntake, parse_body, parse_search, parse_sizes
from ingest.settings import ImapAccount, ImapMode, ImapSecurity, Settings
from ingest.store import Store
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from contracts import Envelope, topics

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "infra"))

from dovecot import DovecotServer, free_port, reachable_temp_dir  # noqa: E402

USERS = {f"user{n}": f"pw{n}" for n in range(1, 10)}


class SwitchableKafka(Publisher):
    """The real publisher, but while `down` is set every publish fails as if Kafka were unreachable."""

    def __init__(self, real: Publisher) -> None:
        self._real = real
        self.down = False

    async def publish(self, topic: str, envelope: Envelope) -> None:
        if self.down:
            raise ConnectionError("kafka unreachable")
        await self._real.publish(topic, envelope)


@pytest.fixture(scope="module")
def dovecot() -> Iterator[DovecotServer]:
    """A private Dovecot (installed from Debian's packages when missing) with users user1..user9."""
    data = reachable_temp_dir()
    server = DovecotServer(free_port(), data, users=USERS)
    server.start()
    try:
        server.wait_ready(timeout=30)
        yield server
    finally:
        server.stop()
        shutil.rmtree(data, ignore_errors=True)


def mail(message_id: str, body: str = "Hej") -> bytes:
    return (
        f"From: Åsa <asa@example.se>\r\nTo: support@localhost\r\nSubject: Fråga\r\n"
        f"Message-ID: <{message_id}>\r\n\r\n{body}\r\n"
    ).encode()


def new_id() -> str:
    return f"{uuid.uuid4().hex[:12]}@example.se"


def _imap(server: DovecotServer, user: str) -> imaplib.IMAP4:
    conn = imaplib.IMAP4("127.0.0.1", server.port, timeout=10)
    conn.login(user, USERS[user])
    return conn


def _append(server: DovecotServer, user: str, raw: bytes) -> None:
    conn = _imap(server, user)
    try:
        typ, data = conn.append("INBOX", None, None, raw)
        assert typ == "OK", data
    finally:
        conn.logout()


def _flags(server: DovecotServer, user: str) -> list[set[str]]:
    conn = _imap(server, user)
    try:
        conn.select("INBOX", readonly=True)
        typ, data = conn.uid("FETCH", "1:*", "(FLAGS)")
        assert typ == "OK", data
        found = []
        for item in data:
            if isinstance(item, bytes) and b"FLAGS (" in item:
                found.append(set(item.split(b"FLAGS (", 1)[1].split(b")", 1)[0].decode().split()))
        return found
    finally:
        conn.logout()


async def append(server: DovecotServer, user: str, raw: bytes) -> None:
    """Deliver a message into the user's INBOX with IMAP APPEND, as an MTA's local delivery would."""
    await asyncio.to_thread(_append, server, user, raw)


async def flags(server: DovecotServer, user: str) -> list[set[str]]:
    """Return the flags of every message in the user's INBOX, in UID order."""
    return await asyncio.to_thread(_flags, server, user)


async def eventually(check: Callable[[], Any], within: float = 10.0) -> float:
    """Wait until `check()` (sync or async) is truthy; return the seconds it took."""
    start = time.monotonic()
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return time.monotonic() - start
        if time.monotonic() - start > within:
            raise AssertionError(f"not true after {within}s")
        await asyncio.sleep(0.05)


def account(server: DovecotServer, user: str, **overrides: Any) -> ImapAccount:
    fields: dict[str, Any] = {
        "name": user,
        "host": "127.0.0.1",
        "port": server.port,
        "security": ImapSecurity.NONE,
        "user": user,
        "password": USERS[user],
        "mailbox": f"{user}@helpdesk.localhost",
        "mode": ImapMode.POLL,
        "interval_seconds": 0.2,
        "timeout_seconds": 5,
    }
    fields.update(overrides)
    return ImapAccount(**fields)


@asynccontextmanager
async def polling(
    accounts: list[ImapAccount], mongo: Any, publisher: Publisher, *, max_message_bytes: int = 1_000_000
) -> AsyncIterator[tuple[ImapIntake, CollectorRegistry, Store]]:
    """Run the IMAP intake for these accounts on the real store and publisher while the block runs."""
    store = Store(mongo)
    await store.ensure_indexes()
    registry = CollectorRegistry()
    intake = EmailIntake(store, OutboxRelay(store.messages, publisher), registry, loop_domain="x", limits=Limits())
    imap = ImapIntake(accounts, intake, registry, max_message_bytes=max_message_bytes, backoff_initial_seconds=0.2)
    task = asyncio.create_task(imap.run())
    try:
        yield imap, registry, store
    finally:
        task.cancel()
        await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 30)  # each poller logs out


def count(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def for_message(message_id: str) -> Callable[[dict[str, Any]], bool]:
    return lambda env: env["type"] == "EmailReceived" and env["payload"]["message_id"] == message_id


def all_marked(server: DovecotServer, user: str, n: int, keyword: str = INGESTED) -> Callable[[], Any]:
    async def check() -> bool:
        found = await flags(server, user)
        return len(found) == n and all(keyword in f for f in found)

    return check


# --------------------------------------------------------------------------- against the real servers


async def test_appended_messages_are_published_once_each_and_then_carry_the_keyword_but_stay_unread(
    infra: Any, mongo: Any, dovecot: DovecotServer
) -> None:
    first, second = new_id(), new_id()
    await append(dovecot, "user1", mail(first))
    await append(dovecot, "user1", mail(second))
    async with (
        started_publisher(infra.bootstrap) as publisher,
        polling([account(dovecot, "user1")], mongo, publisher) as (_, registry, _),
    ):
        await eventually(all_marked(dovecot, "user1", 2))
        await asyncio.sleep(0.6)  # a few more rounds: nothing is taken twice
        assert count(registry, "helpdesk_ingest_imap_fetched_total", account="user1", outcome="accepted") == 2
        assert count(registry, "helpdesk_ingest_imap_fetched_total", account="user1", outcome="duplicate") == 0
    for message_id in (first, second):
        (event,) = await read_envelopes(infra.bootstrap, topics.INBOUND_EMAIL, for_message(message_id), expect=1)
        assert event["payload"]["mailbox"] == "user1@helpdesk.localhost"
    assert all("\\Seen" not in f for f in await flags(dovecot, "user1"))


async def test_a_message_delivered_twice_gives_one_event(infra: Any, mongo: Any, dovecot: DovecotServer) -> None:
    message_id = new_id()
    await append(dovecot, "user2", mail(message_id))
    await append(dovecot, "user2", mail(message_id))
    async with (
        started_publisher(infra.bootstrap) as publisher,
        polling([account(dovecot, "user2")], mongo, publisher) as (_, registry, _),
    ):
        await eventually(all_marked(dovecot, "user2", 2))
        assert count(registry, "helpdesk_ingest_imap_fetched_total", account="user2", outcome="duplicate") == 1
    events = await read_envelopes(infra.bootstrap, topics.INBOUND_EMAIL, for_message(message_id), expect=1)
    assert len(events) == 1


async def test_an_account_with_a_wrong_password_a_dead_or_a_silent_server_does_not_delay_a_good_one(
    infra: Any, mongo: Any, dovecot: DovecotServer
) -> None:
    message_id = new_id()
    with socket.socket() as silent:  # accepts connections (backlog) but never greets: a hung server
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        bad = account(dovecot, "user4", name="wrong-password", password="nope")
        dead = account(dovecot, "user4", name="server-down", port=free_port())
        hung = account(dovecot, "user4", name="server-silent", port=silent.getsockname()[1], timeout_seconds=30)
        good = account(dovecot, "user3")
        async with (
            started_publisher(infra.bootstrap) as publisher,
            polling([bad, dead, hung, good], mongo, publisher) as (_, registry, _),
        ):
            await eventually(lambda: count(registry, "helpdesk_ingest_imap_errors_total", account="wrong-password"))
            await eventually(lambda: count(registry, "helpdesk_ingest_imap_connected", account="user3") == 1)
            await append(dovecot, "user3", mail(message_id))
            took = await eventually(all_marked(dovecot, "user3", 1), within=5)
            assert took < 2.0
            assert count(registry, "helpdesk_ingest_imap_errors_total", account="server-down") >= 1
            assert count(registry, "helpdesk_ingest_imap_errors_total", account="user3") == 0
            assert count(registry, "helpdesk_ingest_imap_connected", account="server-silent") == 0
    events = await read_envelopes(infra.bootstrap, topics.INBOUND_EMAIL, for_message(message_id), expect=1)
    assert len(events) == 1


async def test_when_kafka_cannot_take_a_message_it_stays_unmarked_and_is_taken_once_kafka_is_back(
    infra: Any, mongo: Any, dovecot: DovecotServer
) -> None:
    message_id = new_id()
    await append(dovecot, "user5", mail(message_id))
    async with started_publisher(infra.bootstrap) as real:
        kafka = SwitchableKafka(real)
        kafka.down = True
        async with polling([account(dovecot, "user5")], mongo, kafka) as (_, registry, _):
            deferred = {"account": "user5", "outcome": "deferred"}
            await eventually(lambda: count(registry, "helpdesk_ingest_imap_fetched_total", **deferred) >= 2)
            assert await flags(dovecot, "user5") == [set()]
            kafka.down = False
            await eventually(all_marked(dovecot, "user5", 1))
    events = await read_envelopes(infra.bootstrap, topics.INBOUND_EMAIL, for_message(message_id), expect=1)
    assert len(events) == 1


async def test_an_unreadable_message_is_quarantined_and_marked(infra: Any, mongo: Any, dovecot: DovecotServer) -> None:
    token = uuid.uuid4().hex
    await append(dovecot, "user6", f"Subject: nobody sent this {token}\r\n\r\nno sender at all\r\n".encode())
    async with (
        started_publisher(infra.bootstrap) as publisher,
        polling([account(dovecot, "user6")], mongo, publisher) as (_, registry, store),
    ):
        await eventually(all_marked(dovecot, "user6", 1))
        assert count(registry, "helpdesk_ingest_imap_fetched_total", account="user6", outcome="quarantined") == 1
        (kept,) = await store.list_quarantine()
    assert kept["mailboxes"] == ["user6@helpdesk.localhost"]
    assert "sender" in kept["reason"]
    assert token.encode() in await store.load_raw(kept["raw_id"])


async def test_idle_mode_picks_up_a_new_message_at_once(infra: Any, mongo: Any, dovecot: DovecotServer) -> None:
    message_id = new_id()
    # a long interval, so only the server's IDLE push can explain a quick pick-up
    idle = account(dovecot, "user7", mode=ImapMode.IDLE, interval_seconds=60)
    async with (
        started_publisher(infra.bootstrap) as publisher,
        polling([idle], mongo, publisher) as (imap, _, _),
    ):
        await asyncio.wait_for(imap.pollers[0].idling.wait(), 10)  # the first round is done, IDLE has begun
        await append(dovecot, "user7", mail(message_id))
        took = await eventually(all_marked(dovecot, "user7", 1), within=10)
        assert took < 3.0
        await eventually(lambda: imap.pollers[0].rounds >= 2)  # a second round, woken by the server's push
    events = await read_envelopes(infra.bootstrap, topics.INBOUND_EMAIL, for_message(message_id), expect=1)
    assert len(events) == 1


async def test_an_oversized_message_is_marked_refused_and_not_published(
    infra: Any, mongo: Any, dovecot: DovecotServer
) -> None:
    message_id = new_id()
    await append(dovecot, "user8", mail(message_id, body="x" * 5000))
    async with (
        started_publisher(infra.bootstrap) as publisher,
        polling([account(dovecot, "user8")], mongo, publisher, max_message_bytes=2000) as (_, registry, _),
    ):
        await eventually(all_marked(dovecot, "user8", 1, keyword=REFUSED))
        assert count(registry, "helpdesk_ingest_imap_fetched_total", account="user8", outcome="refused") == 1
    assert INGESTED not in (await flags(dovecot, "user8"))[0]
    events = await read_envelopes(infra.bootstrap, topics.INBOUND_EMAIL, for_message(message_id), expect=0, wait=2)
    assert events == []


async def test_handled_messages_can_be_moved_to_another_folder(infra: Any, mongo: Any, dovecot: DovecotServer) -> None:
    message_id = new_id()
    conn = await asyncio.to_thread(_imap, dovecot, "user9")
    await asyncio.to_thread(conn.create, "Done")
    await asyncio.to_thread(conn.logout)
    await append(dovecot, "user9", mail(message_id))
    async with (
        started_publisher(infra.bootstrap) as publisher,
        polling([account(dovecot, "user9", move_to="Done")], mongo, publisher),
    ):
        await eventually(lambda: _inbox_empty(dovecot, "user9"))
    done = await asyncio.to_thread(_folder_flags, dovecot, "user9", "Done")
    assert len(done) == 1 and INGESTED in done[0]
    events = await read_envelopes(infra.bootstrap, topics.INBOUND_EMAIL, for_message(message_id), expect=1)
    assert len(events) == 1


def _folder_flags(server: DovecotServer, user: str, folder: str) -> list[str]:
    conn = _imap(server, user)
    try:
        conn.select(folder, readonly=True)
        _, data = conn.uid("FETCH", "1:*", "(FLAGS)")
        return [item.decode() for item in data if isinstance(item, bytes)]
    finally:
        conn.logout()


async def _inbox_empty(server: DovecotServer, user: str) -> bool:
    return await flags(server, user) == []


# --------------------------------------------------------------------------- fast: parsing and settings


def test_uid_search_answers_are_read_in_order_without_the_status_line() -> None:
    answer = Response("OK", [b"7 3 5", b"Search completed (0.001 + 0.000 secs)."])
    assert parse_search(answer) == [3, 5, 7]
    assert parse_search(Response("OK", [b"", b"Search completed."])) == []


def test_sizes_and_bodies_are_read_from_fetch_answers() -> None:
    sizes = Response("OK", [b"1 FETCH (UID 4 RFC822.SIZE 37)", b"2 FETCH (RFC822.SIZE 9 UID 8)", b"Fetch completed."])
    assert parse_sizes(sizes) == {4: 37, 8: 9}
    body = Response("OK", [b"2 FETCH (UID 2 BODY[] {5}", bytearray(b"Hi\r\n."), b")", b"Fetch completed."])
    assert parse_body(body) == b"Hi\r\n."
    assert parse_body(Response("OK", [b"Fetch completed."])) is None


def test_imap_accounts_are_read_from_a_json_list_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HELPDESK_SERVICE_TOKEN", "t" * 32)
    monkeypatch.setenv(
        "HELPDESK_IMAP_ACCOUNTS",
        '[{"host": "imap.example.com", "user": "support", "password": "s3cret", "mailbox": "support@example.com"},'
        ' {"host": "mail.local", "port": 1143, "security": "none", "user": "b", "password": "p",'
        ' "mailbox": "sales@example.com", "mode": "poll", "interval_seconds": 30, "move_to": "Archive"}]',
    )
    first, second = Settings().imap_accounts
    assert (first.effective_port, first.security, first.mode, first.folder) == (993, "ssl", "idle", "INBOX")
    assert first.password == SecretStr("s3cret") and "s3cret" not in repr(first)
    assert first.label == "support@imap.example.com/INBOX"
    assert (second.effective_port, second.mode, second.interval_seconds, second.move_to) == (
        1143,
        "poll",
        30,
        "Archive",
    )


def test_there_are_no_imap_accounts_unless_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HELPDESK_SERVICE_TOKEN", "t" * 32)
    monkeypatch.delenv("HELPDESK_IMAP_ACCOUNTS", raising=False)
    assert Settings().imap_accounts == []
