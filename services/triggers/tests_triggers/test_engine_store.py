"""The rule engine on the real store: each event kind, the counterpart rule, time rules once, loops cut off,
timers that survive a restart, round-robin, SLA due times and breaches, webhooks, dry runs."""

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from contracts.events import FieldChange
from contracts.models import Actor, Address, Automation
from hdkit.mongo import OutboxRelay
from hdkit.testing import FakePublisher
from prometheus_client import CollectorRegistry
from triggers.api import make_router
from triggers.domain import (
    CallWebhook,
    Condition,
    Rule,
    SendTemplate,
    SetFields,
    default_rules,
)
from triggers.handlers import CalendarCache, Handlers, RuleCache, sign_webhook
from triggers.scheduler import Scheduler
from triggers.sla import SlaPolicy
from triggers.store import Store

from contracts import REGISTRY, TicketUpdated, topics
from tests_triggers.builders import NOW, comment_added, envelope_of, snapshot, ticket_created
from tests_triggers.fakes import FakeStaff

TOKEN = "test-service-token-0123456789"  # noqa: S105 (a token for tests only)


@dataclass
class Member:
    id: str
    email: str
    name: str
    groups: tuple[str, ...] = ()


ANNA = Member("u-anna", "anna@helpdesk.example", "Anna Agent", ("support",))
BERT = Member("u-bert", "bert@helpdesk.example", "Bert Agent", ("support",))
CARL = Member("u-carl", "carl@helpdesk.example", "Carl Agent", ("support",))


class Clock:
    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Engine:
    store: Store
    publisher: FakePublisher
    handlers: Handlers
    scheduler: Scheduler
    clock: Clock
    calendars: CalendarCache

    def sent(self, type_: str | None = None) -> list[Any]:
        """Return the messages published (of one type), parsed."""
        found = [REGISTRY.parse(e) for _, e in self.publisher.sent if type_ is None or e.type == type_]
        return found

    async def tick(self, seconds: float) -> int:
        """Move the clock and fire what fell due."""
        self.clock.now += timedelta(seconds=seconds)
        return await self.scheduler.run_once(self.handlers.timer_fired)


async def _engine(mongo: Any, rules: list[Rule], *, clock: Clock | None = None, **options: Any) -> Engine:
    store = Store(mongo)
    await store.ensure_indexes()
    await store.seed_rules(rules)
    clock = clock or Clock()
    publisher = FakePublisher()
    scheduler = Scheduler(store.timers, "test", clock=clock)
    await scheduler.ensure_indexes()
    calendars = CalendarCache(store, ttl=0)
    handlers = Handlers(
        store,
        OutboxRelay(store.collection, publisher),  # type: ignore[arg-type]
        public_url="https://help.example.com",
        default_mailbox="support@localhost",
        metrics=CollectorRegistry(),
        rules=RuleCache(store, ttl=0),
        staff=options.pop("staff", FakeStaff([ANNA, BERT, CARL])),
        timers=scheduler,
        calendars=calendars,
        clock=clock,
        **options,
    )
    return Engine(store, publisher, handlers, scheduler, clock, calendars)


def _rule(rule_id: str) -> Rule:
    return next(r for r in default_rules() if r.id == rule_id)


def updated(changes: list[FieldChange], *, version: int = 2, automation: Automation | None = None, **ticket: Any):
    return TicketUpdated(
        ticket=snapshot(version=version, **ticket),
        changes=tuple(changes),
        actor=Actor(role="agent", id="u-boss", name="Boss"),
        automation=automation,
    )


def moved(old: str, new: str, **ticket: Any):
    """Return the TicketUpdated of a status change (status and category named alike, as in the default type)."""
    return updated([FieldChange(field="status", old=old, new=new)], status=new, status_category=new, **ticket)


