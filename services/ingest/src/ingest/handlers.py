"""Accepting an email: keep it, publish it, and only then say yes to the sender."""

import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from bson import Binary
from contracts.envelope import utcnow
from contracts.models import Attachment, LeftOutAttachment
from hdkit.mongo import OutboxRelay, is_duplicate, outbox_fields
from hdkit.telemetry import current_traceparent
from opentelemetry import trace
from prometheus_client import CollectorRegistry, Counter

from contracts import EmailReceived, Envelope, derived_id, topics
from ingest.domain import ParsedEmail, UnreadableEmail, dedupe_key, parse_email
from ingest.store import INLINE_RAW, Store

log = logging.getLogger(__name__)
tracer = trace.get_tracer("ingest")


class Outcome(StrEnum):
    """What happened to one delivery."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    QUARANTINED = "quarantined"


class NotAccepted(Exception):
    """The message could not be handed to Kafka now; the sender must try again later (SMTP 451)."""


class QuarantineEntryNotFound(LookupError):
    """No quarantine entry (or no kept bytes for it) has this id."""


class StillUnreadable(ValueError):
    """A quarantined message was read again and still cannot become a ticket; the text says why."""

    def __init__(self, reason: str, entry: dict[str, Any]) -> None:
        super().__init__(reason)
        self.reason = reason
        self.entry = entry


@dataclass
class Limits:
    """Size limits applied while accepting."""

    max_attachment_bytes: int = 5 * 1024 * 1024
    max_attachments_bytes_per_message: int = 20 * 1024 * 1024


class LeftOutReason(StrEnum):
    """Why an attachment was not kept."""

    FILE_TOO_LARGE = "file_too_large"
    MESSAGE_TOTAL_TOO_LARGE = "message_total_too_large"


@dataclass(frozen=True)
class LeftOut:
    """An attachment that was not kept, and the note shown in the message text instead."""

    filename: str
    size: int
    reason: LeftOutReason
    note: str

    def record(self) -> dict[str, Any]:
        """Return the form kept in the message record."""
        return {"filename": self.filename, "size": self.size, "reason": self.reason.value}


class EmailIntake:
    """Turns raw deliveries into `EmailReceived` events, once per message and mailbox."""

    def __init__(
        self,
        store: Store,
        relay: OutboxRelay,
        metrics: CollectorRegistry,
        *,
        loop_domain: str,
        limits: Limits,
    ) -> None:
        self._store = store
        self._relay = relay
        self._loop_domain = loop_domain
        self._limits = limits
        self._count = Counter(
            "helpdesk_ingest_messages_total",
            "Inbound messages by channel and outcome.",
            ["channel", "outcome"],
            registry=metrics,
        )
        self._bytes = Counter(
            "helpdesk_ingest_bytes_total", "Bytes of inbound messages.", ["channel"], registry=metrics
        )

    async def accept(self, raw: bytes, mailboxes: list[str], *, peer: str = "") -> Outcome:
        """Keep and publish one message for each of our mailboxes it was sent to; return what happened."""
        with tracer.start_as_current_span("ingest email", kind=trace.SpanKind.SERVER) as span:
            span.set_attribute("messaging.message.body.size", len(raw))
            self._bytes.labels("email").inc(len(raw))
            try:
                parsed = parse_email(raw, loop_domain=self._loop_domain)
            except UnreadableEmail as exc:
                await self._quarantine(raw, mailboxes, str(exc), peer)
                span.set_attribute("helpdesk.outcome", Outcome.QUARANTINED.value)
                return Outcome.QUARANTINED
            outcome = await self._accept_parsed(raw, parsed, mailboxes)
            span.set_attribute("helpdesk.outcome", outcome.value)
            return outcome

    async def reprocess(self, quarantine_id: str) -> dict[str, Any]:
        """Read a quarantined message again for its mailboxes; return its updated entry or raise StillUnreadable.

        An entry already reprocessed is returned as it is (a retried request changes nothing). The entry is
        never deleted and never duplicated: it gets `reprocessed_at` and `outcome`, or the newest reason and
        one more `attempts`.
        """
        entry = await self._store.find_quarantine(quarantine_id)
        if entry is None:
            raise QuarantineEntryNotFound(quarantine_id)
        if "reprocessed_at" in entry:
            return entry
        raw = await self._store.load_raw(entry.get("raw_id", quarantine_id))
        if raw is None:
            raise QuarantineEntryNotFound(f"{quarantine_id}: its bytes are gone")
        with tracer.start_as_current_span("reprocess quarantined email") as span:
            span.set_attribute("messaging.message.body.size", len(raw))
            try:
                parsed = parse_email(raw, loop_domain=self._loop_domain)
            except UnreadableEmail as exc:
                updated = await self._store.note_failed_attempt(quarantine_id, str(exc), utcnow())
                span.set_attribute("helpdesk.outcome", Outcome.QUARANTINED.value)
                log.info("quarantined message %s is still unreadable: %s", quarantine_id, exc)
                raise StillUnreadable(str(exc), updated or entry) from exc
            outcome = await self._accept_parsed(raw, parsed, list(entry.get("mailboxes", [])))
            span.set_attribute("helpdesk.outcome", outcome.value)
        updated = await self._store.mark_reprocessed(quarantine_id, outcome.value, utcnow())
        log.info("quarantined message %s reprocessed: %s", quarantine_id, outcome.value)
        return updated or entry

    async def _accept_parsed(self, raw: bytes, parsed: ParsedEmail, mailboxes: list[str]) -> Outcome:
        outcomes = [await self._accept_one(raw, parsed, mailbox) for mailbox in mailboxes]
        return Outcome.ACCEPTED if Outcome.ACCEPTED in outcomes else Outcome.DUPLICATE

    async def _accept_one(self, raw: bytes, parsed: ParsedEmail, mailbox: str) -> Outcome:
        message_key = derived_id("email", dedupe_key(mailbox, raw, parsed.message_id))
        try:
            raw_id = message_key
            inline = len(raw) <= INLINE_RAW
            if not inline:
                await self._store.save_raw(raw_id, raw)
            attachments, left_out = await self._keep_attachments(raw_id, parsed)
            event = EmailReceived(
                mailbox=mailbox.lower(),
                message_id=parsed.message_id,
                in_reply_to=parsed.in_reply_to,
                references=parsed.references,
                subject=parsed.subject,
                sender=parsed.sender,
                to=parsed.to,
                cc=parsed.cc,
                sent_at=parsed.sent_at,
                received_at=utcnow(),
                text=parsed.text + (note := "".join(f"\n\n[{n.note}]" for n in left_out)),
                text_new=parsed.text_new + note,
                bounce=parsed.bounce,
                html=parsed.html,
                auto_submitted=parsed.auto_submitted,
                auto_reason=parsed.auto_reason,
                attachments=attachments,
                left_out=tuple(LeftOutAttachment.model_validate(item.record()) for item in left_out),
                raw_id=raw_id,
                size=len(raw),
            )
            envelope = Envelope.wrap(
                event, event_id=message_key, key=parsed.thread_key(), traceparent=current_traceparent()
            )
            doc: dict[str, Any] = {
                "_id": message_key,
                "mailbox": mailbox.lower(),
                "message_id": parsed.message_id,
                "sender": parsed.sender.email,
                "subject": parsed.subject,
                "received_at": event.received_at,
                "size": len(raw),
                "auto_reason": parsed.auto_reason,
                **({"raw": Binary(raw)} if inline else {}),
                # also in the event (`left_out`); kept here so the record alone tells what was dropped
                **({"left_out": [item.record() for item in left_out]} if left_out else {}),
                **outbox_fields([(topics.INBOUND_EMAIL, envelope)]),
            }
            try:
                await self._store.insert_message(doc)
            except Exception as exc:
                if not is_duplicate(exc):
                    raise
                # Seen before: publish whatever a crash or an outage left unpublished, then say yes.
                await self._relay.flush_written_once(await self._store.find_message(message_key) or {})
                self._count.labels("email", Outcome.DUPLICATE.value).inc()
                return Outcome.DUPLICATE
            await self._relay.flush_written_once(doc)  # a message record never gets further entries
        except Exception as exc:
            log.warning("could not accept a message for %s: %r", mailbox, exc)
            self._count.labels("email", "deferred").inc()
            raise NotAccepted(str(exc)) from exc
        self._count.labels("email", Outcome.ACCEPTED.value).inc()
        return Outcome.ACCEPTED

    async def _keep_attachments(self, raw_id: str, parsed: ParsedEmail) -> tuple[tuple[Attachment, ...], list[LeftOut]]:
        """Keep the attachments within the limits, in order, each with a metadata record; report the rest."""
        per_file = self._limits.max_attachment_bytes
        per_message = self._limits.max_attachments_bytes_per_message
        kept: list[Attachment] = []
        records: list[dict[str, Any]] = []
        left_out: list[LeftOut] = []
        total = 0
        full = False  # once a file does not fit the message's total, later ones are left out too (order is kept)
        for n, part in enumerate(parsed.attachments):
            size = len(part.data)
            if size > per_file:
                left_out.append(
                    LeftOut(
                        part.filename,
                        size,
                        LeftOutReason.FILE_TOO_LARGE,
                        f"Attachment {part.filename!r} ({size} bytes) was left out: the limit is "
                        f"{per_file} bytes per file.",
                    )
                )
                continue
            if full or total + size > per_message:
                full = True
                left_out.append(
                    LeftOut(
                        part.filename,
                        size,
                        LeftOutReason.MESSAGE_TOTAL_TOO_LARGE,
                        f"Attachment {part.filename!r} ({size} bytes) was left out: the attachments of one "
                        f"message may total at most {per_message} bytes.",
                    )
                )
                continue
            total += size
            attachment_id = f"{raw_id}:a{n}"
            await self._store.save_raw(attachment_id, part.data)
            attachment = Attachment(
                attachment_id=attachment_id,
                filename=part.filename,
                content_type=part.content_type[:255],
                size=size,
                content_id=part.content_id,
            )
            kept.append(attachment)
            records.append(
                {
                    "_id": attachment_id,
                    "raw_id": raw_id,
                    "filename": attachment.filename,
                    "content_type": attachment.content_type,
                    "size": size,
                    **({"content_id": attachment.content_id} if attachment.content_id else {}),
                }
            )
        await self._store.save_attachments(records)
        return tuple(kept), left_out

    async def _quarantine(self, raw: bytes, mailboxes: list[str], reason: str, peer: str) -> None:
        raw_id = derived_id("quarantine", dedupe_key(",".join(mailboxes), raw, None))
        try:
            await self._store.save_raw(raw_id, raw)
            await self._store.add_quarantine(
                {
                    "_id": raw_id,
                    "raw_id": raw_id,
                    "mailboxes": mailboxes,
                    "reason": reason,
                    "peer": peer,
                    "size": len(raw),
                    "received_at": utcnow(),
                    "attempts": 1,
                }
            )
        except Exception as exc:
            raise NotAccepted(str(exc)) from exc
        log.warning("quarantined a message for %s: %s", ",".join(mailboxes), reason)
        self._count.labels("email", Outcome.QUARANTINED.value).inc()
