r"""IMAP intake: read configured IMAP folders and hand each new message to `EmailIntake`, one task per account.

A message is handled once it carries the keyword `$HelpdeskIngested`; the poller sets it with
`UID STORE +FLAGS` only after `EmailIntake.accept` returned (the event is in Kafka, or the message was a
duplicate, or it was unreadable and is kept in quarantine). A keyword rather than `\Seen` is used because
people may read the mailbox too. Messages are fetched with `BODY.PEEK[]`, which does not set `\Seen`.
When Kafka cannot take the message (`NotAccepted`) it stays unmarked and is fetched again on the next
round. A message larger than the size limit is never downloaded: it gets `$HelpdeskRefused` instead,
with a log line and a metric, and is left in the folder for a person to look at.
"""

import asyncio
import contextlib
import logging
import re
import ssl
from collections.abc import Sequence

from aioimaplib import IMAP4, IMAP4_SSL, AioImapException, Command, Response
from prometheus_client import CollectorRegistry, Counter, Gauge

from ingest.handlers import EmailIntake, NotAccepted, Outcome
from ingest.settings import ImapAccount, ImapMode, ImapSecurity

log = logging.getLogger(__name__)

INGESTED = "$HelpdeskIngested"
REFUSED = "$HelpdeskRefused"

_FETCH_UID = re.compile(rb"\bUID (\d+)")
_FETCH_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")


class ImapError(Exception):
    """The IMAP server refused a command or answered in a way we cannot use; the session is restarted."""