async def test_a_new_email_ticket_gets_its_auto_reply_once_even_when_delivered_twice(mongo):
    engine = await _engine(mongo, [_rule("auto-reply-new-ticket")])
    event = ticket_created(status_category="new")

    await engine.handlers.ticket_created(envelope_of(event), event)
    await engine.handlers.ticket_created(envelope_of(event), event)

    (mail,) = engine.sent("SendNotification")
    assert mail.template == "auto_reply" and mail.to.email == "alice@example.com"


async def test_a_customer_reply_moves_the_ticket_to_waiting_for_agent_and_tells_the_handler(mongo):
    engine = await _engine(mongo, [_rule("customer-reply-waiting-for-agent"), _rule("customer-reply-notify-handler")])
    reply = comment_added()
    reply = reply.model_copy(
        update={
            "ticket": snapshot(
                status="waiting_for_customer", status_category="waiting_for_customer", handler="u-anna", version=4
            )
        }
    )

    await engine.handlers.comment_added(envelope_of(reply, "evt-c2"), reply)

    (update,) = engine.sent("UpdateTicket")
    assert update.fields == {"status_category": "waiting_for_agent"}
    assert update.actor.role == "system" and update.automation.depth == 1
    assert update.expected_version == 4  # a person's later change to the status wins
    (mail,) = engine.sent("SendNotification")
    assert (mail.template, mail.to.email, mail.audience) == ("customer_replied", "anna@helpdesk.example", "staff")


async def test_an_agent_reply_is_mailed_to_the_customer_as_the_agent_with_the_cc_list_and_threaded(mongo):
    engine = await _engine(mongo, [_rule("email-agent-reply"), _rule("agent-reply-waiting-for-customer")])
    reply = comment_added(
        author_role="agent",
        author=Actor(role="agent", id="u-anna", email="anna@helpdesk.example", name="Anna Agent"),
        channel="agent",
        message_id=None,
    ).model_copy(
        update={
            "ticket": snapshot(
                status="open",
                status_category="open",
                handler="u-anna",
                cc=(Address(email="boss@example.com"), Address(email="noreply@example.com")),
            ),
            "kind": "public_reply",
        }
    )

    await engine.handlers.comment_added(envelope_of(reply, "evt-r1"), reply)

    (mail,) = engine.sent("SendNotification")
    assert mail.template == "agent_reply" and mail.to.email == "alice@example.com"
    assert [c.email for c in mail.cc] == ["boss@example.com"]  # robots are left off
    assert mail.on_behalf_of.id == "u-anna" and mail.auto_submitted is None
    assert mail.in_reply_to == "CAF1234@mail.example.com"
    assert mail.context["comment"]["text"] == "Här är ritningen."
    (update,) = engine.sent("UpdateTicket")
    assert update.fields == {"status_category": "waiting_for_customer"}


async def test_nobody_is_mailed_about_their_own_comment(mongo):
    engine = await _engine(mongo, [_rule("customer-reply-notify-handler")])
    # the handler answers by email from their own address: it counts as theirs, not the customer's
    own = comment_added(author=Actor(role="customer", id="u-anna", email="anna@helpdesk.example")).model_copy(
        update={"ticket": snapshot(handler="u-anna", version=3)}
    )

    await engine.handlers.comment_added(envelope_of(own, "evt-own"), own)

    assert engine.sent("SendNotification") == []


async def test_an_update_rule_fires_each_time_its_field_changes_and_only_then(mongo):
    engine = await _engine(mongo, [_rule("notify-handler-on-assignment")])
    assigned = updated([FieldChange(field="handler", old=None, new="u-bert")], handler="u-bert")
    retitled = updated([FieldChange(field="title", old="a", new="b")], version=3, handler="u-bert")
    reassigned = updated([FieldChange(field="handler", old="u-bert", new="u-carl")], version=4, handler="u-carl")

    for n, event in enumerate((assigned, retitled, reassigned)):
        await engine.handlers.ticket_updated(envelope_of(event, f"evt-u{n}"), event)

    assert [(m.template, m.to.email) for m in engine.sent("SendNotification")] == [
        ("ticket_assigned", "bert@helpdesk.example"),
        ("ticket_assigned", "carl@helpdesk.example"),
    ]


