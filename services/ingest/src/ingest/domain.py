"""Reading an email: decoding, threading hints, automatic-mail detection and HTML sanitising.

Nothing here does I/O; `parse_email` takes raw bytes and returns what the ticket needs, or raises
`UnreadableEmail` with the reason (the message is then quarantined, never dropped).
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime
from html.parser import HTMLParser

from contracts.models import Address
from hdkit.sanitise import sanitise_html

MSGID = re.compile(r"<([^<>\s]+)>")
AUTOMATIC_SENDERS = re.compile(
    r"^(mailer-daemon|postmaster|no-?reply|do-?not-?reply|bounces?|auto-?reply|autoresponder)([+.\-_].*)?$",
    re.I,
)
LOOP_HEADER = "X-Helpdesk-Loop"


class UnreadableEmail(ValueError):
    """The message cannot be turned into a ticket; the text says why."""


@dataclass(frozen=True)
class ParsedEmail:
    """What ingest extracts from one message."""

    message_id: str | None
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    subject: str
    sender: Address
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    sent_at: datetime | None
    text: str
    html: str | None
    auto_submitted: bool
    auto_reason: str | None
    attachments: tuple[RawAttachment, ...] = field(default=())

    def thread_key(self) -> str:
        """Return the Kafka key that keeps one conversation's mail in order (its oldest known id)."""
        for candidate in (*self.references[:1], *self.in_reply_to[:1], self.message_id):
            if candidate:
                return candidate
        return f"{self.sender.email}|{normalise_subject(self.subject)}"


@dataclass(frozen=True)
class RawAttachment:
    """An attachment's bytes and what was declared about it."""

    filename: str
    content_type: str
    data: bytes
    content_id: str | None


def message_ids(value: str | None) -> tuple[str, ...]:
    """Return the Message-IDs in a header value, without angle brackets, in order."""
    if not value:
        return ()
    found = MSGID.findall(str(value))
    if not found and str(value).strip() and " " not in str(value).strip():
        found = [str(value).strip()]  # some clients omit the brackets
    return tuple(dict.fromkeys(found))


def normalise_subject(subject: str) -> str:
    """Strip reply/forward prefixes (English and Scandinavian) for comparisons."""
    return re.sub(r"^\s*((re|fw|fwd|sv|vs|vb|aw|antw)\s*:\s*)+", "", subject, flags=re.I).strip().lower()


def _address(value: str, default_name: str = "") -> Address | None:
    pairs = getaddresses([value])
    for name, addr in pairs:
        addr = addr.strip().lower()
        if "@" in addr and len(addr) <= 320:
            return Address(email=addr, name=(name or default_name).strip()[:320])
    return None


def _addresses(msg: Message, header: str) -> tuple[Address, ...]:
    values = [str(v) for v in msg.get_all(header, [])]
    out: dict[str, Address] = {}
    for name, addr in getaddresses(values):
        addr = addr.strip().lower()
        if "@" in addr and len(addr) <= 320 and addr not in out:
            out[addr] = Address(email=addr, name=name.strip()[:320])
    return tuple(out.values())


def automatic_reason(msg: Message, sender: Address | None, our_loop_domain: str) -> str | None:
    """Return why a message counts as automatic (never to be auto-answered), or None for a person's mail."""
    auto = str(msg.get("Auto-Submitted", "")).strip().lower()
    if auto and auto != "no":
        return f"Auto-Submitted: {auto}"
    precedence = str(msg.get("Precedence", "")).strip().lower()
    if precedence in {"bulk", "junk", "list", "auto_reply"}:
        return f"Precedence: {precedence}"
    if msg.get("X-Auto-Response-Suppress"):
        return "X-Auto-Response-Suppress"
    if str(msg.get(LOOP_HEADER, "")).strip().lower() == our_loop_domain.lower():
        return f"our own loop header {LOOP_HEADER}"
    if msg.get("List-Id") or msg.get("List-Unsubscribe"):
        return "mailing-list mail"
    return_path = msg.get("Return-Path")
    if return_path is not None and str(return_path).strip() in {"<>", ""}:
        return "empty Return-Path (bounce)"
    if msg.get_content_type() == "multipart/report":
        return "delivery status notification"
    if sender and AUTOMATIC_SENDERS.match(sender.email.partition("@")[0]):
        return f"automatic sender {sender.email}"
    return None


