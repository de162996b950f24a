"""What notify does with commands and events: send a mail once, stop mailing bounced addresses, notify in-app.

`SendNotification`: render, claim, send once over SMTP, record, publish. `TicketAssigned` and `CommentAdded`
with @mentions: in-app notifications.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any, Protocol

from contracts.envelope import utcnow
from contracts.message_ids import make_message_id
from contracts.models import Address, TicketSnapshot
from hdkit.telemetry import current_traceparent
from prometheus_client import CollectorRegistry, Counter

from contracts import (
    AddressDeliverable,
    AddressUndeliverable,
    CommentAdded,
    Envelope,
    NotificationFailed,
    NotificationSent,
    SendNotification,
    TicketAssigned,
    derived_id,
    topics,
)
from notify.attachments import (
    DEFAULT_MAX_BYTES,
    Files,
    FileSource,
    LeftOutFile,
    attach,
    files_to_attach,
    gather,
    with_left_out_note,
)
from notify.domain import (
    BadAddress,
    InAppNotice,
    MailSettings,
    NotifyMode,
    RenderError,
    Signature,
    Template,
    assignment_notices,
    build_message,
    from_name,
    languages_to_try,
    mention_notices,
    notify_mode_for,
    pick_signature,
    render,
    usable_address,
    with_configured_mailbox_signature,
    without_content,
)
from notify.smtp import DeliveryDeferred, DeliveryRefused, MailSender
from notify.store import FAILED, SENDING, SENT, SKIPPED, UNCERTAIN

log = logging.getLogger(__name__)


class MailServerUnavailable(ConnectionError):
    """The SMTP server did not take a mail this time; raised so the consumer retries the command.

    A `ConnectionError`, so `hdkit.kafka.Consumer` treats it as a passing failure: retried, never
    dead-lettered. The mail itself is `deferred` in the store, so the retry may send it.
    """


class NotificationStore(Protocol):
    """The part of `notify.store.Store` the handlers use."""

    async def get(self, notification_id: str) -> dict[str, Any] | None:
        """Return a notification document."""
        ...

    async def claim(self, notification_id: str, fields: dict[str, Any]) -> bool:
        """Mark it `sending` if new or deferred."""
        ...

    async def defer(self, notification_id: str, reason: str) -> int:
        """Mark it `deferred`; return its attempts."""
        ...

    async def finish(
        self, notification_id: str, state: str, fields: dict[str, Any], outbox: list[tuple[str, Envelope]]
    ) -> None:
        """Record the outcome with its outbox."""
        ...

    async def fail_before_sending(
        self, notification_id: str, fields: dict[str, Any], outbox: list[tuple[str, Envelope]]
    ) -> bool:
        """Record a mail that cannot be sent at all."""
        ...

    async def mark_uncertain(self, notification_id: str, reason: str) -> bool:
        """Mark a `sending` notification `uncertain`."""
        ...

    async def find_template(self, key: str, languages: Sequence[str]) -> Template | None:
        """Return a template."""
        ...

    async def count_automatic(self, key: str, window: timedelta, now: datetime) -> int:
        """Count one automatic mail for a key in the current window; return the window's count."""
        ...

    async def suppress(self, address: str, since: datetime, problem: dict[str, Any]) -> bool:
        """Suppress mail to an address from `since` unless a later change is recorded."""
        ...

    async def unsuppress(self, address: str, at: datetime, fields: dict[str, Any]) -> bool:
        """Send mail to an address again from `at` unless a later change is recorded."""
        ...

    async def suppression(self, address: str) -> dict[str, Any] | None:
        """Return why mail to an address is suppressed, or None."""
        ...

    async def skip(self, notification_id: str, fields: dict[str, Any]) -> bool:
        """Record a notification that is not to be sent (new or deferred)."""
        ...

    async def mail_settings(self) -> MailSettings:
        """Return the admin's settings for outgoing mail."""
        ...

    async def signatures(self) -> list[Signature]:
        """Return every stored signature."""
        ...


class Outbox(Protocol):
    """Publishes a document's outbox (`hdkit.mongo.OutboxRelay`)."""

    async def flush(self, doc: dict[str, Any] | None) -> int:
        """Publish and clear the document's pending entries."""
        ...

    async def flush_items(self, doc_id: Any, items: list[tuple[str, Envelope]]) -> int:
        """Publish the given entries of a document and clear them."""
        ...


