"""What triggers does with each event and each timer: evaluate the rules, record the firing with its outbox, publish.

Every event is handled once: its record in `firings` (`_id` = event id) holds the outbox of the commands
the rules asked for, so a redelivery only publishes what is left. Each command's id is derived from the
event id, the rule and the action, so tickets and notify apply it once even if it is published twice.
Time rules fire from timers; their record's id is derived from the rule, the ticket and the moment the
rule's conditions started to hold, which makes each of them fire once per occasion.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

import httpx
from contracts.envelope import Message, utcnow
from contracts.events import CustomEventPublished, SlaWarned
from contracts.models import Actor, Address, Automation, TicketSnapshot
from hdkit.mongo import outbox_fields
from hdkit.telemetry import current_traceparent
from prometheus_client import CollectorRegistry, Counter

from contracts import (
    AddComment,
    CommentAdded,
    Envelope,
    SendNotification,
    TicketCreated,
    TicketUpdated,
    UpdateTicket,
    derived_id,
    topics,
)
from triggers.calendar import ALWAYS_OPEN, BusinessCalendar
from triggers.domain import (
    CC,
    CUSTOMER,
    GROUP,
    HANDLER,
    ActionModel,
    AddNote,
    Assign,
    AttachmentLimits,
    CallWebhook,
    Context,
    Evaluation,
    Firing,
    Notice,
    PublishEvent,
    Rule,
    SendTemplate,
    SetFields,
    acting_person,
    as_datetime,
    evaluate_event,
    fill_tags,
    left_out_notice,
    looks_automatic,
    resolve_fields,
    rule_applies,
    time_anchor,
    time_rule_due,
)
from triggers.scheduler import Timer
from triggers.sla import SlaPolicy, SlaState, advance, pick_policy

log = logging.getLogger(__name__)

RULE_TIMER = "rule"
SLA_TIMER = "sla"
SLA_ACTOR = Actor(role="system", id="sla", name="SLA")
WEBHOOK_TIMER = "webhook"
WEBHOOK_ATTEMPTS = 10
"""Deliveries of one webhook call before it is given up (back-off from 5 s to 10 min: about an hour)."""

_KEEP_TEXT = 2000  # characters of a comment kept with the event in the firing log (for dry runs)


class StaffLookup(Protocol):
    """Who the staff are (`hdkit.staff.StaffDirectory`)."""

    async def by_id(self, user_id: str) -> Any:
        """Return the member of staff with this id (`.id`, `.email`, `.name`), or None."""
        ...

    async def members(self, group: str) -> list[Any]:
        """Return the staff in a group, sorted by id."""
        ...


class NoStaff:
    """A staff directory that knows nobody (tests and processes without a portal)."""

    async def by_id(self, user_id: str) -> Any:
        """Return None: nobody is known."""
        return None

    async def members(self, group: str) -> list[Any]:
        """Return nobody."""
        return []


class RuleSource(Protocol):
    """The part of the store the handlers read rules from."""

    async def active_rules(self) -> list[Rule]:
        """Return the active rules."""
        ...


class TriggerStore(RuleSource, Protocol):
    """The part of the store the handlers use."""

    async def add_firing(self, doc: dict[str, Any]) -> bool:
        """Insert a firing record with its outbox; False when it exists."""
        ...

    async def get_firing(self, event_id: str) -> dict[str, Any] | None:
        """Return a firing record."""
        ...

    async def mark_webhooks_scheduled(self, event_id: str) -> None:
        """Note that a firing record's webhook calls have their timers."""
        ...

    async def save_ticket(self, ticket: dict[str, Any], at: datetime) -> dict[str, Any]:
        """Keep the latest snapshot of a ticket; return it with `status_since` and the rule timers it has."""
        ...

    async def get_ticket(self, ticket_id: str) -> dict[str, Any] | None:
        """Return the latest snapshot of a ticket (with `status_since`), or None."""
        ...

    async def set_rule_timers(self, ticket_id: str, timers: dict[str, str]) -> None:
        """Remember which time rules have a timer for a ticket, and when."""
        ...

    async def next_in_rotation(self, group: str) -> int:
        """Return the next number of a group's round-robin counter (1, 2, 3 ...)."""
        ...

    async def set_sla(self, ticket_id: str, state: dict[str, Any], timers: list[str], due: dict[str, Any]) -> None:
        """Remember a ticket's SLA clocks, the ids of its SLA timers and its due times."""
        ...


class Outbox(Protocol):
    """Publishes a document's outbox (`hdkit.mongo.OutboxRelay`)."""

    async def flush(self, doc: dict[str, Any] | None) -> int:
        """Publish and clear the document's pending entries."""
        ...