async def test_changed_from_to_conditions_follow_the_change_in_the_event(mongo):
    rule = Rule(
        id="escalated",
        name="Priority raised to high",
        event="ticket.updated",
        field="priority",
        conditions=(
            Condition(field="ticket.priority", op="changed_from", value="medium"),
            Condition(field="ticket.priority", op="changed_to", value="high"),
        ),
        actions=(SendTemplate(template="escalated", target="boss@helpdesk.example"),),
    )
    engine = await _engine(mongo, [rule])
    up = updated([FieldChange(field="priority", old="medium", new="high")], priority="high")
    down = updated([FieldChange(field="priority", old="high", new="low")], version=3, priority="low")

    await engine.handlers.ticket_updated(envelope_of(up, "evt-up"), up)
    await engine.handlers.ticket_updated(envelope_of(down, "evt-down"), down)

    assert [m.to.email for m in engine.sent("SendNotification")] == ["boss@helpdesk.example"]


async def test_a_chain_of_rules_is_cut_off_at_the_depth_limit_and_the_log_says_why(mongo):
    ping = Rule(
        id="ping",
        name="Ping",
        event="ticket.updated",
        field="tags",
        actions=(SetFields(fields={"priority": "high"}),),
    )
    engine = await _engine(mongo, [ping])
    deep = updated(
        [FieldChange(field="tags", old=[], new=["x"])],
        automation=Automation(rule_id="pong", rule_name="Pong", depth=5, cause="evt-0"),
    )
    own = updated(
        [FieldChange(field="tags", old=[], new=["y"])],
        version=3,
        automation=Automation(rule_id="ping", rule_name="Ping", depth=1, cause="evt-0"),
    )
    shallow = updated(
        [FieldChange(field="tags", old=[], new=["z"])],
        version=4,
        automation=Automation(rule_id="pong", rule_name="Pong", depth=2, cause="evt-0"),
    )

    for name, event in (("deep", deep), ("own", own), ("shallow", shallow)):
        await engine.handlers.ticket_updated(envelope_of(event, name), event)

    (update,) = engine.sent("UpdateTicket")
    assert update.automation.depth == 3  # one deeper than the change it answered
    records = {r["_id"]: r for r in await engine.store.firings_for_ticket("t-1001")}
    assert "chain of rules too deep" in records["deep"]["cut_offs"][0]["reason"]
    assert records["own"]["cut_offs"][0]["reason"] == "the rule's own change does not fire it again"


async def test_a_time_rule_fires_once_when_its_wait_is_over_and_again_only_after_a_new_wait(mongo):
    reminder = _rule("reminder-waiting-for-customer-48h").model_copy(update={"active": True})
    engine = await _engine(mongo, [reminder])
    waiting = moved(
        "open",
        "waiting_for_customer",
        updated_at=NOW,
    )
    await engine.handlers.ticket_updated(envelope_of(waiting, "evt-w1"), waiting)

    assert await engine.tick(47 * 3600) == 0
    assert await engine.tick(3600) == 1
    assert await engine.tick(3600) == 0  # once
    (mail,) = engine.sent("SendNotification")
    assert mail.template == "waiting_reminder"
    (record,) = [r for r in await engine.store.firings_for_ticket("t-1001") if r["event"] == "time"]
    assert record["firings"][0]["conditions_met"][-1] == "ticket.status_since older_than '48h'"

    # the customer answers, the agent asks again: a new wait, a new reminder
    later = engine.clock.now
    answered = moved(
        "waiting_for_customer",
        "open",
        version=3,
        updated_at=later,
    )
    asked = moved(
        "open",
        "waiting_for_customer",
        version=4,
        updated_at=later + timedelta(minutes=5),
    )
    await engine.handlers.ticket_updated(envelope_of(answered, "evt-w2"), answered)
    await engine.handlers.ticket_updated(envelope_of(asked, "evt-w3"), asked)
    await engine.tick(49 * 3600)

    assert len(engine.sent("SendNotification")) == 2