@dataclass(frozen=True)
class MailIdentity:
    """How our mail names itself: the Message-ID secret and domain, and the From names of mailboxes."""

    message_id_secret: str
    mail_domain: str
    mailbox_names: Mapping[str, str]
    default_from_name: str = "Support"
    mailbox_signatures: Mapping[str, str] = field(default_factory=dict)

    def from_name(self, mailbox: str, default: str = "") -> str:
        """Return the display name for a mailbox: its own, else `default` (the admin's), else the configured one."""
        return self.mailbox_names.get(mailbox.lower()) or default or self.default_from_name

    def signature(self, mailbox: str) -> str:
        """Return a mailbox's own signature, or "" when it has none."""
        return self.mailbox_signatures.get(mailbox.lower(), "").strip("\n")


@dataclass(frozen=True)
class Composed:
    """A mail ready to go, with what the records need about it."""

    message: EmailMessage
    message_id: str
    subject: str
    cc: tuple[str, ...] = ()
    files: Files = field(default_factory=Files)


@dataclass(frozen=True)
class _Unrecorded:
    message_id: str
    subject: str
    sent_at: datetime


HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@dataclass(frozen=True)
class AutoMailCaps:
    """How many automatic mails (auto-replies, rule mail) may go out, per ticket and per recipient; 0: no cap.

    These stop what loop detection misses: an auto-responder that marks nothing answering our auto-reply,
    or a rule that fires on every comment of a chatty thread. Mail an agent writes is never capped.
    """

    per_ticket_per_hour: int = 5
    per_recipient_per_hour: int = 10
    per_recipient_per_day: int = 30
    per_staff_per_hour: int = 60

    def windows(self, command: SendNotification) -> list[tuple[str, timedelta, int, str]]:
        """Return (counter key, window, cap, what it limits) for each cap that applies.

        Notices to staff (the handler, a group) are counted apart: a busy agent gets many in an hour, and
        they must not use up the customer's allowance on the ticket; only a high cap guards against loops.
        """
        recipient = command.to.email.lower()
        if command.audience == "staff":
            cap = (f"staff:{recipient}", HOUR, self.per_staff_per_hour, f"notices to {recipient} an hour")
            return [cap] if cap[2] > 0 else []
        caps = [
            (f"ticket:{command.ticket_id}", HOUR, self.per_ticket_per_hour, "automatic mails for this ticket an hour"),
            (f"to:{recipient}", HOUR, self.per_recipient_per_hour, f"automatic mails to {recipient} an hour"),
            (f"to:{recipient}", DAY, self.per_recipient_per_day, f"automatic mails to {recipient} a day"),
        ]
        return [cap for cap in caps if cap[2] > 0]


class CannotSend(Exception):
    """The mail cannot be made (unknown template, bad template, bad address): retrying cannot help."""


