"""Local outgoing-mail catcher: an SMTP server that keeps every mail as a .eml file, with a small web view.

Run ``python tools/mailcatcher.py`` (until SIGINT/SIGTERM). Settings, from the command line or the
environment:

* SMTP on 127.0.0.1:1025 (``--smtp-port`` / HELPDESK_CATCHER_SMTP_PORT). Any AUTH credentials are
  accepted without TLS; STARTTLS is not offered, so clients must not require it.
* Mails go to ``.data/mail`` (``--dir`` / HELPDESK_CATCHER_DIR) as ``NNNNNN-YYYYmmddTHHMMSSffffffZ.eml``
  (sequence, then UTC receive time), byte for byte as received. The id of a mail is that file name
  without ``.eml``.
* HTTP on 127.0.0.1:8025 (``--http-port`` / HELPDESK_CATCHER_HTTP_PORT):

  - ``GET /``                    HTML list, newest first (From, To, Subject, Date, link)
  - ``GET /messages``            JSON list, newest first: [{id, from, to, subject, date, message_id,
    in_reply_to, envelope_from, envelope_to, size}] (the envelope fields are null for mails found on
    disk at start-up)
  - ``GET /messages/{id}.eml``   the raw message, as ``text/plain`` so a browser shows it
  - ``DELETE /messages``         delete every caught mail
  - ``GET /health``              ``{"status": "ok", "count": N}``

Test addresses, to see how senders handle refusals (RFC 2606 reserves the `.test` top-level domain):
recipients at ``refuse.test`` get ``550 5.1.1`` (a permanent failure); a recipient at ``defer.test`` gets
``451 4.3.0`` the first time it is given and is accepted the next time (a temporary failure).

Uses aiosmtpd and the standard library only. Other code can embed it: ``MailCatcher(...).start()``
inside a running event loop, then ``await catcher.stop()``.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.header
import email.message
import email.policy
import html
import json
import logging
import os
import re
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DIR = REPO_ROOT / ".data" / "mail"
ID_RE = re.compile(r"^(\d{6,})-(\d{8}T\d{12}Z)$")
MAX_MESSAGE_BYTES = 50 * 1024 * 1024


def _header(msg: email.message.Message, name: str) -> str | None:
    value = msg.get(name)
    if value is None:
        return None
    return " ".join(str(value).split())


class MailStore:
    """The folder of caught mails, with a cache of their parsed headers."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._meta: dict[str, dict[str, Any]] = {}
        self._envelopes: dict[str, tuple[str, list[str]]] = {}
        self._seq = max((int(m.group(1)) for m in map(ID_RE.match, self._ids())), default=0)

    def _ids(self) -> list[str]:
        return [p.name[:-4] for p in self.folder.glob("*.eml") if ID_RE.match(p.name[:-4])]

    def save(self, raw: bytes, mail_from: str, rcpt_tos: list[str]) -> str:
        """Write one mail; return its id."""
        self._seq += 1
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        msg_id = f"{self._seq:06d}-{stamp}"
        tmp = self.folder / f".{msg_id}.tmp"
        tmp.write_bytes(raw)
        tmp.replace(self.folder / f"{msg_id}.eml")  # atomic: readers never see half a mail
        self._envelopes[msg_id] = (mail_from, list(rcpt_tos))
        return msg_id

    def path(self, msg_id: str) -> Path | None:
        """Return the file of a mail id, or None (also for ids that are not ours)."""
        if not ID_RE.match(msg_id):
            return None
        p = self.folder / f"{msg_id}.eml"
        return p if p.is_file() else None

    def _read_meta(self, msg_id: str) -> dict[str, Any]:
        p = self.folder / f"{msg_id}.eml"
        raw = p.read_bytes()
        msg = email.message_from_bytes(raw, policy=email.policy.compat32)
        envelope_from, envelope_to = self._envelopes.get(msg_id, (None, None))
        date = _header(msg, "Date")
        if not date:
            received = datetime.strptime(ID_RE.match(msg_id).group(2), "%Y%m%dT%H%M%S%fZ")  # type: ignore[union-attr]
            date = received.replace(tzinfo=UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
        return {
            "id": msg_id,
            "from": _decode(_header(msg, "From")) or envelope_from,
            "to": _decode(_header(msg, "To")) or (", ".join(envelope_to) if envelope_to else None),
            "subject": _decode(_header(msg, "Subject")),
            "date": date,
            "message_id": _header(msg, "Message-ID"),
            "in_reply_to": _header(msg, "In-Reply-To"),
            "envelope_from": envelope_from,
            "envelope_to": envelope_to,
            "size": len(raw),
        }

    def list(self) -> list[dict[str, Any]]:
        """Metadata of every mail in the folder, newest first."""
        ids = sorted(self._ids(), key=lambda i: int(i.split("-", 1)[0]), reverse=True)
        out = []
        for msg_id in ids:
            meta = self._meta.get(msg_id)
            if meta is None:
                try:
                    meta = self._meta[msg_id] = self._read_meta(msg_id)
                except OSError:
                    continue  # deleted meanwhile
            out.append(meta)
        return out

    def clear(self) -> int:
        """Delete every caught mail; return how many."""
        n = 0
        for msg_id in self._ids():
            (self.folder / f"{msg_id}.eml").unlink(missing_ok=True)
            n += 1
        self._meta.clear()
        self._envelopes.clear()
        return n


def _decode(value: str | None) -> str | None:
    """Decode RFC 2047 encoded words (=?utf-8?...?=) for display."""
    if value is None:
        return None
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except Exception:  # noqa: BLE001 - show it as it came
        return value


REFUSING_DOMAIN = "refuse.test"
DEFERRING_DOMAIN = "defer.test"


class _Handler:
    def __init__(self, store: MailStore, verbose: bool) -> None:
        self.store = store
        self.verbose = verbose
        self._deferred: set[str] = set()

    async def handle_RCPT(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        domain = address.rpartition("@")[2].lower()
        if domain == REFUSING_DOMAIN:
            return "550 5.1.1 No such mailbox (mail catcher test address)"
        if domain == DEFERRING_DOMAIN and address.lower() not in self._deferred:
            self._deferred.add(address.lower())
            return "451 4.3.0 Try again later (mail catcher test address)"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        raw = envelope.original_content
        if raw is None:
            raw = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
        msg_id = self.store.save(raw, envelope.mail_from or "", list(envelope.rcpt_tos))
        if self.verbose:
            print(
                f"mailcatcher: {msg_id} from {envelope.mail_from} to {', '.join(envelope.rcpt_tos)}",
                flush=True,
            )
        return f"250 OK queued as {msg_id}"


class _DropLoginDataWarning(logging.Filter):
    """aiosmtpd 1.4 warns about its own use of the deprecated Session.login_data on every AUTH."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "login_data is deprecated" not in record.getMessage()


logging.getLogger("mail.log").addFilter(_DropLoginDataWarning())


def _accept_any_login(server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any) -> AuthResult:
    return AuthResult(success=True)


# ------------------------------------------------------------------------------------------ HTTP

_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    500: "Internal Server Error",
}


def _render_index(items: list[dict[str, Any]]) -> bytes:
    e = html.escape
    rows = "\n".join(
        "<tr><td>{f}</td><td>{t}</td><td>{s}</td><td>{d}</td>"
        '<td><a href="/messages/{i}.eml">{i}.eml</a></td></tr>'.format(
            f=e(m["from"] or ""),
            t=e(m["to"] or ""),
            s=e(m["subject"] or "(no subject)"),
            d=e(m["date"] or ""),
            i=e(m["id"]),
        )
        for m in items
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Mail catcher ({len(items)})</title>
<style>body{{font-family:sans-serif;margin:1.5em}}table{{border-collapse:collapse;width:100%}}
th,td{{border-bottom:1px solid #ddd;padding:.35em .6em;text-align:left;vertical-align:top}}
th{{background:#f4f4f4}}</style></head>
<body><h1>Caught mail</h1>
<p>{len(items)} message(s), newest first. JSON: <a href="/messages">/messages</a></p>
<table><thead><tr><th>From</th><th>To</th><th>Subject</th><th>Date</th><th>Message</th></tr></thead>
<tbody>
{rows}
</tbody></table></body></html>
"""
    return page.encode()


class MailCatcher:
    """The SMTP and HTTP servers on one event loop."""

    def __init__(
        self,
        folder: Path = DEFAULT_DIR,
        host: str = "127.0.0.1",
        smtp_port: int = 1025,
        http_port: int = 8025,
        verbose: bool = False,
    ) -> None:
        self.store = MailStore(folder)
        self.host = host
        self.smtp_port = smtp_port
        self.http_port = http_port
        self.verbose = verbose
        self._servers: list[asyncio.base_events.Server] = []

    async def start(self) -> None:
        """Bind both ports (port 0 picks a free one; the real ports are set afterwards)."""
        loop = asyncio.get_running_loop()
        handler = _Handler(self.store, self.verbose)

        def smtp_factory() -> SMTP:
            return SMTP(
                handler,
                hostname="mailcatcher.localhost",
                ident="helpdesk mailcatcher",
                data_size_limit=MAX_MESSAGE_BYTES,
                enable_SMTPUTF8=True,
                decode_data=False,
                auth_require_tls=False,
                authenticator=_accept_any_login,
                loop=loop,
            )

        smtp = await loop.create_server(smtp_factory, self.host, self.smtp_port)
        self._servers.append(smtp)
        http = await asyncio.start_server(self._serve_http, self.host, self.http_port)
        self._servers.append(http)
        self.smtp_port = smtp.sockets[0].getsockname()[1]
        self.http_port = http.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Close both servers."""
        for s in self._servers:
            s.close()
        for s in self._servers:
            await s.wait_closed()
        self._servers.clear()

    # a deliberately tiny HTTP/1.1 server: one request per connection
    async def _serve_http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
            parts = request_line.split()
            if len(parts) != 3:
                await self._respond(writer, 400, "text/plain", b"bad request\n")
                return
            method, target, _ = parts
            status, ctype, body, extra = self._route(method, unquote(urlsplit(target).path))
            await self._respond(writer, status, ctype, b"" if method == "HEAD" else body, extra, len(body))
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
            pass
        except Exception as exc:  # noqa: BLE001 - keep serving
            print(f"mailcatcher: HTTP error {exc!r}", file=sys.stderr, flush=True)
            try:
                await self._respond(writer, 500, "text/plain", b"internal error\n")
            except Exception:  # noqa: BLE001, S110
                pass
        finally:
            writer.close()

    def _route(self, method: str, path: str) -> tuple[int, str, bytes, dict[str, str]]:
        js = "application/json"
        if path in ("/", "/index.html"):
            if method not in ("GET", "HEAD"):
                return 405, "text/plain", b"method not allowed\n", {"Allow": "GET, HEAD"}
            return 200, "text/html; charset=utf-8", _render_index(self.store.list()), {}
        if path == "/health":
            return 200, js, json.dumps({"status": "ok", "count": len(self.store._ids())}).encode(), {}
        if path in ("/messages", "/messages/"):
            if method == "DELETE":
                return 200, js, json.dumps({"deleted": self.store.clear()}).encode(), {}
            if method not in ("GET", "HEAD"):
                return 405, "text/plain", b"method not allowed\n", {"Allow": "GET, HEAD, DELETE"}
            return 200, js, json.dumps(self.store.list(), ensure_ascii=False).encode(), {}
        if path.startswith("/messages/") and path.endswith(".eml"):
            if method not in ("GET", "HEAD"):
                return 405, "text/plain", b"method not allowed\n", {"Allow": "GET, HEAD"}
            p = self.store.path(path[len("/messages/") : -len(".eml")])
            if p is None:
                return 404, "text/plain", b"no such message\n", {}
            # text/plain so that the link in the HTML list shows the mail in a browser
            return 200, "text/plain", p.read_bytes(), {"Content-Disposition": f'inline; filename="{p.name}"'}
        return 404, "text/plain", b"not found\n", {}

    @staticmethod
    async def _respond(
        writer: asyncio.StreamWriter,
        status: int,
        ctype: str,
        body: bytes,
        extra: dict[str, str] | None = None,
        length: int | None = None,
    ) -> None:
        headers = {
            "Content-Type": ctype,
            "Content-Length": str(len(body) if length is None else length),
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "Connection": "close",
            **(extra or {}),
        }
        head = (
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            + "\r\n"
        )
        writer.write(head.encode("latin-1") + body)
        await writer.drain()


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


async def _main(args: argparse.Namespace, folder: Path) -> int:
    catcher = MailCatcher(folder, args.host, args.smtp_port, args.http_port, verbose=not args.quiet)
    await catcher.start()
    print(
        f"mailcatcher: SMTP {args.host}:{catcher.smtp_port}, HTTP http://{args.host}:{catcher.http_port}/, "
        f"mails in {catcher.store.folder}",
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await catcher.stop()
    print("mailcatcher: stopped", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--smtp-port", type=int, default=_env_int("HELPDESK_CATCHER_SMTP_PORT", 1025))
    ap.add_argument("--http-port", type=int, default=_env_int("HELPDESK_CATCHER_HTTP_PORT", 8025))
    ap.add_argument("--dir", default=os.environ.get("HELPDESK_CATCHER_DIR") or str(DEFAULT_DIR))
    ap.add_argument("--quiet", action="store_true", help="do not print a line per caught mail")
    args = ap.parse_args(argv)
    try:
        return asyncio.run(_main(args, Path(args.dir).resolve()))
    except OSError as exc:
        print(f"mailcatcher: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