async def test_a_time_rule_does_not_fire_when_its_conditions_stopped_holding(mongo):
    reminder = _rule("reminder-waiting-for-customer-48h").model_copy(update={"active": True})
    engine = await _engine(mongo, [reminder])
    waiting = moved(
        "open",
        "waiting_for_customer",
    )
    answered = moved(
        "waiting_for_customer",
        "waiting_for_agent",
        version=3,
        updated_at=NOW + timedelta(hours=1),
    )
    await engine.handlers.ticket_updated(envelope_of(waiting, "evt-1"), waiting)
    await engine.handlers.ticket_updated(envelope_of(answered, "evt-2"), answered)

    await engine.tick(72 * 3600)

    assert engine.sent("SendNotification") == []
    assert await engine.store.timers.count_documents({}) == 0


async def test_a_dormant_ticket_wakes_up_when_its_time_comes_even_after_a_restart(mongo):
    engine = await _engine(mongo, [_rule("wake-dormant-ticket")])
    wake_at = NOW + timedelta(days=3)
    asleep = moved(
        "open",
        "dormant",
        wake_at=wake_at,
    )
    await engine.handlers.ticket_updated(envelope_of(asleep, "evt-d"), asleep)

    # the process stops; a new one (new scheduler, new handlers) takes over the same store
    restarted = await _engine(mongo, [], clock=Clock(NOW + timedelta(days=3, seconds=1)))
    assert await restarted.scheduler.run_once(restarted.handlers.timer_fired) == 1

    (update,) = restarted.sent("UpdateTicket")
    assert update.fields == {"status_category": "open"}
    assert update.automation.rule_id == "wake-dormant-ticket"


async def test_a_recurring_ticket_reopens_in_the_status_its_recurrence_names(mongo):
    engine = await _engine(mongo, [_rule("reopen-recurring-ticket")])
    resolved = moved(
        "open",
        "resolved",
        recurrence={"every": "1w", "status": "new"},
        wake_at=NOW + timedelta(weeks=1),
    )
    await engine.handlers.ticket_updated(envelope_of(resolved, "evt-r"), resolved)

    await engine.tick(7 * 86400)

    (update,) = engine.sent("UpdateTicket")
    assert update.fields == {"status_category": "new"}


async def test_round_robin_hands_tickets_to_the_group_members_in_turn(mongo):
    rule = Rule(
        id="round-robin",
        name="Round-robin in support",
        event="ticket.created",
        actions=({"type": "assign", "to": "round_robin", "group": "support"},),  # type: ignore[arg-type]
    )
    engine = await _engine(mongo, [rule])

    for n in range(4):
        event = ticket_created(ticket_id=f"t-{n}", number=100 + n)
        await engine.handlers.ticket_created(envelope_of(event, f"evt-{n}"), event)

    assert [u.fields["handler"] for u in engine.sent("UpdateTicket")] == ["u-anna", "u-bert", "u-carl", "u-anna"]


async def test_an_internal_note_and_a_custom_event_carry_the_rule_and_the_ticket(mongo):
    rule = Rule(
        id="vip",
        name="VIP",
        event="ticket.created",
        conditions=(Condition(field="ticket.requester.email", op="contains", value="@example.com"),),
        actions=(
            {"type": "add_note", "text": "VIP #{{ ticket.number }} from {{ ticket.requester.name }}"},  # type: ignore[arg-type]
            {"type": "publish_event", "name": "vip.ticket_opened", "payload": {"tier": "gold"}},  # type: ignore[arg-type]
        ),
    )
    engine = await _engine(mongo, [rule])
    event = ticket_created()

    await engine.handlers.ticket_created(envelope_of(event), event)

    (note,) = engine.sent("AddComment")
    assert note.text == "VIP #1001 from Alice Andersson" and note.kind == "internal_comment"
    (custom,) = engine.sent("CustomEventPublished")
    assert (custom.name, custom.payload, custom.ticket.number) == ("vip.ticket_opened", {"tier": "gold"}, 1001)
    assert [t for t, _ in engine.publisher.sent if t == topics.AUTOMATION_EVENTS]