class Handlers:
    """One method per command notify handles."""

    def __init__(
        self,
        store: NotificationStore,
        relay: Outbox,
        sender: MailSender,
        *,
        identity: MailIdentity,
        metrics: CollectorRegistry,
        max_attempts: int = 8,
        max_retry_delay: float = 30.0,
        caps: AutoMailCaps | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], datetime] = utcnow,
        files: FileSource | None = None,
        max_attachments_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self._store = store
        self._relay = relay
        self._sender = sender
        self._files = files  # None: mail goes without the files of replies (they are on the ticket)
        self._max_attachments_bytes = max_attachments_bytes
        self._identity = identity
        self._max_attempts = max_attempts
        self._max_retry_delay = max_retry_delay
        self._caps = caps or AutoMailCaps()
        self._sleep = sleep
        self._clock = clock
        # Mails the server took whose recording failed in this process: a redelivery records them as sent.
        self._unrecorded: dict[str, _Unrecorded] = {}
        self._outcomes = Counter(
            "helpdesk_notifications_total",
            "Notifications handled, by template and outcome "
            "(sent, failed, deferred, uncertain, duplicate, suppressed, skipped).",
            ["template", "outcome"],
            registry=metrics,
        )

    async def send_notification(self, envelope: Envelope, command: SendNotification) -> None:
        """Send the mail a command asks for, once; report `NotificationSent` or `NotificationFailed`.

        Mail to a customer follows the notify mode (the ticket's, else the global one): `never` records it
        as skipped and reports nothing, `link` leaves the comment's content out.
        """
        nid = command.notification_id
        settings = await self._store.mail_settings()
        mode: NotifyMode = "email"
        if command.audience == "customer":
            mode, source = notify_mode_for(command.context.get("ticket"), settings.notify_mode)
            if mode == "never":
                await self._skip(envelope, command, f"not sent: {source} is `never`")
                return
        if (suppressed := await self._store.suppression(command.to.email)) is not None:
            reason = _undeliverable(command.to.email, suppressed)
            await self._fail_before_sending(envelope, command, reason, outcome="suppressed")
            return
        try:
            mail = await self.compose(command, mode=mode, settings=settings)
        except CannotSend as exc:
            await self._fail_before_sending(envelope, command, str(exc))
            return
        if not await self._store.claim(nid, self._fields(envelope, command, mail, mode)):
            await self._seen_before(await self._store.get(nid), envelope, command)
            return
        if automatic(command) and (over := await self._over_cap(command)):
            await self._refused(envelope, command, f"not sent: {over}", permanent=False, outcome="suppressed")
            return
        try:
            await self._sender.send(mail.message, sender=command.mailbox, recipients=[command.to.email, *mail.cc])
        except DeliveryDeferred as exc:
            await self._deferred(envelope, command, exc)
            return
        except DeliveryRefused as exc:
            await self._refused(envelope, command, f"refused by the mail server: {exc}", permanent=exc.permanent)
            return
        sent = _Unrecorded(mail.message_id, mail.subject, self._clock())
        self._unrecorded[nid] = sent
        await self._record_sent(envelope, command, sent)

    async def address_undeliverable(self, envelope: Envelope, event: AddressUndeliverable) -> None:
        """Stop sending to an address that bounced for good (an older event never undoes a newer one)."""
        problem = {"since": event.since, "status": event.status, "diagnostic": event.diagnostic, "cause": event.cause}
        if await self._store.suppress(event.address, event.since, problem):
            log.warning("mail to %s is suppressed from now on: %s %s", event.address, event.status, event.diagnostic)

    async def address_deliverable(self, envelope: Envelope, event: AddressDeliverable) -> None:
        """Send to an address again: an agent lifted its undeliverable mark."""
        fields = {"lifted_by": event.actor.model_dump(mode="json")}
        if await self._store.unsuppress(event.address, event.at, fields):
            log.info("mail to %s is sent again (lifted by %s)", event.address, event.actor.id or event.actor.email)

    async def _over_cap(self, command: SendNotification) -> str | None:
        """Count this automatic mail against its caps; return which cap it exceeds, or None."""
        now = self._clock()
        for key, window, cap, what in self._caps.windows(command):
            if await self._store.count_automatic(key, window, now) > cap:
                return f"the cap of {cap} {what} is reached (loop protection)"
        return None

    async def compose(
        self, command: SendNotification, *, mode: NotifyMode = "email", settings: MailSettings | None = None
    ) -> Composed:
        """Render the command's template and build the mail; raise `CannotSend` when that is impossible.

        The closing greeting and the signature follow the language of the template found; the signature is
        the agent's when the mail speaks for one (`on_behalf_of`), else the mailbox's, else the general one.
        """
        template = await self._store.find_template(command.template, languages_to_try(command.language))
        if template is None:
            raise CannotSend(f"unknown template {command.template!r} ({command.language})")
        settings = settings or await self._store.mail_settings()
        signatures = with_configured_mailbox_signature(
            await self._store.signatures(), command.mailbox, self._identity.signature(command.mailbox)
        )
        agent, language = command.on_behalf_of, template.language
        mailbox_signature = pick_signature(signatures, mailbox=command.mailbox, user_id=None, language=language)
        signature = (
            pick_signature(signatures, mailbox=command.mailbox, user_id=agent.id, language=language)
            if agent is not None and agent.id
            else mailbox_signature
        )
        mailbox_name = self._identity.from_name(command.mailbox, settings.from_name)
        copies = await self._copies(command)
        message_id = make_message_id(
            ticket_id=command.ticket_id,
            token=command.notification_id,
            secret=self._identity.message_id_secret,
            domain=self._identity.mail_domain,
        )
        context = _context(
            command,
            mailbox_name=mailbox_name,
            mailbox_signature=mailbox_signature.text if mailbox_signature else "",
            signature=signature,
            closing=settings.closing(language),
            mode=mode,
        )
        files = await self._reply_files(command, mode)
        try:
            rendered = render(template, context, ticket_number=command.ticket_number)
            rendered = with_left_out_note(
                rendered,
                files.left_out,
                language=language,
                link=str(context.get("link") or ""),
                max_bytes=self._max_attachments_bytes,
            )
            message = build_message(
                rendered,
                to_email=command.to.email,
                to_name=command.to.name,
                mailbox=command.mailbox,
                mailbox_name=from_name(mailbox_name, agent),
                message_id=message_id,
                ticket_number=command.ticket_number,
                mail_domain=self._identity.mail_domain,
                date=self._clock(),
                in_reply_to=command.in_reply_to,
                references=command.references,
                auto_submitted=automatic(command),
                cc=[(c.email, c.name) for c in copies],
            )
        except (RenderError, BadAddress) as exc:
            raise CannotSend(f"template {command.template!r}: {exc}") from exc
        attach(message, files.attached)
        return Composed(
            message=message,
            message_id=message_id,
            subject=rendered.subject,
            cc=tuple(c.email for c in copies),
            files=files,
        )

    async def _reply_files(self, command: SendNotification, mode: NotifyMode) -> Files:
        """Return the files of the public reply a customer mail carries (none in link mode: content stays out)."""
        wanted = files_to_attach(command.context, audience=command.audience)
        if not wanted or mode != "email":
            return Files()
        if self._files is None:
            log.warning("notification %s: no file source configured; its files are left out", command.notification_id)
            return Files(left_out=tuple(LeftOutFile(f.filename, f.size, "unavailable") for f in wanted))
        return await gather(wanted, self._files, max_bytes=self._max_attachments_bytes)

    async def _copies(self, command: SendNotification) -> list[Address]:
        """Return the Cc addresses to use: each once, not the main recipient, none that is undeliverable."""
        seen = {command.to.email.lower()}
        copies: list[Address] = []
        for copy in command.cc:
            address = copy.email.lower()
            if address in seen:
                continue
            seen.add(address)
            if not usable_address(copy.email):
                log.warning(
                    "notification %s: Cc %r is not a usable address; left out", command.notification_id, copy.email
                )
                continue
            if (suppressed := await self._store.suppression(copy.email)) is not None:
                log.info(
                    "notification %s: Cc left out, %s", command.notification_id, _undeliverable(address, suppressed)
                )
                continue
            copies.append(copy)
        return copies

    async def _seen_before(self, doc: dict[str, Any] | None, envelope: Envelope, command: SendNotification) -> None:
        nid = command.notification_id
        state = (doc or {}).get("state")
        if state in (SENT, FAILED, SKIPPED):
            # Its outcome is recorded; the event that reports it may not have gone out yet.
            log.info("notification %s is already %s; not sending again", nid, state)
            self._count(command, "duplicate")
            await self._relay.flush(doc)
        elif state == SENDING and nid in self._unrecorded:
            log.warning("notification %s was sent but not recorded; recording it now", nid)
            await self._record_sent(envelope, command, self._unrecorded[nid])
        elif state == SENDING:
            reason = "a previous attempt stopped between sending and recording; the mail may have gone out"
            if await self._store.mark_uncertain(nid, reason):
                log.warning("notification %s to %s: %s; not sending again", nid, command.to.email, reason)
                self._count(command, "uncertain")
        elif state == UNCERTAIN:
            log.info("notification %s is uncertain; not sending again", nid)
        else:
            log.warning("notification %s is in state %r; leaving it", nid, state)

    async def _record_sent(self, envelope: Envelope, command: SendNotification, sent: _Unrecorded) -> None:
        event = NotificationSent(
            notification_id=command.notification_id,
            ticket_id=command.ticket_id,
            message_id=sent.message_id,
            to=command.to,
            subject=sent.subject,
            template=command.template,
            sent_at=sent.sent_at,
        )
        outbox = [(topics.NOTIFY_EVENTS, self._wrap(event, "sent", envelope, command))]
        await self._store.finish(
            command.notification_id,
            SENT,
            {"message_id": sent.message_id, "subject": sent.subject, "sent_at": sent.sent_at, "reason": None},
            outbox,
        )
        self._unrecorded.pop(command.notification_id, None)
        self._count(command, "sent")
        log.info("sent %s to %s for ticket %s", command.template, command.to.email, command.ticket_number)
        await self._relay.flush_items(command.notification_id, outbox)

    async def _deferred(self, envelope: Envelope, command: SendNotification, exc: DeliveryDeferred) -> None:
        attempts = await self._store.defer(command.notification_id, str(exc))
        self._count(command, "deferred")
        if exc.about_this_mail and attempts >= self._max_attempts:
            reason = f"the mail server kept deferring it ({attempts} attempts): {exc}"
            await self._refused(envelope, command, reason, permanent=False)
            return
        delay = min(self._max_retry_delay, 0.5 * 2 ** max(attempts - 1, 0))
        log.warning(
            "mail server deferred notification %s (attempt %d): %s; retrying in %.1fs",
            command.notification_id,
            attempts,
            exc,
            delay,
        )
        await self._sleep(delay)
        raise MailServerUnavailable(str(exc)) from exc

    async def _refused(
        self, envelope: Envelope, command: SendNotification, reason: str, *, permanent: bool, outcome: str = "failed"
    ) -> None:
        await self._store.finish(
            command.notification_id,
            FAILED,
            {"reason": reason, "failed_at": self._clock()},
            [
                (
                    topics.NOTIFY_EVENTS,
                    self._wrap(self._failed(command, reason, permanent), "failed", envelope, command),
                )
            ],
        )
        self._count(command, outcome)
        log.warning("notification %s to %s %s: %s", command.notification_id, command.to.email, outcome, reason)
        await self._relay.flush(await self._store.get(command.notification_id))

    async def _skip(self, envelope: Envelope, command: SendNotification, reason: str) -> None:
        """Record a mail the notify mode says not to send; nothing is reported (nothing failed)."""
        fields = {**self._fields(envelope, command, None, "never"), "reason": reason, "skipped_at": self._clock()}
        if not await self._store.skip(command.notification_id, fields):
            await self._seen_before(await self._store.get(command.notification_id), envelope, command)
            return
        self._count(command, "skipped")
        log.info("notification %s to %s skipped: %s", command.notification_id, command.to.email, reason)

    async def _fail_before_sending(
        self, envelope: Envelope, command: SendNotification, reason: str, *, outcome: str = "failed"
    ) -> None:
        outbox = [
            (
                topics.NOTIFY_EVENTS,
                self._wrap(self._failed(command, reason, True), "failed", envelope, command),
            )
        ]
        fields = {**self._fields(envelope, command, None), "reason": reason, "failed_at": self._clock()}
        if not await self._store.fail_before_sending(command.notification_id, fields, outbox):
            await self._seen_before(await self._store.get(command.notification_id), envelope, command)
            return
        self._count(command, outcome)
        log.error("notification %s cannot be sent: %s", command.notification_id, reason)
        await self._relay.flush(await self._store.get(command.notification_id))

    @staticmethod
    def _failed(command: SendNotification, reason: str, permanent: bool) -> NotificationFailed:
        return NotificationFailed(
            notification_id=command.notification_id,
            ticket_id=command.ticket_id,
            to=command.to,
            reason=reason[:10_000],
            permanent=permanent,
        )

    @staticmethod
    def _wrap(
        event: NotificationSent | NotificationFailed,
        outcome: str,
        cause: Envelope,
        command: SendNotification,
    ) -> Envelope:
        return Envelope.wrap(
            event,
            event_id=derived_id("notification", outcome, command.notification_id),
            causation=cause,
            key=command.ticket_id,
            traceparent=current_traceparent(),
        )

    @staticmethod
    def _fields(
        envelope: Envelope, command: SendNotification, mail: Composed | None, mode: NotifyMode | None = None
    ) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "ticket_id": command.ticket_id,
            "ticket_number": command.ticket_number,
            "template": command.template,
            "language": command.language,
            "to": command.to.model_dump(mode="json"),
            "mailbox": command.mailbox,
            "rule": command.rule,
            "audience": command.audience,
            "on_behalf_of": command.on_behalf_of.model_dump(mode="json") if command.on_behalf_of else None,
            "cause": envelope.event_id,
            "correlation_id": envelope.correlation_id,
        }
        if mode is not None:
            fields["notify_mode"] = mode
        if mail is not None:
            fields["message_id"] = mail.message_id
            fields["subject"] = mail.subject
            fields["cc"] = list(mail.cc)
            if mail.files.attached or mail.files.left_out:
                fields.update(mail.files.record())
        return fields

    def _count(self, command: SendNotification, outcome: str) -> None:
        self._outcomes.labels(command.template, outcome).inc()


