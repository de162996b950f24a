"""What triggers does with each event: load rules, evaluate, record the firing with its outbox, publish."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from contracts.envelope import utcnow
from contracts.models import Address
from hdkit.mongo import outbox_fields
from hdkit.telemetry import current_traceparent
from prometheus_client import CollectorRegistry, Counter

from contracts import CommentAdded, Envelope, SendNotification, TicketCreated, derived_id, topics
from triggers.domain import (
    AttachmentLimits,
    Firing,
    Notice,
    Rule,
    SendTemplate,
    evaluate,
    left_out_notice,
    recipient,
)

log = logging.getLogger(__name__)


class RuleSource(Protocol):
    """The part of the store the handlers read rules from."""

    async def active_rules(self) -> list[Rule]:
        """Return the active rules."""
        ...


class FiringLog(RuleSource, Protocol):
    """The part of the store the handlers write to."""

    async def add_firing(self, doc: dict[str, Any]) -> bool:
        """Insert a firing record with its outbox; False when it exists."""
        ...

    async def get_firing(self, event_id: str) -> dict[str, Any] | None:
        """Return a firing record."""
        ...


class Outbox(Protocol):
    """Publishes a document's outbox (`hdkit.mongo.OutboxRelay`)."""

    async def flush(self, doc: dict[str, Any] | None) -> int:
        """Publish and clear the document's pending entries."""
        ...