async def test_a_webhook_is_signed_and_retried_until_it_is_delivered(mongo):
    calls: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(500 if len(calls) < 3 else 204)

    http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    secret = "a-very-secret-key-123"
    rule = Rule(
        id="hook",
        name="Hook",
        event="ticket.created",
        actions=(CallWebhook(url="https://hooks.example.com/in", secret=secret),),
    )
    engine = await _engine(mongo, [rule], http=http)
    event = ticket_created()

    await engine.handlers.ticket_created(envelope_of(event), event)
    for _ in range(6):
        await engine.tick(700)

    assert len(calls) == 3
    first, last = calls[0], calls[-1]
    assert first.headers["X-Helpdesk-Delivery"] == last.headers["X-Helpdesk-Delivery"]
    expected = sign_webhook(secret, last.headers["X-Helpdesk-Timestamp"], last.content)
    assert last.headers["X-Helpdesk-Signature"] == expected
    assert json.loads(last.content)["ticket"]["number"] == 1001
    assert await engine.store.timers.count_documents({}) == 0


async def test_an_sla_policy_writes_due_times_on_the_ticket_and_reports_near_breach_and_breach(mongo):
    engine = await _engine(mongo, [])
    await engine.store.put_policy(
        SlaPolicy(id="high", name="High", priorities=("high",), first_response_minutes=60, near_breach_minutes=15)
    )
    event = ticket_created(priority="high", status_category="new")

    await engine.handlers.ticket_created(envelope_of(event), event)

    (update,) = engine.sent("UpdateTicket")
    assert update.fields["sla"]["policy"] == "high"
    assert datetime.fromisoformat(update.fields["sla"]["first_response_due"]) == NOW + timedelta(hours=1)
    await engine.tick(45 * 60)
    await engine.tick(15 * 60)
    await engine.tick(60)
    stages = [(w.metric, w.stage) for w in engine.sent("SlaWarned")]
    assert stages == [("first_response", "near_breach"), ("first_response", "breached")]


async def test_an_sla_stops_when_the_first_response_is_given_and_nothing_is_reported(mongo):
    engine = await _engine(mongo, [])
    await engine.store.put_policy(SlaPolicy(id="all", name="All", first_response_minutes=60))
    created = ticket_created(status_category="new")
    answered = moved(
        "new",
        "waiting_for_customer",
        first_response_at=NOW + timedelta(minutes=20),
        updated_at=NOW + timedelta(minutes=20),
    )

    await engine.handlers.ticket_created(envelope_of(created), created)
    await engine.handlers.ticket_updated(envelope_of(answered, "evt-a"), answered)
    await engine.tick(3 * 3600)

    assert engine.sent("SlaWarned") == []
    last = engine.sent("UpdateTicket")[-1]
    assert last.fields["sla"]["first_response_due"] is None


async def test_a_breach_event_fires_the_rules_that_follow_it(mongo):
    rule = Rule(
        id="breach-mail",
        name="Tell the group of a breach",
        event="sla.breached",
        actions=(SendTemplate(template="sla_warning", target="group", auto_submitted="auto-generated"),),
    )
    engine = await _engine(mongo, [rule])
    event = ticket_created(group="support")
    await engine.handlers.ticket_created(envelope_of(event), event)
    await engine.store.put_policy(SlaPolicy(id="all", name="All", first_response_minutes=30))
    engine.calendars.invalidate()
    again = updated([FieldChange(field="title", old="a", new="b")], group="support")
    await engine.handlers.ticket_updated(envelope_of(again, "evt-t"), again)
    await engine.tick(31 * 60)
    (warned,) = [e for _, e in engine.publisher.sent if e.type == "SlaWarned"]

    await engine.handlers.sla_warned(warned, REGISTRY.parse(warned))

    mails = engine.sent("SendNotification")
    assert sorted(m.to.email for m in mails) == [ANNA.email, BERT.email, CARL.email]
    assert mails[0].context["sla"]["metric"] == "first_response"