def _undeliverable(address: str, suppressed: Mapping[str, Any]) -> str:
    """Return why a mail to a suppressed address is not sent, as the ticket shows it."""
    since = suppressed["since"]
    when = since.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if isinstance(since, datetime) else str(since)
    status = suppressed.get("status") or "no status"
    diagnostic = suppressed.get("diagnostic") or "no diagnostic"
    return f"not sent: {address.lower()} is undeliverable since {when} ({status}: {diagnostic})"


def automatic(command: SendNotification) -> str | None:
    """Return the mail's `Auto-Submitted` value: None for mail an agent speaks in, whatever the command says."""
    return None if command.on_behalf_of is not None else command.auto_submitted


def _context(
    command: SendNotification,
    *,
    mailbox_name: str,
    mailbox_signature: str = "",
    signature: Signature | None = None,
    closing: str = "",
    mode: NotifyMode = "email",
) -> dict[str, Any]:
    """Return what the template's tags can use: the command's context, and what notify adds.

    Notify adds the ticket's id and number, the recipient, the mailbox, the sender, the closing greeting, the
    signature and the notify mode; in link mode it takes the comment's content out first.
    """
    context = without_content(command.context) if mode == "link" else dict(command.context)
    ticket = context.get("ticket")
    context["ticket"] = {
        "ticket_id": command.ticket_id,
        "number": command.ticket_number,
        **(ticket if isinstance(ticket, Mapping) else {}),
    }
    agent = command.on_behalf_of
    context["recipient"] = command.to.model_dump()
    context["mailbox"] = {"address": command.mailbox, "name": mailbox_name, "signature": mailbox_signature}
    context["sender"] = {"name": (agent.name if agent and agent.name else mailbox_name), "email": command.mailbox}
    context["on_behalf_of"] = agent.model_dump() if agent else None
    context["closing"] = closing
    context["signature"] = signature.value() if signature else ""
    context["notify_mode"] = mode
    return context


