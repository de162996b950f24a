"""One handler per message the tickets service consumes: load, decide (domain), save with outbox, publish."""

import logging
import time
from collections.abc import Sequence
from typing import Any

from contracts.commands import (
    AbsorbTicket,
    AddComment,
    CloseTicket,
    CreateTicket,
    DeleteTicket,
    FollowTicket,
    LinkTicket,
    MergeTicket,
    RecordChild,
    SplitTicket,
    TargetedCommand,
    UpdateTicket,
)
from contracts.envelope import utcnow
from contracts.message_ids import ticket_id_from_message_id
from contracts.models import Bounce
from hdkit.kafka import Rejected, RetryLater
from hdkit.mongo import OutboxRelay, is_duplicate
from hdkit.sanitise import sanitise_html
from hdkit.staff import StaffDirectory
from hdkit.telemetry import current_traceparent
from prometheus_client import CollectorRegistry, Counter

from contracts import (
    AddressDeliverable,
    AddressUndeliverable,
    CommentAdded,
    EmailReceived,
    Envelope,
    Message,
    NotificationFailed,
    NotificationSent,
    TicketCreated,
    TicketDeleted,
    TicketUpdated,
    derived_id,
    topics,
)
from tickets import workflow
from tickets.config import Config
from tickets.domain import (
    Candidates,
    Change,
    Mailbox,
    bounce_recorded,
    customer_reply,
    decide_thread,
    new_ticket_from_email,
    notification_recorded,
    subject_number,
)
from tickets.search import RecordConflict, SearchIndex, ticket_texts
from tickets.store import Store
from tickets.workflow import NotFound, Refused, Viewer, WorkflowRefused

log = logging.getLogger(__name__)
SETTINGS_TTL = 5.0


def _with_bounced_id(email: EmailReceived) -> EmailReceived:
    """Return the email with the Message-ID of the mail a bounce reports on as its first threading hint."""
    bounced = email.bounce.original_message_id if email.bounce is not None else None
    if not bounced:
        return email
    return email.model_copy(update={"in_reply_to": (*email.in_reply_to, bounced)})


class Conflict(RetryLater):
    """The ticket kept changing under us; the message will be retried."""


class NotMarked(WorkflowRefused):
    """The address has no undeliverable mark to lift (409)."""