async def test_a_dry_run_lists_the_recent_events_a_rule_would_have_fired_on_without_doing_anything(mongo):
    engine = await _engine(mongo, [_rule("auto-reply-new-ticket")], clock=Clock(datetime.now(UTC)))
    for n, channel in enumerate(("email", "portal", "email")):
        event = ticket_created(ticket_id=f"t-{n}", number=200 + n, channel=channel)
        await engine.handlers.ticket_created(envelope_of(event, f"evt-{n}"), event)
    sent_before = len(engine.publisher.sent)
    router = make_router(engine.store, token=TOKEN, on_change=lambda: None, handlers=engine.handlers)
    from fastapi import FastAPI

    app = FastAPI()
    app.include_router(router)
    body = {
        "rule": {
            "name": "Portal tickets",
            "event": "ticket.created",
            "conditions": [{"field": "ticket.channel", "op": "is", "value": "portal"}],
            "actions": [{"type": "set_fields", "fields": {"priority": "high"}}],
        },
        "days": 7,
    }
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        response = await client.post("/rules/dry-run", json=body, headers={"Authorization": f"Bearer {TOKEN}"})

    assert response.status_code == 200, response.text
    result = response.json()
    assert result["scanned"] == 3
    assert [m["ticket_number"] for m in result["matches"]] == [201]
    assert result["matches"][0]["actions"] == [{"type": "set_fields", "fields": {"priority": "high"}}]
    assert len(engine.publisher.sent) == sent_before  # nothing was done


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"name": "x", "event": "time", "actions": [{"type": "add_note", "text": "n"}]}, ["body"]),
        (
            {
                "name": "x",
                "event": "ticket.created",
                "actions": [{"type": "set_fields", "fields": {"password": "x"}}],
            },
            ["body", "actions", 0, "set_fields"],
        ),
        (
            {"name": "x", "event": "ticket.created", "actions": [{"type": "assign", "to": "round_robin"}]},
            ["body", "actions", 0, "assign"],
        ),
    ],
)
async def test_an_invalid_rule_gets_an_error_naming_the_wrong_part(mongo, body, loc):
    from fastapi import FastAPI

    app = FastAPI()
    app.include_router(make_router(Store(mongo), token=TOKEN, on_change=lambda: None))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        response = await client.put("/rules/bad", json=body, headers={"Authorization": f"Bearer {TOKEN}"})

    assert response.status_code == 422
    detail = response.json()["detail"]
    assert loc in [e["loc"][: len(loc)] for e in detail], detail
    assert all(e["msg"] for e in detail)


async def test_old_firing_records_are_purged_but_never_one_whose_commands_have_not_gone_out(mongo):
    engine = await _engine(mongo, [_rule("auto-reply-new-ticket")])
    sent, stuck, recent = ticket_created(), ticket_created(ticket_id="t-2", number=2), ticket_created(ticket_id="t-3")
    await engine.handlers.ticket_created(envelope_of(sent, "old-sent"), sent)
    engine.publisher.fail_next = 1
    with pytest.raises(ConnectionError):
        await engine.handlers.ticket_created(envelope_of(stuck, "old-stuck"), stuck)
    engine.clock.now += timedelta(days=31)
    await engine.handlers.ticket_created(envelope_of(recent, "recent"), recent)

    purged = await engine.store.purge_firings(engine.clock.now - timedelta(days=30))

    assert purged == 1
    left = {d["_id"] async for d in engine.store.collection.find({}, {"_id": 1})}
    assert left == {"old-stuck", "recent"}