class ImapMetrics:
    """The Prometheus metrics shared by every account's poller."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.errors = Counter(
            "helpdesk_ingest_imap_errors_total",
            "IMAP errors (connection, login, protocol, failed message) by account.",
            ["account"],
            registry=registry,
        )
        self.fetched = Counter(
            "helpdesk_ingest_imap_fetched_total",
            "IMAP messages handled by account and outcome (accepted, duplicate, quarantined, deferred, refused).",
            ["account", "outcome"],
            registry=registry,
        )
        self.connected = Gauge(
            "helpdesk_ingest_imap_connected", "1 while the account is logged in.", ["account"], registry=registry
        )


def parse_search(response: Response) -> list[int]:
    """Return the UIDs of an `UID SEARCH` answer, in ascending order."""
    uids: list[int] = []
    for line in response.lines:
        if isinstance(line, bytes | bytearray) and line.startswith(b"SEARCH"):
            line = line[len(b"SEARCH") :]  # noqa: PLW2901 - some servers keep the keyword in the data
        if isinstance(line, bytes | bytearray) and re.fullmatch(rb"[\d ]*", bytes(line)):
            uids.extend(int(part) for part in line.split())
    return sorted(set(uids))


def parse_sizes(response: Response) -> dict[int, int]:
    """Return {uid: RFC822.SIZE} from a `UID FETCH (RFC822.SIZE)` answer."""
    sizes: dict[int, int] = {}
    for line in response.lines:
        if not isinstance(line, bytes | bytearray) or b"FETCH" not in line:
            continue
        uid, size = _FETCH_UID.search(line), _FETCH_SIZE.search(line)
        if uid and size:
            sizes[int(uid.group(1))] = int(size.group(1))
    return sizes


def parse_body(response: Response) -> bytes | None:
    """Return the message bytes of a `UID FETCH (BODY.PEEK[])` answer, or None when it holds none."""
    lines = response.lines
    for n, line in enumerate(lines[:-1]):
        if isinstance(line, bytes) and b"BODY[]" in line and isinstance(lines[n + 1], bytearray):
            return bytes(lines[n + 1])
    return None


def uid_set(uids: Sequence[int]) -> str:
    """Return an IMAP sequence set naming these UIDs."""
    return ",".join(str(uid) for uid in uids)


class ImapPoller:
    """Reads one IMAP account forever: connect, handle what is new, wait (IDLE or interval), reconnect on errors."""

    def __init__(
        self,
        account: ImapAccount,
        intake: EmailIntake,
        metrics: ImapMetrics,
        *,
        max_message_bytes: int,
        backoff_initial_seconds: float = 1.0,
    ) -> None:
        self.account = account
        self._intake = intake
        self._metrics = metrics
        self._max_bytes = max_message_bytes
        self._backoff_initial = backoff_initial_seconds
        self._client: IMAP4 | None = None
        self._lost = asyncio.Event()
        self.rounds = 0
        self.idling = asyncio.Event()  # set while the server has acknowledged our IDLE

    async def run(self) -> None:
        """Run until cancelled; errors are logged, counted and followed by a reconnect after a back-off."""
        label = self.account.label
        delay = self._backoff_initial
        while True:
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one account's failure must never end its task
                self._metrics.errors.labels(label).inc()
                log.warning("imap %s: %s; reconnecting in %.1fs", label, _describe(exc), delay)
            finally:
                self._metrics.connected.labels(label).set(0)
                await self._disconnect()
            if self.rounds:
                delay = self._backoff_initial  # the session worked for a while: start the back-off afresh
                self.rounds = 0
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.account.backoff_max_seconds)

    async def _session(self) -> None:
        client = await self._connect()
        label = self.account.label
        self._metrics.connected.labels(label).set(1)
        log.info("imap %s: logged in, reading %s", label, self.account.folder)
        idle = self.account.mode is ImapMode.IDLE and client.has_capability("IDLE")
        if self.account.mode is ImapMode.IDLE and not idle:
            log.info("imap %s: the server has no IDLE; polling every %.0fs", label, self.account.interval_seconds)
        while True:
            await self.handle_new(client)
            self.rounds += 1
            if idle:
                await self._idle(client)
            else:
                await self._sleep_or_lost(self.account.interval_seconds)

    async def _connect(self) -> IMAP4:
        account = self.account
        self._lost = asyncio.Event()
        lost = self._lost

        def on_lost(_: Exception | None) -> None:
            lost.set()

        if account.security is ImapSecurity.SSL:
            client: IMAP4 = IMAP4_SSL(
                account.host, account.effective_port, timeout=account.timeout_seconds, ssl_context=_tls_context()
            )
            client.protocol.conn_lost_cb = on_lost
        else:
            client = IMAP4(account.host, account.effective_port, timeout=account.timeout_seconds, conn_lost_cb=on_lost)
        self._client = client
        await client.wait_hello_from_server()
        if account.security is ImapSecurity.STARTTLS:
            await self._starttls(client)
        response = await client.login(account.user, account.password.get_secret_value())
        if response.result != "OK":
            raise ImapError(f"login failed: {_text(response)}")
        response = await client.select(_quote(account.folder))
        if response.result != "OK":
            raise ImapError(f"cannot select {account.folder!r}: {_text(response)}")
        return client

    async def _starttls(self, client: IMAP4) -> None:
        protocol = client.protocol
        if not client.has_capability("STARTTLS"):
            raise ImapError("the server offers no STARTTLS")
        command = Command("STARTTLS", protocol.new_tag(), loop=protocol.loop)
        response = await asyncio.wait_for(protocol.execute(command), self.account.timeout_seconds)
        if response.result != "OK":
            raise ImapError(f"STARTTLS refused: {_text(response)}")
        protocol.transport = await protocol.loop.start_tls(
            protocol.transport, protocol, _tls_context(), server_hostname=self.account.host
        )
        # capabilities before TLS must not be trusted (RFC 3501 6.2.1)
        await asyncio.wait_for(protocol.capability(), self.account.timeout_seconds)

    async def _disconnect(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        with contextlib.suppress(Exception):
            if client.has_pending_idle():
                client.idle_done()
            await asyncio.wait_for(client.logout(), 2)
        with contextlib.suppress(Exception):
            client.protocol.transport.close()

    async def _sleep_or_lost(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._lost.wait(), seconds)
        if self._lost.is_set():
            raise ImapError("connection lost")

    async def _idle(self, client: IMAP4) -> None:
        """Wait in IDLE until the server reports a change, the interval passes, or the connection drops."""
        interval = self.account.interval_seconds
        idle_task = await client.idle_start(timeout=interval)
        self.idling.set()
        push = asyncio.ensure_future(client.wait_server_push(timeout=interval + 5))
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            await asyncio.wait({push, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.idling.clear()
            push.cancel()
            lost.cancel()
        if self._lost.is_set():
            raise ImapError("connection lost during IDLE")
        client.idle_done()
        await asyncio.wait_for(idle_task, self.account.timeout_seconds)

    async def handle_new(self, client: IMAP4) -> int:
        """Hand every message of the folder not yet marked to the intake; return how many were marked."""
        label = self.account.label
        response = await client.uid_search("UNKEYWORD", INGESTED, "UNKEYWORD", REFUSED, charset=None)
        _check(response, "UID SEARCH")
        uids = parse_search(response)
        if not uids:
            return 0
        response = await client.uid("fetch", uid_set(uids), "(UID RFC822.SIZE)")
        _check(response, "UID FETCH RFC822.SIZE")
        sizes = parse_sizes(response)
        marked = 0
        for uid in uids:
            if uid not in sizes:
                continue  # expunged meanwhile
            if sizes[uid] > self._max_bytes:
                await self._mark(client, uid, REFUSED)
                self._metrics.fetched.labels(label, "refused").inc()
                log.warning(
                    "imap %s: message uid %d has %d bytes, over the limit of %d; marked %s and left in %s",
                    label,
                    uid,
                    sizes[uid],
                    self._max_bytes,
                    REFUSED,
                    self.account.folder,
                )
                continue
            response = await client.uid("fetch", str(uid), "(UID BODY.PEEK[])")
            _check(response, "UID FETCH BODY.PEEK[]")
            raw = parse_body(response)
            if raw is None:
                self._metrics.errors.labels(label).inc()
                log.warning("imap %s: no body in the answer for uid %d; trying again next round", label, uid)
                continue
            try:
                outcome = await self._intake.accept(raw, [self.account.mailbox], peer=f"imap:{label}")
            except NotAccepted as exc:
                # Kafka (or the store) cannot take it now; the rest would fail alike, so end this round.
                self._metrics.fetched.labels(label, "deferred").inc()
                log.warning("imap %s: uid %d not accepted (%s); it stays unmarked for the next round", label, uid, exc)
                break
            await self._mark(client, uid, INGESTED)
            self._metrics.fetched.labels(label, outcome.value).inc()
            marked += 1
            if outcome is Outcome.QUARANTINED:
                log.warning("imap %s: uid %d was unreadable and is kept in quarantine", label, uid)
        return marked

    async def _mark(self, client: IMAP4, uid: int, keyword: str) -> None:
        response = await client.uid("store", str(uid), "+FLAGS.SILENT", f"({keyword})")
        _check(response, f"UID STORE {keyword}")
        if self.account.move_to:
            await self._move(client, uid)

    async def _move(self, client: IMAP4, uid: int) -> None:
        target = _quote(self.account.move_to or "")
        if client.has_capability("MOVE"):
            _check(await client.uid("move", str(uid), target), "UID MOVE")
            return
        _check(await client.uid("copy", str(uid), target), "UID COPY")
        _check(await client.uid("store", str(uid), "+FLAGS.SILENT", "(\\Deleted)"), "UID STORE \\Deleted")
        if client.has_capability("UIDPLUS"):
            _check(await client.uid("expunge", str(uid)), "UID EXPUNGE")


class ImapIntake:
    """Runs one `ImapPoller` per configured account, each as its own task."""

    def __init__(
        self,
        accounts: Sequence[ImapAccount],
        intake: EmailIntake,
        registry: CollectorRegistry,
        *,
        max_message_bytes: int,
        backoff_initial_seconds: float = 1.0,
    ) -> None:
        metrics = ImapMetrics(registry)
        self.pollers = [
            ImapPoller(
                account,
                intake,
                metrics,
                max_message_bytes=max_message_bytes,
                backoff_initial_seconds=backoff_initial_seconds,
            )
            for account in accounts
        ]

    async def run(self) -> None:
        """Run every account's poller until cancelled; on cancellation each logs out."""
        if not self.pollers:
            return
        tasks = [asyncio.create_task(p.run(), name=f"imap {p.account.label}") for p in self.pollers]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def _tls_context() -> ssl.SSLContext:
    return ssl.create_default_context(ssl.Purpose.SERVER_AUTH)


def _quote(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _text(response: Response) -> str:
    return " ".join(
        line.decode(errors="replace") if isinstance(line, bytes | bytearray) else str(line) for line in response.lines
    )[:300]


def _check(response: Response, what: str) -> None:
    if response.result != "OK":
        raise ImapError(f"{what} failed: {response.result} {_text(response)}")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, AioImapException | ImapError | OSError):
        return f"{type(exc).__name__}: {exc}"
    return repr(exc)