class _TextFromHtml(HTMLParser):
    BLOCK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "table"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in {"script", "style", "head"}:
            self._skip += 1
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in {"script", "style", "head"} and self._skip:
            self._skip -= 1
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """Return readable plain text made from HTML."""
    parser = _TextFromHtml()
    parser.feed(html)
    parser.close()
    text = "".join(parser.parts)
    text = re.sub(r"[ \t\r\f\v]+", " ", text)
    return re.sub(r"\n\s*\n+", "\n\n", text).strip()


def _decode_part(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return str(part.get_payload())
    charset = part.get_content_charset() or "utf-8"
    aliases = {"unknown-8bit": "latin-1", "x-unknown": "latin-1", "ansi_x3.4-1968": "ascii"}
    charset = aliases.get(charset.lower(), charset)
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:
        # An unknown charset name: UTF-8 if it decodes, else windows-1252 (what such mail mostly is).
        try:
            return payload.decode("utf-8")
        except UnicodeDecodeError:
            return payload.decode("cp1252", errors="replace")


def _bodies(msg: Message) -> tuple[str | None, str | None, list[RawAttachment]]:
    text: str | None = None
    html: str | None = None
    attachments: list[RawAttachment] = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        disposition = (part.get_content_disposition() or "").lower()
        filename = part.get_filename()
        if (
            disposition == "attachment"
            or (filename and ctype not in {"text/plain", "text/html"})
            or (not ctype.startswith("text/"))
        ):
            data = part.get_payload(decode=True)
            attachments.append(
                RawAttachment(
                    filename=(filename or "attachment").replace("/", "_").replace("\\", "_")[:255],
                    content_type=ctype,
                    data=data if isinstance(data, bytes) else b"",
                    content_id=(message_ids(part.get("Content-ID")) or (None,))[0],
                )
            )
        elif ctype == "text/plain" and text is None:
            text = _decode_part(part)
        elif ctype == "text/html" and html is None:
            html = _decode_part(part)
    return text, html, attachments


def parse_email(raw: bytes, *, loop_domain: str) -> ParsedEmail:
    """Read raw RFC 5322 bytes; raise `UnreadableEmail` with the reason when it cannot become a ticket."""
    if not raw.strip():
        raise UnreadableEmail("empty message")
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.default)
    except Exception as exc:  # the parser is lenient; anything it raises means the bytes are unusable
        raise UnreadableEmail(f"MIME structure unreadable: {exc!r}") from exc
    try:
        sender = _address(str(msg.get("From", "") or ""))
        if sender is None:
            sender = _address(str(msg.get("Sender", "") or "")) or _address(str(msg.get("Return-Path", "") or ""))
        if sender is None:
            raise UnreadableEmail("no usable sender address (From, Sender and Return-Path are empty or invalid)")
        subject = str(msg.get("Subject", "") or "").replace("\r", "").replace("\n", " ").strip()
        date = None
        if msg.get("Date"):
            try:
                date = parsedate_to_datetime(str(msg["Date"]))
                date = date if date.tzinfo else date.replace(tzinfo=UTC)
            except (TypeError, ValueError):
                date = None
        text, html, attachments = _bodies(msg)
    except UnreadableEmail:
        raise
    except Exception as exc:
        raise UnreadableEmail(f"cannot decode message: {exc!r}") from exc
    safe_html = sanitise_html(html) if html else None
    if text is None:
        text = html_to_text(html) if html else ""
    own_ids = message_ids(str(msg.get("Message-ID", "") or ""))
    return ParsedEmail(
        message_id=own_ids[0] if own_ids else None,
        in_reply_to=message_ids(str(msg.get("In-Reply-To", "") or "")),
        references=message_ids(" ".join(str(v) for v in msg.get_all("References", []))),
        subject=subject[:10_000],
        sender=sender,
        to=_addresses(msg, "To"),
        cc=_addresses(msg, "Cc"),
        sent_at=date,
        text=text.replace("\r\n", "\n"),
        html=safe_html,
        auto_submitted=(reason := automatic_reason(msg, sender, loop_domain)) is not None,
        auto_reason=reason,
        attachments=tuple(attachments),
    )


def dedupe_key(mailbox: str, raw: bytes, message_id: str | None) -> str:
    """Return what makes two deliveries the same message: the Message-ID on a mailbox, else the bytes."""
    if message_id:
        return f"{mailbox.lower()}|mid|{message_id}"
    return f"{mailbox.lower()}|sha256|{hashlib.sha256(raw).hexdigest()}"