class Timers(Protocol):
    """The durable scheduler (`triggers.scheduler.Scheduler`)."""

    async def schedule(self, timer_id: str, due_at: datetime, kind: str, payload: dict[str, Any]) -> None:
        """Create or re-arm a timer."""
        ...

    async def cancel(self, timer_id: str) -> bool:
        """Remove a timer."""
        ...


class CalendarSource(Protocol):
    """The business-hours calendars by id (`CalendarCache`)."""

    async def get(self) -> Mapping[str, Any]:
        """Return the calendars by id."""
        ...

    async def policies(self) -> list[SlaPolicy]:
        """Return the SLA policies."""
        ...


class _NoCalendars:
    async def get(self) -> Mapping[str, Any]:
        return {ALWAYS_OPEN.id: ALWAYS_OPEN}

    async def policies(self) -> list[SlaPolicy]:
        return []


class CalendarStore(Protocol):
    """The part of the store calendars are read from."""

    async def all_calendars(self) -> list[BusinessCalendar]:
        """Return every stored calendar."""
        ...

    async def all_policies(self) -> list[SlaPolicy]:
        """Return every SLA policy."""
        ...


class CalendarCache:
    """The business-hours calendars (with the built-in `24x7`), reloaded when older than `ttl` or told to."""

    def __init__(self, store: CalendarStore, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._ttl = ttl
        self._clock = clock
        self._calendars: dict[str, BusinessCalendar] | None = None
        self._policies: list[SlaPolicy] = []
        self._loaded_at = 0.0

    async def load(self) -> None:
        """Read the calendars and SLA policies from the store."""
        found = {c.id: c for c in await self._store.all_calendars()}
        found.setdefault(ALWAYS_OPEN.id, ALWAYS_OPEN)
        self._policies = await self._store.all_policies()
        self._calendars = found
        self._loaded_at = self._clock()

    async def policies(self) -> list[SlaPolicy]:
        """Return the SLA policies."""
        await self.get()
        return self._policies

    async def get(self) -> Mapping[str, BusinessCalendar]:
        """Return the calendars by id."""
        if self._calendars is None or self._clock() - self._loaded_at >= self._ttl:
            await self.load()
        return self._calendars or {ALWAYS_OPEN.id: ALWAYS_OPEN}

    def invalidate(self) -> None:
        """Forget the cached calendars (after an edit in this process)."""
        self._calendars = None


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


def rule_actor(rule_id: str, rule_name: str) -> Actor:
    """Return the actor a rule's commands carry: the system, named after the rule."""
    return Actor(role="system", id=f"rule:{rule_id}", name=rule_name[:320])


def sign_webhook(secret: str, timestamp: str, body: bytes) -> str:
    """Return the `X-Helpdesk-Signature` of a webhook body: `sha256=` HMAC of `<timestamp>.<body>`."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def _trimmed(event: Mapping[str, Any]) -> dict[str, Any]:
    """Return the event as kept in the firing log: long texts cut, so dry runs can replay it."""
    kept = dict(event)
    comment = kept.get("comment")
    if isinstance(comment, Mapping):
        kept["comment"] = {
            k: (v[:_KEEP_TEXT] if isinstance(v, str) and k in ("text", "text_new", "html") else v)
            for k, v in comment.items()
        }
    if isinstance(kept.get("description"), str):
        kept["description"] = kept["description"][:_KEEP_TEXT]
    return kept


class Handlers:
    """One method per event and timer kind triggers handles."""

    def __init__(
        self,
        store: TriggerStore,
        relay: Outbox,
        *,
        public_url: str,
        default_mailbox: str,
        metrics: CollectorRegistry,
        rules: RuleCache | None = None,
        attachment_limits: AttachmentLimits | None = None,
        staff: StaffLookup | None = None,
        timers: Timers | None = None,
        calendars: CalendarSource | None = None,
        http: httpx.AsyncClient | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._store = store
        self._limits = attachment_limits or AttachmentLimits()
        self._relay = relay
        self._public_url = public_url.rstrip("/")
        self._default_mailbox = default_mailbox
        self._staff: StaffLookup = staff or NoStaff()
        self._timers = timers
        self._calendars: CalendarSource = calendars or _NoCalendars()
        self._http = http
        self._clock = clock
        self.rules = rules or RuleCache(store, ttl=5.0)
        self._fired = Counter(
            "helpdesk_rule_firings_total", "Rules fired, by rule and event.", ["rule", "event"], registry=metrics
        )
        self._suppressed = Counter(
            "helpdesk_rule_actions_suppressed_total",
            "Actions a guard stopped (automatic or no-reply recipient, own comment ...), by rule.",
            ["rule"],
            registry=metrics,
        )
        self._cut = Counter(
            "helpdesk_rule_cut_offs_total",
            "Rules loop protection stopped (chain too deep, own change), by rule.",
            ["rule"],
            registry=metrics,
        )
        self._webhooks = Counter(
            "helpdesk_webhook_calls_total", "Webhook calls, by outcome.", ["outcome"], registry=metrics
        )

    async def context(self) -> Context:
        """Return the evaluation context now."""
        return Context(now=self._clock(), calendars=await self._calendars.get())

    # ------------------------------------------------------------------------------------------- events

    async def ticket_created(self, envelope: Envelope, event: TicketCreated) -> None:
        """Run the `ticket.created` rules on a new ticket and send the commands they ask for."""
        await self._handle(envelope, "ticket.created", event.model_dump(mode="json"), event.ticket.ticket_id)

    async def comment_added(self, envelope: Envelope, event: CommentAdded) -> None:
        """Run the `comment.added` rules (and the built-in notices) on a new comment; send what they ask for."""
        await self._handle(envelope, "comment.added", event.model_dump(mode="json"), event.ticket.ticket_id)

    async def ticket_updated(self, envelope: Envelope, event: TicketUpdated) -> None:
        """Run the `ticket.updated` rules that follow a field the update changed."""
        await self._handle(envelope, "ticket.updated", event.model_dump(mode="json"), event.ticket.ticket_id)

    async def sla_warned(self, envelope: Envelope, event: SlaWarned) -> None:
        """Run the `sla.near_breach` / `sla.breached` rules."""
        await self._handle(
            envelope,
            f"sla.{event.stage}",
            event.model_dump(mode="json"),
            event.ticket.ticket_id,
            keep_projection=True,
        )

    async def _handle(
        self,
        envelope: Envelope,
        event_name: str,
        event: dict[str, Any],
        ticket_id: str,
        *,
        keep_projection: bool = False,
    ) -> None:
        previous = await self._store.get_firing(envelope.event_id)
        if previous is not None:
            log.info("event %s was handled before; finishing what is left", envelope.event_id)
            await self._finish(previous)
            if not keep_projection:
                await self._reschedule(envelope, ticket_id)
            return
        if keep_projection:
            event["ticket"] = await self._store.get_ticket(ticket_id) or event["ticket"]
        else:
            event["ticket"] = await self._store.save_ticket(event["ticket"], envelope.occurred_at)
        ctx = await self.context()
        evaluation = evaluate_event(await self.rules.get(), event_name, event, ctx)
        doc = await self._record(envelope.event_id, envelope, event_name, event, ticket_id, evaluation)
        sla_after: tuple[dict[str, Any], list[Any]] | None = None
        if not keep_projection:
            sla_after = await self._sla(doc, envelope, event["ticket"])
        notice = left_out_notice(event_name, event, self._limits)
        if notice is not None:
            self._add_notice(doc, envelope, event, notice, ticket_id)
        doc.update(outbox_fields(doc.pop("_outbox")))
        if not await self._store.add_firing(doc):
            log.info("event %s was handled meanwhile; finishing what is left", envelope.event_id)
            await self._finish(await self._store.get_firing(envelope.event_id))
            return
        await self._finish(doc)
        if not keep_projection:
            await self._schedule_time_rules(event, ctx)
        if sla_after is not None:
            await self._schedule_sla(event["ticket"], *sla_after)

    async def _reschedule(self, cause: Envelope, ticket_id: str) -> None:
        """Give a ticket its time-rule and SLA timers again from its snapshot (after a crash left them undone)."""
        ticket = await self._store.get_ticket(ticket_id)
        if ticket is None:
            return
        await self._schedule_time_rules({"ticket": ticket}, await self.context())
        scratch: dict[str, Any] = {"_outbox": []}  # the record made before the crash holds any SLA update
        sla_after = await self._sla(scratch, cause, ticket)
        if sla_after is not None:
            await self._schedule_sla(ticket, *sla_after)

    async def _finish(self, doc: dict[str, Any] | None) -> None:
        """Publish a record's outbox and give its webhook calls their timers (once)."""
        if doc is None:
            return
        await self._relay.flush(doc)
        if doc.get("webhooks") and not doc.get("webhooks_scheduled") and self._timers is not None:
            for call in doc["webhooks"]:
                await self._timers.schedule(call["delivery_id"], self._clock(), WEBHOOK_TIMER, call)
            await self._store.mark_webhooks_scheduled(doc["_id"])

    async def _record(
        self,
        record_id: str,
        cause: Envelope,
        event_name: str,
        event: dict[str, Any],
        ticket_id: str,
        evaluation: Evaluation,
    ) -> dict[str, Any]:
        """Turn an evaluation into a firing record (with `_outbox`, the entries still to be wrapped)."""
        ticket = event["ticket"]
        outbox: list[tuple[str, Envelope]] = []
        records: list[dict[str, Any]] = []
        webhooks: list[dict[str, Any]] = []
        for firing in evaluation.firings:
            record = firing.as_record()
            record["notification_ids"] = []
            record["commands"] = []
            for index, action in enumerate(firing.actions):
                await self._act(record_id, cause, event_name, event, firing, index, action, record, outbox, webhooks)
            records.append(record)
            self._log_firing(firing, event_name, ticket_id, record)
        for cut in evaluation.cut_offs:
            self._cut.labels(cut.rule_id).inc()
            log.warning("rule %r did not run on %s of ticket %s: %s", cut.rule_id, event_name, ticket_id, cut.reason)
        return {
            "_id": record_id,
            "event": event_name,
            "event_type": cause.type,
            "ticket_id": ticket_id,
            "ticket_number": ticket.get("number"),
            "correlation_id": cause.correlation_id,
            "handled_at": self._clock(),
            "firings": records,
            "cut_offs": [{"rule_id": c.rule_id, "reason": c.reason} for c in evaluation.cut_offs],
            "data": _trimmed(event),
            "webhooks": webhooks,
            "webhooks_scheduled": not webhooks,
            "_outbox": outbox,
        }

    async def _act(
        self,
        record_id: str,
        cause: Envelope,
        event_name: str,
        event: dict[str, Any],
        firing: Firing,
        index: int,
        action: ActionModel,
        record: dict[str, Any],
        outbox: list[tuple[str, Envelope]],
        webhooks: list[dict[str, Any]],
    ) -> None:
        """Turn one action of a firing into outbox entries (or webhook calls), noting them on the record."""
        ticket = event["ticket"]
        automation = Automation(rule_id=firing.rule_id, rule_name=firing.rule_name, depth=firing.depth, cause=record_id)
        actor = rule_actor(firing.rule_id, firing.rule_name)
        command_id = derived_id("rule-action", firing.rule_id, record_id, str(index))
        # A rule acts on the ticket as it saw it: a person's later change to the same field wins.
        expected = (
            ticket.get("version") if event_name in ("ticket.created", "comment.added", "ticket.updated") else None
        )
        if isinstance(action, SendTemplate):
            for command in await self._notifications(record_id, event, firing, action):
                outbox.append(_entry(topics.NOTIFY_COMMANDS, command, command.notification_id, cause, ticket))
                record["notification_ids"].append(command.notification_id)
            return
        if isinstance(action, SetFields | Assign):
            fields = await self._fields(action, event, firing, record)
            if not fields:
                return
            update = UpdateTicket(
                command_id=command_id,
                actor=actor,
                automation=automation,
                number=ticket["number"],
                expected_version=expected,
                fields=fields,
            )
            outbox.append(_entry(topics.TICKET_COMMANDS, update, command_id, cause, ticket))
            record["commands"].append({"type": "UpdateTicket", "id": command_id, "fields": fields})
            return
        if isinstance(action, AddNote):
            note = AddComment(
                command_id=command_id,
                actor=actor,
                automation=automation,
                number=ticket["number"],
                kind="internal_comment",
                text=fill_tags(action.text, event),
                channel="system",
            )
            outbox.append(_entry(topics.TICKET_COMMANDS, note, command_id, cause, ticket))
            record["commands"].append({"type": "AddComment", "id": command_id})
            return
        if isinstance(action, PublishEvent):
            published = CustomEventPublished(
                name=action.name,
                payload=action.payload,
                ticket=TicketSnapshot.model_validate(_snapshot_fields(ticket)),
                automation=automation,
            )
            outbox.append(_entry(topics.AUTOMATION_EVENTS, published, command_id, cause, ticket))
            record["commands"].append({"type": "CustomEventPublished", "id": command_id, "name": action.name})
            return
        if isinstance(action, CallWebhook):
            body = {
                "event": event_name,
                "event_id": record_id,
                "rule": {"id": firing.rule_id, "name": firing.rule_name},
                "ticket": _snapshot_fields(ticket),
                "occurred_at": self._clock().isoformat(),
            }
            webhooks.append(
                {
                    "delivery_id": f"webhook:{command_id}",
                    "url": action.url,
                    "secret": action.secret.get_secret_value(),
                    "body": json.dumps(body, sort_keys=True, default=str),
                    "rule_id": firing.rule_id,
                    "ticket_id": ticket.get("ticket_id"),
                }
            )
            record["commands"].append({"type": "webhook", "id": f"webhook:{command_id}", "url": action.url})

    async def _fields(
        self, action: SetFields | Assign, event: dict[str, Any], firing: Firing, record: dict[str, Any]
    ) -> dict[str, Any]:
        if isinstance(action, SetFields):
            fields = {k: v for k, v in resolve_fields(action, event).items() if v is not None or k == "handler"}
            skipped = sorted(set(action.fields) - set(fields))
            if skipped:
                record.setdefault("notes", []).append(f"left alone (no value in the event): {', '.join(skipped)}")
            return fields
        if action.to == "user":
            return {"handler": action.user}
        if action.to == "group":
            return {"group": action.group}
        group = action.group or ""  # Assign requires it for round-robin
        members = await self._staff.members(group)
        if not members:
            record.setdefault("notes", []).append(f"round-robin: group {group} has no members; not assigned")
            return {}
        turn = await self._store.next_in_rotation(group)
        chosen = members[(turn - 1) % len(members)]
        record.setdefault("notes", []).append(f"round-robin in {group}: turn {turn} → {chosen.id}")
        return {"group": group, "handler": chosen.id}

    async def _notifications(
        self, record_id: str, event: dict[str, Any], firing: Firing, action: SendTemplate
    ) -> list[SendNotification]:
        """Return the notifications a `send_template` action sends (one per recipient; CC on a customer's)."""
        ticket = event["ticket"]
        person = acting_person(event)
        audience = "customer"
        cc: tuple[Address, ...] = ()
        recipients: list[Address] = []
        if action.target == CUSTOMER:
            recipients = [Address.model_validate(ticket["requester"])]
            if action.with_cc:
                cc = tuple(_copies(ticket, person))
        elif action.target == CC:
            recipients = _copies(ticket, person)
        elif action.target in (HANDLER, GROUP):
            audience = "staff"
            members = (
                [await self._staff.by_id(ticket["handler"])]
                if action.target == HANDLER
                else await self._staff.members(ticket.get("group") or "")
            )
            for member in members:
                if member is None or not getattr(member, "email", ""):
                    log.info("rule %r: a member of staff has no known address; not mailed", firing.rule_name)
                    continue
                if person.get("id") and member.id == person.get("id"):
                    continue  # nobody is mailed about their own comment or change
                recipients.append(Address(email=member.email, name=getattr(member, "name", "") or ""))
        else:
            audience = "other"
            recipients = [Address(email=action.target)]
        comment = event.get("comment") if isinstance(event.get("comment"), dict) else None
        source = ticket.get("source_message_id")
        replying_to = (comment or {}).get("message_id") or source
        references = tuple(dict.fromkeys(i for i in (source, replying_to) if i))
        staff_author = person.get("role") in ("agent", "admin", "light_agent")
        on_behalf = Actor.model_validate(person) if action.as_agent and staff_author else None
        context = {
            "ticket": ticket,
            "link": f"{self._public_url}/t/{ticket['link_token']}",
            "agent_link": f"{self._public_url}/tickets/{ticket['number']}",
        }
        if comment is not None:
            context["comment"] = comment
        if isinstance(event.get("actor"), dict):
            context["actor"] = event["actor"]
        for key in ("metric", "stage", "due_at", "policy"):
            if key in event:
                context.setdefault("sla", {})[key] = event[key]
        return [
            SendNotification(
                notification_id=derived_id("notify", firing.rule_id, record_id, _recipient_key(action, to)),
                ticket_id=ticket["ticket_id"],
                ticket_number=ticket["number"],
                template=action.template,
                language=action.language,
                to=to,
                cc=cc,
                mailbox=ticket.get("mailbox") or self._default_mailbox,
                in_reply_to=replying_to,
                references=references,
                auto_submitted=action.auto_submitted,
                context=context,
                rule=firing.rule_name,
                audience=audience,  # type: ignore[arg-type]
                on_behalf_of=on_behalf,
            )
            for to in recipients
        ]

    def _add_notice(
        self, doc: dict[str, Any], cause: Envelope, event: dict[str, Any], notice: Notice, ticket_id: str
    ) -> None:
        record = notice.as_record()
        record["notification_ids"] = []
        if notice.suppressed is None:
            command = self._notice_command(event, notice)
            doc["_outbox"].append(
                _entry(topics.NOTIFY_COMMANDS, command, command.notification_id, cause, event["ticket"])
            )
            record["notification_ids"].append(command.notification_id)
        doc["firings"].append(record)
        self._log_notice(notice, doc["event"], ticket_id)

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

    # ------------------------------------------------------------------------------------------- SLA

    async def _sla(
        self, doc: dict[str, Any], cause: Envelope, ticket: dict[str, Any]
    ) -> tuple[dict[str, Any], list[Any]] | None:
        """Advance the ticket's SLA clocks; put an update of its due times in the record's outbox when they moved.

        Returns the new clock state and the SLA timers ahead (scheduled once the record is stored), or
        None when nothing about the SLA changed.
        """
        policy = pick_policy(await self._calendars.policies(), ticket)
        stored = ticket.get("_sla_state")
        if policy is None and not stored:
            return None
        calendars = await self._calendars.get()
        calendar = calendars.get(policy.calendar, ALWAYS_OPEN) if policy is not None else ALWAYS_OPEN
        if policy is not None and policy.calendar not in calendars:
            log.warning(
                "SLA policy %s names calendar %s, which does not exist; counting 24x7", policy.id, policy.calendar
            )
            policy = policy.model_copy(update={"calendar": ALWAYS_OPEN.id})
        state = SlaState.model_validate(stored) if stored else None
        at = as_datetime(ticket.get("updated_at")) or self._clock()
        outcome = advance(state, ticket, at, policy, calendar)
        due = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in outcome.due.items()}
        shown = ticket.get("sla") or {}
        moved = shown.get("policy") != due["policy"] or not all(
            _same_time(shown.get(k), due[k]) for k in ("first_response_due", "resolution_due")
        )
        if moved:
            command_id = derived_id("sla-due", ticket["ticket_id"], str(ticket.get("version")))
            update = UpdateTicket(command_id=command_id, actor=SLA_ACTOR, number=ticket["number"], fields={"sla": due})
            doc["_outbox"].append(_entry(topics.TICKET_COMMANDS, update, command_id, cause, ticket))
            doc["sla"] = due
        return {"state": outcome.state.model_dump(mode="json"), "due": due}, list(outcome.timers)

    async def _schedule_sla(self, ticket: dict[str, Any], sla: dict[str, Any], timers: list[Any]) -> None:
        """Keep the ticket's SLA timers and clocks in step with the outcome; nothing to write when nothing moved."""
        state = sla["state"]
        ticket_id = ticket["ticket_id"]
        had = set(ticket.get("_sla_timers") or ())
        wanted = {f"sla:{ticket_id}:{t.metric}:{t.stage}": t for t in timers} if self._timers is not None else {}
        if (
            _clocks(state) == _clocks(ticket.get("_sla_state"))
            and sla["due"] == ticket.get("_sla_due")
            and had == set(wanted)
        ):
            return  # most events move no clock: no timer is re-armed (a fired one would fire again)
        if self._timers is not None:
            for timer_id, timer in wanted.items():
                payload = {
                    "ticket_id": ticket_id,
                    "metric": timer.metric,
                    "stage": timer.stage,
                    "due_at": timer.due_at.isoformat(),
                    "policy": state.get("policy"),
                }
                await self._timers.schedule(timer_id, timer.at, SLA_TIMER, payload)
            for stale in had - set(wanted):
                await self._timers.cancel(stale)
        await self._store.set_sla(ticket_id, state, list(wanted), sla["due"])

    async def _sla_due(self, timer: Timer) -> None:
        """Publish `SlaWarned` when a near-breach or breach moment comes and the due time still stands."""
        call = timer.payload
        ticket = await self._store.get_ticket(str(call["ticket_id"]))
        if ticket is None:
            return
        due_now = (ticket.get("_sla_due") or {}).get(f"{call['metric']}_due")
        if not _same_time(due_now, call["due_at"]):
            log.info("SLA timer %s is stale (due %s, now %s)", timer.id, call["due_at"], due_now)
            return
        parts = (str(call["ticket_id"]), str(call["metric"]), str(call["stage"]), str(call["due_at"]))
        record_id = derived_id("sla-due", *parts)  # the timer's record; the event it publishes has its own id
        previous = await self._store.get_firing(record_id)
        if previous is not None:
            await self._finish(previous)
            return
        warned = SlaWarned(
            ticket=TicketSnapshot.model_validate(_snapshot_fields(ticket)),
            metric=call["metric"],
            stage=call["stage"],
            policy=str(call.get("policy") or ""),
            due_at=call["due_at"],
        )
        envelope = Envelope.wrap(
            warned,
            event_id=derived_id("sla-warned", *parts),
            key=ticket["ticket_id"],
            traceparent=current_traceparent(),
        )
        log.warning(
            "SLA %s of ticket #%s: %s (due %s)", call["metric"], ticket.get("number"), call["stage"], call["due_at"]
        )
        doc = {
            "_id": record_id,
            "event": f"sla.{call['stage']}",
            "event_type": "SlaDue",
            "ticket_id": ticket["ticket_id"],
            "ticket_number": ticket.get("number"),
            "correlation_id": record_id,
            "handled_at": self._clock(),
            "firings": [],
            "cut_offs": [],
            "webhooks": [],
            "webhooks_scheduled": True,
            **outbox_fields([(topics.AUTOMATION_EVENTS, envelope)]),
        }
        if not await self._store.add_firing(doc):
            doc = await self._store.get_firing(record_id) or doc
        await self._finish(doc)

    # ------------------------------------------------------------------------------------------- time rules

    async def _schedule_time_rules(self, event: dict[str, Any], ctx: Context) -> None:
        """Give each time rule a timer for this ticket at the moment it could fire, or take it away."""
        if self._timers is None:
            return
        ticket = event["ticket"]
        ticket_id = ticket["ticket_id"]
        had: dict[str, str] = dict(ticket.get("_rule_timers") or {})
        now_due: dict[str, str] = {}
        view = {"ticket": ticket}
        for rule in await self.rules.get():
            if rule.event != "time":
                continue
            due = time_rule_due(rule, view, ctx)
            if due is not None:
                now_due[rule.id] = due.isoformat()
        if now_due == had:
            return
        for rule_id, due_text in now_due.items():
            if had.get(rule_id) != due_text:
                await self._timers.schedule(
                    _rule_timer_id(rule_id, ticket_id),
                    datetime.fromisoformat(due_text),
                    RULE_TIMER,
                    {"rule_id": rule_id, "ticket_id": ticket_id},
                )
        for rule_id in set(had) - set(now_due):
            await self._timers.cancel(_rule_timer_id(rule_id, ticket_id))
        await self._store.set_rule_timers(ticket_id, now_due)

    async def schedule_rule_for(self, rule: Rule, ticket: dict[str, Any]) -> bool:
        """Give one time rule its timer for one ticket if it could fire (after the rule was added or edited)."""
        if self._timers is None:
            return False
        due = time_rule_due(rule, {"ticket": ticket}, await self.context())
        timer_id = _rule_timer_id(rule.id, ticket["ticket_id"])
        timers = dict(ticket.get("_rule_timers") or {})
        if due is None:
            if rule.id in timers:
                await self._timers.cancel(timer_id)
                timers.pop(rule.id)
                await self._store.set_rule_timers(ticket["ticket_id"], timers)
            return False
        await self._timers.schedule(timer_id, due, RULE_TIMER, {"rule_id": rule.id, "ticket_id": ticket["ticket_id"]})
        timers[rule.id] = due.isoformat()
        await self._store.set_rule_timers(ticket["ticket_id"], timers)
        return True

    async def timer_fired(self, timer: Timer) -> None:
        """Handle a due timer: a time rule looks at its ticket, or a webhook call is made."""
        if timer.kind == RULE_TIMER:
            await self._time_rule(timer)
        elif timer.kind == WEBHOOK_TIMER:
            await self._webhook(timer)
        elif timer.kind == SLA_TIMER:
            await self._sla_due(timer)
        else:
            log.warning("timer %s of unknown kind %r dropped", timer.id, timer.kind)

    async def _time_rule(self, timer: Timer) -> None:
        rule_id = str(timer.payload.get("rule_id"))
        ticket_id = str(timer.payload.get("ticket_id"))
        rule = next((r for r in await self.rules.get() if r.id == rule_id), None)
        ticket = await self._store.get_ticket(ticket_id)
        if rule is None or ticket is None:
            return  # the rule was switched off or deleted, or the ticket is gone
        event = {"ticket": ticket}
        ctx = await self.context()
        if not rule_applies(rule, "time", event, ctx):
            due = time_rule_due(rule, event, ctx)
            if due is not None and self._timers is not None:
                await self._timers.schedule(timer.id, due, RULE_TIMER, dict(timer.payload))
            return
        record_id = derived_id("time-rule", rule.id, ticket_id, time_anchor(rule, event))
        previous = await self._store.get_firing(record_id)
        if previous is not None:
            await self._finish(previous)  # fired once already on this occasion
            return
        # The clock caused it: a cause of its own, so the commands name this firing as theirs.
        cause = Envelope(
            event_id=record_id,
            type="TimeRuleDue",
            schema_version=1,
            occurred_at=self._clock(),
            correlation_id=record_id,
            causation_id=None,
            traceparent=current_traceparent(),
            key=ticket_id,
            payload={"rule_id": rule.id, "ticket_id": ticket_id, "timer": timer.id},
        )
        evaluation = evaluate_event([rule], "time", event, ctx)
        doc = await self._record(record_id, cause, "time", event, ticket_id, evaluation)
        doc.update(outbox_fields(doc.pop("_outbox")))
        if not await self._store.add_firing(doc):
            doc = await self._store.get_firing(record_id) or doc
        await self._finish(doc)

    async def _webhook(self, timer: Timer) -> None:
        call = timer.payload
        if self._http is None:
            raise RuntimeError("no HTTP client for webhooks")
        timestamp = str(int(self._clock().timestamp()))
        body = str(call["body"]).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "helpdesk-triggers",
            "X-Helpdesk-Delivery": timer.id,
            "X-Helpdesk-Timestamp": timestamp,
            "X-Helpdesk-Signature": sign_webhook(str(call["secret"]), timestamp, body),
        }
        try:
            response = await self._http.post(str(call["url"]), content=body, headers=headers)
            failure = None if response.is_success else f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            failure = f"{type(exc).__name__}: {exc}"
        if failure is None:
            self._webhooks.labels("delivered").inc()
            log.info("webhook %s of rule %s delivered to %s", timer.id, call.get("rule_id"), call["url"])
            return
        if timer.attempts + 1 >= WEBHOOK_ATTEMPTS:
            self._webhooks.labels("given_up").inc()
            log.error(
                "webhook %s of rule %s to %s given up after %d attempts: %s",
                timer.id,
                call.get("rule_id"),
                call["url"],
                timer.attempts + 1,
                failure,
            )
            return
        self._webhooks.labels("retried").inc()
        raise WebhookFailed(f"webhook {timer.id} to {call['url']}: {failure}")  # the scheduler backs off

    # ------------------------------------------------------------------------------------------- logs

    def _log_notice(self, notice: Notice, event_name: str, ticket_id: str) -> None:
        self._fired.labels(notice.notice_id, event_name).inc()
        if notice.suppressed is not None:
            self._suppressed.labels(notice.notice_id).inc()
            log.info("%s on %s of ticket %s not sent: %s", notice.name, event_name, ticket_id, notice.suppressed)
        else:
            files = len(notice.context.get("files", ()))
            log.info("%s on %s of ticket %s: %d file(s) left out", notice.name, event_name, ticket_id, files)

    def _log_firing(self, firing: Firing, event_name: str, ticket_id: str, record: dict[str, Any]) -> None:
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
            log.info("rule %r: %s not done: %s", firing.rule_name, stopped.action.type, stopped.reason)
        for note in record.get("notes", ()):
            log.info("rule %r: %s", firing.rule_name, note)