class Handlers:
    """The tickets service's message handlers."""

    def __init__(
        self,
        store: Store,
        relay: OutboxRelay,
        *,
        message_id_secret: str,
        retries: int = 8,
        staff: StaffDirectory | None = None,
        contacts_relay: OutboxRelay | None = None,
        metrics: CollectorRegistry | None = None,
    ) -> None:
        self._stale_rule_changes = Counter(
            "helpdesk_rule_changes_stale_total",
            "Changes rules asked for that a person's later change to the same field overtook (not applied), by rule.",
            ["rule"],
            registry=metrics if metrics is not None else CollectorRegistry(),
        )
        self._store = store
        self._staff = staff
        self._relay = relay
        # Without one (the import command, which reads no mail) contact events wait for the service's sweeper.
        self._contacts_relay = contacts_relay
        self._secret = message_id_secret
        self._retries = retries
        self._config: tuple[float, Config] | None = None
        self._mailboxes: dict[str, tuple[float, Mailbox]] = {}

    async def _mailbox(self, address: str) -> Mailbox:
        cached = self._mailboxes.get(address)
        if cached is None or time.monotonic() - cached[0] > SETTINGS_TTL:
            found = await self._store.mailbox(address) or Mailbox(address=address)
            cached = self._mailboxes[address] = (time.monotonic(), found)
        return cached[1]

    async def config(self) -> Config:
        """Return the ticket configuration (cached: an admin's change takes effect within SETTINGS_TTL seconds)."""
        now = time.monotonic()
        if self._config is None or now - self._config[0] > SETTINGS_TTL:
            self._config = (now, (await self._store.load_config())[0])
        return self._config[1]

    def forget_config(self) -> None:
        """Drop the cached configuration (after this process saved a new one)."""
        self._config = None

    def _outbox(
        self,
        cause: Envelope,
        ticket_id: str,
        events: list[Message],
        commands: Sequence[Message] = (),
    ) -> list[tuple[str, Envelope]]:
        traceparent = current_traceparent()
        out = [
            (
                topics.TICKET_EVENTS,
                Envelope.wrap(
                    event,
                    event_id=derived_id(cause.event_id, ticket_id, event.TYPE, str(n)),
                    causation=cause,
                    key=ticket_id,
                    traceparent=traceparent,
                ),
            )
            for n, event in enumerate(events)
        ]
        # follow-up commands for other tickets (children to close, a parent's list of children)
        out += [
            (
                topics.TICKET_COMMANDS,
                Envelope.wrap(
                    command,
                    event_id=command.command_id,  # type: ignore[attr-defined]
                    causation=cause,
                    key=f"number-{command.number}",  # type: ignore[attr-defined]
                    traceparent=traceparent,
                ),
            )
            for command in commands
        ]
        return out

    async def _candidates(self, email: EmailReceived) -> Candidates:
        hints = [*email.references, *email.in_reply_to]
        for message_id in reversed(hints):
            ticket_id = ticket_id_from_message_id(message_id, self._secret)
            if ticket_id and (ticket := await self._store.get(ticket_id)) is not None:
                return Candidates(by_our_message_id=ticket, our_message_id=message_id)
        seen, seen_id = await self._store.by_message_ids(hints) if hints else (None, None)
        if seen is not None:
            return Candidates(by_seen_message_id=seen, seen_message_id=seen_id)
        number = subject_number(email.subject)
        by_number = await self._store.by_number(number) if number is not None else None
        return Candidates(by_subject_number=by_number, subject_number=number)

    async def email_received(self, envelope: Envelope, email: EmailReceived) -> None:
        """Create a ticket from an email, or add it to the ticket it answers."""
        config = await self.config()
        await self._store.contact_seen(email.sender)
        if email.bounce is not None and email.bounce.permanent:
            await self._mark_undeliverable(envelope, email.bounce)
        for _ in range(self._retries):
            threading = decide_thread(email, await self._candidates(_with_bounced_id(email)))
            ticket = await self._survivor(threading.ticket)
            if ticket is None:
                await self._create_from_email(envelope, email, threading, config)
                return
            if envelope.event_id in ticket.get("applied", []):
                await self._relay.flush_id(ticket["_id"])
                return
            now = utcnow()
            member = await self._staff.find(email.sender.email) if self._staff and email.bounce is None else None
            if email.bounce is not None:
                change = bounce_recorded(email, now=now, threading=threading)
            elif member is not None:
                mentions = await self._mentions(email.text_new or email.text)
                change = workflow.staff_reply(
                    ticket, email, member, config, now=now, threading=threading, mentions=mentions
                )
            else:
                change = customer_reply(ticket, email, now=now, threading=threading)
            outbox = self._outbox(envelope, ticket["_id"], change.events)
            await self._store.remember_message_ids(ticket["_id"], [i for i in (email.message_id,) if i])
            applied = await self._store.apply(
                ticket["_id"], change, event_id=envelope.event_id, outbox=outbox, before=ticket
            )
            if applied:
                await self._relay.flush_items(ticket["_id"], outbox)
                return
        raise Conflict(f"ticket for {envelope.event_id} changed {self._retries} times while we applied a reply")

    async def _mark_undeliverable(self, cause: Envelope, bounce: Bounce) -> None:
        """Mark each address a permanent bounce reports as undeliverable and tell notify, once per report."""
        now = utcnow()
        for address in dict.fromkeys(a.strip().lower() for a in bounce.recipients):
            if not 3 <= len(address) <= 320:
                log.warning("bounce report %s names an unusable address %r; not marked", cause.event_id, address)
                continue
            event = AddressUndeliverable(
                address=address,
                since=now,
                status=bounce.status,
                diagnostic=(bounce.diagnostic or "")[:500],
                cause=cause.event_id,
            )
            outbox = self._contact_outbox(event, address, derived_id(cause.event_id, address, event.TYPE), cause)
            problem = {"since": now, "status": event.status, "diagnostic": event.diagnostic}
            if await self._store.mark_undeliverable(address, problem, event_id=cause.event_id, outbox=outbox):
                log.info("%s marked undeliverable (%s)", address, bounce.status)
                if self._contacts_relay is not None:
                    await self._contacts_relay.flush_items(address, outbox)
            elif self._contacts_relay is not None:  # this report again: its event may not have gone out yet
                await self._contacts_relay.flush_id(address)

    async def set_deliverable(self, address: str, v: Viewer) -> dict[str, Any]:
        """Lift an address's undeliverable mark (an agent fixed it) and tell notify; return the contact."""
        address = address.strip().lower()
        contact = await self._store.contact(address)
        if contact is None:
            raise NotFound(f"no contact {address}")
        if "undeliverable" not in contact:
            raise NotMarked(f"{address} is not marked undeliverable")
        marked_by = contact.get("undeliverable_event")
        now = utcnow()
        event = AddressDeliverable(address=address, actor=v.actor(), at=now)
        outbox = self._contact_outbox(event, address, derived_id("deliverable", address, str(marked_by)), None)
        lifted = {"at": now, "by": v.actor().model_dump(mode="json")}
        if not await self._store.set_deliverable(address, event_id=marked_by, lifted=lifted, outbox=outbox):
            raise NotMarked(f"{address} changed meanwhile; reload and try again")
        if self._contacts_relay is not None:
            await self._contacts_relay.flush_items(address, outbox)
        return await self._store.contact(address) or contact

    @staticmethod
    def _contact_outbox(
        event: Message, address: str, event_id: str, cause: Envelope | None
    ) -> list[tuple[str, Envelope]]:
        envelope = Envelope.wrap(
            event, event_id=event_id, causation=cause, key=address, traceparent=current_traceparent()
        )
        return [(topics.TICKET_EVENTS, envelope)]

    async def _create_from_email(
        self, envelope: Envelope, email: EmailReceived, threading: Any, config: Config
    ) -> None:
        ticket_id = derived_id("ticket", envelope.event_id)
        mailbox = await self._mailbox(email.mailbox)
        await self._store.remember_message_ids(ticket_id, [i for i in (email.message_id,) if i])
        number = await self._store.next_number()
        doc, events = new_ticket_from_email(
            email,
            ticket_id=ticket_id,
            number=number,
            mailbox=mailbox,
            config=config,
            now=utcnow(),
            threading=threading,
        )
        doc["applied"] = [envelope.event_id]
        outbox = self._outbox(envelope, ticket_id, events)
        try:
            await self._store.insert_ticket(doc, outbox)
        except Exception as exc:
            # Our own id already there: a concurrent delivery created it. Anything else (a number handed
            # out twice) must not drop the email: raise, and the consumer retries it.
            if not is_duplicate(exc) or await self._store.get(ticket_id) is None:
                raise
            await self._relay.flush_id(ticket_id)
            return
        log.info("ticket #%s created from email %s", number, email.message_id)
        await self._relay.flush_items(ticket_id, outbox)

    async def notification_sent(self, envelope: Envelope, sent: NotificationSent) -> None:
        """Remember our Message-ID on the ticket (replies to it thread there) and log the mail."""
        change = notification_recorded(
            message_id=sent.message_id,
            to=sent.to.email,
            subject=sent.subject,
            template=sent.template,
            now=utcnow(),
            outcome="sent",
        )
        await self._record(envelope, sent.ticket_id, change)

    async def notification_failed(self, envelope: Envelope, failed: NotificationFailed) -> None:
        """Show a failed mail on the ticket."""
        change = notification_recorded(
            message_id="",
            to=failed.to.email,
            subject="",
            template="notification",
            now=utcnow(),
            outcome="failed",
            reason=failed.reason,
        )
        await self._record(envelope, failed.ticket_id, change)

    async def _record(self, envelope: Envelope, ticket_id: str, change: Change) -> None:
        await self._store.remember_message_ids(ticket_id, change.add_to_set.get("message_ids", []))
        if not await self._store.apply(ticket_id, change, event_id=envelope.event_id, outbox=[]):
            if await self._store.get(ticket_id) is None:
                log.warning("%s for unknown ticket %s ignored", envelope.type, ticket_id)

    # ----------------------------------------------------------------------- commands (HTTP and Kafka)

    async def command_received(self, envelope: Envelope, command: Message) -> None:
        """Carry out a ticket command from Kafka; one that is refused is dead-lettered with the reason."""
        actor = getattr(command, "actor", None)
        if actor is None:
            raise Rejected(f"{envelope.type} is not a ticket command")
        v = workflow.viewer_of(actor)
        try:
            await self.execute(command, v, cause=envelope, reload=False)
        except workflow.VersionConflict as exc:
            automation = getattr(command, "automation", None)
            if automation is None:
                raise Rejected(f"{type(exc).__name__}: {exc.message}") from exc
            # A rule acted on what it saw; a person changed the same field since, and a person's change wins.
            # That is an outcome, not a fault: logged and counted, not dead-lettered.
            self._stale_rule_changes.labels(automation.rule_id).inc()
            log.info(
                "rule %r left ticket #%s alone: %s",
                automation.rule_name or automation.rule_id,
                command.number,
                exc.message,
            )
        except Refused as exc:
            raise Rejected(f"{type(exc).__name__}: {exc.message}") from exc

    async def execute(
        self, command: Message, v: Viewer, *, cause: Envelope | None = None, reload: bool = True
    ) -> dict[str, Any]:
        """Carry out one ticket command for a viewer; return the ticket as it is afterwards (`reload`).

        The same command id changes a ticket once: a repeat returns the ticket without changing it.
        """
        envelope = cause or Envelope.wrap(command, event_id=getattr(command, "command_id", None))
        if isinstance(command, CreateTicket):
            return await self._create(envelope, command, v)
        if isinstance(command, SplitTicket):
            return await self._split(envelope, command, v)
        if not isinstance(command, TargetedCommand):
            raise workflow.Invalid(f"{envelope.type} is not a ticket command")
        config = await self.config()
        for _ in range(self._retries):
            ticket = await self._store.by_number(command.number)
            if not isinstance(command, MergeTicket | AbsorbTicket | RecordChild | DeleteTicket):
                ticket = await self._survivor(ticket)
            if ticket is None or not workflow.can_see(
                v, ticket, organisation_visible=config.settings.customers_see_organisation
            ):
                raise NotFound(f"ticket #{command.number} not found")
            if command.command_id in ticket.get("applied", []):
                await self._relay.flush_id(ticket["_id"])
                return ticket
            now = utcnow()
            change = await self._decide(ticket, command, config, v, now)
            outbox = self._outbox(envelope, ticket["_id"], change.events, change.commands)
            applied = await self._store.apply(
                ticket["_id"], change, event_id=command.command_id, outbox=outbox, before=ticket
            )
            if applied:
                await self._relay.flush_items(ticket["_id"], outbox)
                if isinstance(command, DeleteTicket):
                    await self._store.purge_deleted(ticket["_id"])
                    return {**ticket, "phase": "deleted"}
                return (await self._store.get(ticket["_id"]) if reload else None) or ticket
        raise Conflict(f"ticket #{command.number} changed {self._retries} times while {envelope.type} was applied")

    async def _decide(self, ticket: dict[str, Any], command: Message, config: Config, v: Viewer, now: Any) -> Change:
        if isinstance(command, LinkTicket):
            parent = await self._store.by_number(command.parent) if command.parent is not None else None
            if parent is not None and not workflow.can_see(v, parent):
                parent = None
            return workflow.link(ticket, command, parent, v, now=now)
        if isinstance(command, MergeTicket):
            target = await self._survivor(await self._store.by_number(command.into), follow=False)
            if target is not None and not workflow.can_see(v, target):
                target = None
            return workflow.merge(ticket, command, target, config, v, now=now)
        if isinstance(command, AbsorbTicket):
            source = await self._store.by_number(command.source)
            change = workflow.absorb(ticket, command, source, v, now=now)
            await self._store.point_message_ids(ticket["_id"], change.add_to_set.get("message_ids", []))
            return change
        if isinstance(command, DeleteTicket):
            return workflow.delete(ticket, command, v, now=now, secret=self._secret)
        if isinstance(command, RecordChild):
            return workflow.record_child(ticket, command, v, now=now)
        if isinstance(command, UpdateTicket):
            return workflow.update(ticket, command, config, v, now=now)
        if isinstance(command, AddComment):
            html = sanitise_html(command.html) if command.html else None
            mentions = await self._mentions(command.text) if command.kind in workflow.MENTIONING_KINDS else ()
            return workflow.add_comment(ticket, command, config, v, now=now, html=html, mentions=mentions)
        if isinstance(command, FollowTicket):
            return workflow.follow(ticket, command, v, now=now)
        if isinstance(command, CloseTicket):
            return workflow.close(ticket, command, config, v, now=now)
        raise workflow.Invalid(f"{type(command).__name__} is not a ticket command")

    async def _mentions(self, text: str) -> tuple[str, ...]:
        """Return the user ids of the staff a comment's `@handles` name, in order (unknown handles name nobody)."""
        if self._staff is None:
            return ()
        found = [await self._staff.by_handle(handle) for handle in workflow.mention_handles(text)]
        return tuple(dict.fromkeys(member.id for member in found if member is not None))

    async def _create(self, envelope: Envelope, command: CreateTicket, v: Viewer) -> dict[str, Any]:
        ticket_id = derived_id("ticket-command", command.command_id)
        existing = await self._store.get(ticket_id)
        if existing is not None:
            await self._relay.flush_id(ticket_id)
            return existing
        config = await self.config()
        templates = await self._store.templates()
        # validate before a number is handed out, so refused commands leave no gap
        workflow.create(command, config, v, ticket_id=ticket_id, number=1, now=utcnow(), templates=templates)
        number = await self._store.next_number()
        doc, events = workflow.create(
            command, config, v, ticket_id=ticket_id, number=number, now=utcnow(), templates=templates
        )
        outbox = self._outbox(envelope, ticket_id, events)
        try:
            await self._store.insert_ticket(doc, outbox)
        except Exception as exc:
            if not is_duplicate(exc) or (found := await self._store.get(ticket_id)) is None:
                raise
            await self._relay.flush_id(ticket_id)
            return found
        await self._relay.flush_items(ticket_id, outbox)
        return doc

    async def delete_confirmation(self, number: int, v: Viewer) -> tuple[str, Any]:
        """Return a token that confirms deleting a ticket as it is now, and when it expires."""
        ticket = await self._store.by_number(number)
        if ticket is None or not workflow.can_see(v, ticket):
            raise NotFound(f"ticket #{number} not found")
        return workflow.delete_confirmation(ticket, v, now=utcnow(), secret=self._secret)

    async def _survivor(self, ticket: dict[str, Any] | None, *, follow: bool = True) -> dict[str, Any] | None:
        """Return the ticket a merged ticket now lives in (mail and commands for it go there)."""
        for _ in range(5 if follow else 0):
            if ticket is None or not ticket.get("merged_into"):
                break
            ticket = await self._store.by_number(ticket["merged_into"])
        return ticket

    async def _split(self, envelope: Envelope, command: SplitTicket, v: Viewer) -> dict[str, Any]:
        """Create the new ticket (idempotent: its id comes from the command id), then note it on the old one."""
        config = await self.config()
        source = await self._survivor(await self._store.by_number(command.number))
        if source is None or not workflow.can_see(v, source):
            raise NotFound(f"ticket #{command.number} not found")
        ticket_id = derived_id("ticket-split", command.command_id)
        doc = await self._store.get(ticket_id)
        if doc is None:
            now = utcnow()
            workflow.split(
                source, command, config, v, ticket_id=ticket_id, number=1, now=now
            )  # refuse before numbering
            number = await self._store.next_number()
            doc, events, _ = workflow.split(source, command, config, v, ticket_id=ticket_id, number=number, now=now)
            outbox = self._outbox(envelope, ticket_id, events)
            try:
                await self._store.insert_ticket(doc, outbox)
                await self._relay.flush_items(ticket_id, outbox)
            except Exception as exc:
                if not is_duplicate(exc) or (doc := await self._store.get(ticket_id)) is None:
                    raise
        for _ in range(self._retries):
            if command.command_id in source.get("applied", []):
                return doc
            _, _, change = workflow.split(
                source, command, config, v, ticket_id=ticket_id, number=doc["number"], now=utcnow()
            )
            if await self._store.apply(source["_id"], change, event_id=command.command_id, outbox=[], before=source):
                return doc
            source = await self._store.get(source["_id"]) or source
        raise Conflict(f"ticket #{command.number} changed {self._retries} times while it was split")