async def test_a_crash_after_the_record_before_the_timers_is_mended_by_the_redelivery(mongo):
    engine = await _engine(mongo, [_rule("wake-dormant-ticket")])
    asleep = moved(
        "open",
        "dormant",
        wake_at=NOW + timedelta(hours=1),
    )
    real_schedule = engine.handlers._schedule_time_rules

    async def crash(*args: Any) -> None:
        raise RuntimeError("killed between the record and the timers")

    engine.handlers._schedule_time_rules = crash  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        await engine.handlers.ticket_updated(envelope_of(asleep, "evt-d"), asleep)
    assert await engine.store.timers.count_documents({}) == 0
    engine.handlers._schedule_time_rules = real_schedule  # type: ignore[method-assign]

    await engine.handlers.ticket_updated(envelope_of(asleep, "evt-d"), asleep)  # Kafka delivers it again
    await engine.tick(3601)

    (update,) = engine.sent("UpdateTicket")
    assert update.fields == {"status_category": "open"}


async def test_the_firing_log_api_never_shows_a_webhooks_secret(mongo):
    rule = Rule(
        id="hook",
        name="Hook",
        event="ticket.created",
        actions=(CallWebhook(url="https://hooks.example.com/in", secret="a-very-secret-key-123"),),
    )
    engine = await _engine(
        mongo, [rule], http=httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(204)))
    )
    event = ticket_created()
    await engine.handlers.ticket_created(envelope_of(event), event)

    records = await engine.store.firings_for_ticket("t-1001")

    assert records and "a-very-secret-key-123" not in json.dumps(records, default=str)


async def test_a_webhooks_secret_is_shown_masked_and_an_edit_that_sends_the_mask_keeps_it(mongo):
    from fastapi import FastAPI

    store = Store(mongo)
    app = FastAPI()
    app.include_router(make_router(store, token=TOKEN, on_change=lambda: None))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    body = {
        "name": "Hook",
        "event": "ticket.created",
        "actions": [{"type": "webhook", "url": "https://hooks.example.com/in", "secret": "a-very-secret-key-123"}],
    }
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        assert (await client.put("/rules/hook", json=body, headers=auth)).status_code == 200
        shown = (await client.get("/rules/hook", headers=auth)).json()
        assert shown["actions"][0]["secret"] == "**********"
        shown["name"] = "Hook, renamed"
        assert (await client.put("/rules/hook", json=shown, headers=auth)).status_code == 200

    stored = await store.get_rule("hook")
    assert stored is not None and stored.name == "Hook, renamed"
    assert stored.actions[0].secret.get_secret_value() == "a-very-secret-key-123"  # type: ignore[union-attr]


async def test_a_new_webhook_sent_with_the_mask_instead_of_a_secret_is_refused_naming_the_secret(mongo):
    from fastapi import FastAPI

    app = FastAPI()
    app.include_router(make_router(Store(mongo), token=TOKEN, on_change=lambda: None))
    body = {
        "name": "Hook",
        "event": "ticket.created",
        "actions": [{"type": "webhook", "url": "https://hooks.example.com/in", "secret": "**********"}],
    }
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        response = await client.put("/rules/hook", json=body, headers={"Authorization": f"Bearer {TOKEN}"})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "actions", 0, "webhook", "secret"]


async def test_an_event_that_moves_no_sla_clock_re_arms_no_timer(mongo):
    engine = await _engine(mongo, [])
    await engine.store.put_policy(SlaPolicy(id="all", name="All", first_response_minutes=60, near_breach_minutes=15))
    created = ticket_created(status_category="new")
    await engine.handlers.ticket_created(envelope_of(created), created)
    await engine.tick(45 * 60)  # the near-breach warning fires and its timer is gone
    assert await engine.store.timers.count_documents({}) == 1

    retitled = updated(
        [FieldChange(field="title", old="a", new="b")], status_category="new", updated_at=engine.clock.now
    )
    await engine.handlers.ticket_updated(envelope_of(retitled, "evt-t"), retitled)

    assert await engine.store.timers.count_documents({}) == 1  # only the breach is still to come
    assert [w.stage for w in engine.sent("SlaWarned")] == ["near_breach"]