class WebhookFailed(Exception):
    """A webhook call did not get a 2xx answer; its timer retries it after a back-off."""


def _copies(ticket: Mapping[str, Any], person: Mapping[str, Any]) -> list[Address]:
    """Return the ticket's CC list without robot addresses and without the person who caused the mail."""
    author = str(person.get("email") or "").casefold()
    return [
        Address.model_validate(c)
        for c in ticket.get("cc") or ()
        if not looks_automatic(c.get("email", "")) and c.get("email", "").casefold() != author
    ]


def _clocks(state: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return an SLA state without the moment it was last looked at (which changes on every event)."""
    return {k: v for k, v in (state or {}).items() if k != "at"}


def _same_time(a: Any, b: Any) -> bool:
    """Tell whether two due times (datetimes, ISO strings or None) are the same instant."""
    if a is None or b is None:
        return a is None and b is None
    return as_datetime(a) == as_datetime(b)


def _recipient_key(action: SendTemplate, to: Address) -> str:
    """Return what tells one recipient of an action from another in its notification id (stable across releases)."""
    return (
        action.target if action.target in (CUSTOMER, HANDLER) or "@" in action.target else f"{action.target}:{to.email}"
    )


def _rule_timer_id(rule_id: str, ticket_id: str) -> str:
    return f"rule:{rule_id}:{ticket_id}"


_SNAPSHOT_FIELDS = frozenset(TicketSnapshot.model_fields)


def _snapshot_fields(ticket: Mapping[str, Any]) -> dict[str, Any]:
    """Return the snapshot fields of a projected ticket (without triggers' own additions)."""
    return {k: v for k, v in ticket.items() if k in _SNAPSHOT_FIELDS}


def _entry(
    topic: str, message: Message, event_id: str, cause: Envelope, ticket: Mapping[str, Any]
) -> tuple[str, Envelope]:
    """Return an outbox entry: the message wrapped once (its id is fixed), keyed by the ticket."""
    envelope = Envelope.wrap(
        message, event_id=event_id, causation=cause, key=str(ticket["ticket_id"]), traceparent=current_traceparent()
    )
    return topic, envelope