class Indexer:
    """Keeps the search index in step with the tickets service's own events (retried until it succeeds)."""

    def __init__(self, store: Store, index: SearchIndex) -> None:
        self._store = store
        self._index = index

    async def _reindex(self, number: int) -> None:
        doc = await self._store.by_number(number)
        texts = [] if doc is None or doc.get("phase") == "deleted" else ticket_texts(doc)
        try:
            await self._index.reindex(number, texts)
        except RecordConflict as exc:
            raise Conflict(str(exc)) from exc

    async def ticket_created(self, envelope: Envelope, event: TicketCreated) -> None:
        """Index a new ticket (as it is now, so a replay after later changes indexes those too)."""
        await self._reindex(event.ticket.number)

    async def comment_added(self, envelope: Envelope, event: CommentAdded) -> None:
        """Index a comment's words."""
        try:
            await self._index.index_texts(event.ticket.number, [event.comment.text])
        except RecordConflict as exc:
            raise Conflict(str(exc)) from exc

    async def ticket_updated(self, envelope: Envelope, event: TicketUpdated) -> None:
        """Re-index when a searchable field changed."""
        if any(c.field in ("title", "description", "organisation") for c in event.changes):
            await self._reindex(event.ticket.number)

    async def ticket_deleted(self, envelope: Envelope, event: TicketDeleted) -> None:
        """Forget a deleted ticket's words."""
        await self._reindex(event.number)