class InAppStore(Protocol):
    """The part of `notify.store.Store` the in-app notifications use."""

    async def add_inapp(self, docs: list[dict[str, Any]]) -> int:
        """Store notices that are not stored yet; return how many were new."""
        ...


class InAppNotifier:
    """Turns ticket events into in-app notifications: the new handler, the people @mentioned."""

    def __init__(self, store: InAppStore, *, metrics: CollectorRegistry) -> None:
        self._store = store
        self._added = Counter(
            "helpdesk_inapp_notifications_total", "In-app notifications stored, by kind.", ["kind"], registry=metrics
        )

    async def tell_assignee(self, envelope: Envelope, event: TicketAssigned) -> None:
        """Tell a ticket's new handler it is theirs now (not when they took it themselves)."""
        await self._add(envelope, event.ticket, assignment_notices(envelope.event_id, event), None)

    async def tell_mentioned(self, envelope: Envelope, event: CommentAdded) -> None:
        """Tell each person @mentioned in a comment (not its author) about it."""
        if event.mentions:
            notices = mention_notices(envelope.event_id, event)
            await self._add(envelope, event.ticket, notices, event.comment.comment_id)

    async def _add(
        self, envelope: Envelope, ticket: TicketSnapshot, notices: list[InAppNotice], comment_id: str | None
    ) -> None:
        if not notices:
            return
        docs = [
            {
                "_id": notice.notice_id,
                "user_id": notice.user_id,
                "ticket_id": ticket.ticket_id,
                "ticket_number": ticket.number,
                "ticket_title": ticket.title,
                "kind": notice.kind,
                "text": notice.text,
                "comment_id": comment_id,
                "cause": envelope.event_id,
                # The event's time, not ours: a redelivery writes the same document.
                "created_at": envelope.occurred_at,
                "read_at": None,
            }
            for notice in notices
        ]
        added = await self._store.add_inapp(docs)
        if added:
            self._added.labels(notices[0].kind).inc(added)
        log.info("ticket #%s: %d in-app notification(s), %d new", ticket.number, len(docs), added)