class RuleCache:
    """The active rules, reloaded from the store when older than `ttl` seconds (or when told to)."""

    def __init__(self, source: RuleSource, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._source = source
        self._ttl = ttl
        self._clock = clock
        self._rules: list[Rule] | None = None
        self._loaded_at = 0.0

    async def get(self) -> list[Rule]:
        """Return the active rules."""
        now = self._clock()
        if self._rules is None or now - self._loaded_at >= self._ttl:
            self._rules = await self._source.active_rules()
            self._loaded_at = now
        return self._rules

    def invalidate(self) -> None:
        """Forget the cached rules (after an edit in this process)."""
        self._rules = None


class Handlers:
    """One method per event triggers handles."""

    def __init__(
        self,
        store: FiringLog,
        relay: Outbox,
        *,
        public_url: str,
        default_mailbox: str,
        metrics: CollectorRegistry,
        rules: RuleCache | None = None,
        attachment_limits: AttachmentLimits | None = None,
    ) -> None:
        self._store = store
        self._limits = attachment_limits or AttachmentLimits()
        self._relay = relay
        self._public_url = public_url.rstrip("/")
        self._default_mailbox = default_mailbox
        self.rules = rules or RuleCache(store, ttl=5.0)
        self._fired = Counter(
            "helpdesk_rule_firings_total",
            "Rules fired, by rule and event.",
            ["rule", "event"],
            registry=metrics,
        )
        self._suppressed = Counter(
            "helpdesk_rule_actions_suppressed_total",
            "Actions a guard stopped (automatic or no-reply recipient), by rule.",
            ["rule"],
            registry=metrics,
        )

    async def ticket_created(self, envelope: Envelope, event: TicketCreated) -> None:
        """Run the `ticket.created` rules on a new ticket and send the commands they ask for."""
        await self._handle(envelope, "ticket.created", event.model_dump(mode="json"), event.ticket.ticket_id)

    async def comment_added(self, envelope: Envelope, event: CommentAdded) -> None:
        """Run the `comment.added` rules (and the built-in notices) on a new comment; send what they ask for."""
        await self._handle(envelope, "comment.added", event.model_dump(mode="json"), event.ticket.ticket_id)

    async def _handle(self, envelope: Envelope, event_name: str, event: dict[str, Any], ticket_id: str) -> None:
        previous = await self._store.get_firing(envelope.event_id)
        if previous is not None:
            log.info("event %s was handled before; flushing what is left of its outbox", envelope.event_id)
            await self._relay.flush(previous)
            return
        firings = evaluate(await self.rules.get(), event_name, event)
        outbox: list[tuple[str, Envelope]] = []
        records: list[dict[str, Any]] = []
        for firing in firings:
            record = firing.as_record()
            record["notification_ids"] = []
            for action in firing.actions:
                command = self._command(envelope, event, firing, action)
                outbox.append(_to_notify(command, envelope, ticket_id))
                record["notification_ids"].append(command.notification_id)
            records.append(record)
            self._log_firing(firing, event_name, ticket_id)
        notice = left_out_notice(event_name, event, self._limits)
        if notice is not None:
            record = notice.as_record()
            record["notification_ids"] = []
            if notice.suppressed is None:
                command = self._notice_command(event, notice)
                outbox.append(_to_notify(command, envelope, ticket_id))
                record["notification_ids"].append(command.notification_id)
            records.append(record)
            self._log_notice(notice, event_name, ticket_id)
        doc = {
            "_id": envelope.event_id,
            "event": event_name,
            "event_type": envelope.type,
            "ticket_id": ticket_id,
            "ticket_number": event.get("ticket", {}).get("number"),
            "correlation_id": envelope.correlation_id,
            "handled_at": utcnow(),
            "firings": records,
            **outbox_fields(outbox),
        }
        if not await self._store.add_firing(doc):
            log.info("event %s was handled meanwhile; flushing its outbox", envelope.event_id)
            await self._relay.flush(await self._store.get_firing(envelope.event_id))
            return
        await self._relay.flush(doc)

    def _command(
        self, envelope: Envelope, event: dict[str, Any], firing: Firing, action: SendTemplate
    ) -> SendNotification:
        ticket = event["ticket"]
        source = ticket.get("source_message_id")
        return SendNotification(
            notification_id=derived_id("notify", firing.rule_id, envelope.event_id, action.target),
            ticket_id=ticket["ticket_id"],
            ticket_number=ticket["number"],
            template=action.template,
            language=action.language,
            to=Address.model_validate(recipient(action, event)),
            mailbox=ticket.get("mailbox") or self._default_mailbox,
            in_reply_to=source,
            references=(source,) if source else (),
            auto_submitted=action.auto_submitted,
            context={"ticket": ticket, "link": f"{self._public_url}/t/{ticket['link_token']}"},
            rule=firing.rule_name,
        )

    def _notice_command(self, event: dict[str, Any], notice: Notice) -> SendNotification:
        ticket = event["ticket"]
        # From the comment, not the event: whichever event carries the comment, its sender hears once.
        chain = tuple(dict.fromkeys(i for i in (ticket.get("source_message_id"), notice.in_reply_to) if i))
        return SendNotification(
            notification_id=derived_id("notify", notice.notice_id, ticket["ticket_id"], notice.comment_id),
            ticket_id=ticket["ticket_id"],
            ticket_number=ticket["number"],
            template=notice.template,
            to=Address.model_validate(notice.to),
            mailbox=ticket.get("mailbox") or self._default_mailbox,
            in_reply_to=notice.in_reply_to,
            references=chain,
            auto_submitted="auto-replied",
            context={
                "ticket": ticket,
                "link": f"{self._public_url}/t/{ticket['link_token']}",
                **notice.context,
            },
            rule=notice.name,
        )

    def _log_notice(self, notice: Notice, event_name: str, ticket_id: str) -> None:
        self._fired.labels(notice.notice_id, event_name).inc()
        if notice.suppressed is not None:
            self._suppressed.labels(notice.notice_id).inc()
            log.info("%s on %s of ticket %s not sent: %s", notice.name, event_name, ticket_id, notice.suppressed)
        else:
            files = len(notice.context.get("files", ()))
            log.info("%s on %s of ticket %s: %d file(s) left out", notice.name, event_name, ticket_id, files)

    def _log_firing(self, firing: Firing, event_name: str, ticket_id: str) -> None:
        self._fired.labels(firing.rule_id, event_name).inc()
        log.info(
            "rule %r fired on %s of ticket %s (%s): %d action(s)",
            firing.rule_name,
            event_name,
            ticket_id,
            "; ".join(c.describe() for c in firing.conditions_met) or "no conditions",
            len(firing.actions),
        )
        for stopped in firing.suppressed:
            self._suppressed.labels(firing.rule_id).inc()
            log.info("rule %r: %s not sent: %s", firing.rule_name, stopped.action.template, stopped.reason)


def _to_notify(command: SendNotification, cause: Envelope, ticket_id: str) -> tuple[str, Envelope]:
    """Return the outbox entry that sends a notification command, once (its id is the notification id)."""
    envelope = Envelope.wrap(
        command, event_id=command.notification_id, causation=cause, key=ticket_id, traceparent=current_traceparent()
    )
    return topics.NOTIFY_COMMANDS, envelope
