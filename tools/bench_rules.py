"""Benchmark: rule evaluation with 500 active rules, on one core (issue 5's target: ≥ 2,000 ticket events/s).

Two figures: the rule engine alone (`triggers.domain.evaluate_event`: every rule's event, items and
conditions against each event), and the whole handler path of one event with the store in memory
(evaluation, the commands it asks for, the firing record with its outbox, time-rule timers). The events
are a realistic mix: new email tickets, customer and agent comments, status/priority/handler updates.
The rules are varied (scoped to types and groups, text `contains`, `in`, `changed_from/to`, custom fields,
business hours, time rules); a few of them fire on each event (the run prints how many).

    python tools/bench_rules.py [--rules 500] [--events 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for sub in ("services/triggers/src", "contracts/src", "libs/hdkit/src", "services/triggers"):
    sys.path.insert(0, str(ROOT / sub))

from contracts.events import Comment, CommentAdded, FieldChange, TicketCreated, TicketUpdated  # noqa: E402
from contracts.models import Actor, Address, TicketSnapshot  # noqa: E402
from hdkit.mongo import OutboxRelay  # noqa: E402
from hdkit.testing import FakePublisher  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402
from triggers.calendar import ALWAYS_OPEN, BusinessCalendar  # noqa: E402
from triggers.domain import Condition, Context, Rule, default_rules, evaluate_event  # noqa: E402
from triggers.handlers import Handlers, RuleCache  # noqa: E402

from contracts import Envelope  # noqa: E402

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
TYPES = ["fault", "question", "order", "change", "complaint"]
GROUPS = ["support", "billing", "field", "it", "sales", "none"]
STATUSES = ["new", "open", "waiting_for_customer", "waiting_for_agent", "resolved"]
WORDS = ["printer", "invoice", "login", "vpn", "refund", "delivery", "crash", "password", "order", "urgent"]


def make_rules(n: int, rng: random.Random) -> list[Rule]:
    """Return `n` active rules: the defaults plus varied admin rules."""
    rules = list(default_rules())
    office = "office"
    while len(rules) < n:
        i = len(rules)
        kind = rng.choice(["created", "updated", "comment", "time"])
        conditions = [
            Condition(field="ticket.title", op="contains", value=rng.choice(WORDS)),
            Condition(field="ticket.priority", op="in", value=rng.sample(["low", "medium", "high"], 2)),
        ]
        if rng.random() < 0.3:
            conditions.append(Condition(field="ticket.custom.region", op="is", value=rng.choice(["north", "south"])))
        if rng.random() < 0.2:
            conditions.append(Condition(field="now", op="within_business_hours", value=office))
        scope = {"types": rng.sample(TYPES, 2), "groups": rng.sample(GROUPS, 3)}
        actions = [{"type": "set_fields", "fields": {"tags": ["auto"], "priority": "high"}}]
        spec: dict[str, Any] = {"id": f"rule-{i}", "name": f"Rule {i}", "applies_to": scope, "actions": actions}
        if kind == "created":
            spec["event"] = "ticket.created"
        elif kind == "updated":
            field = rng.choice(["status", "priority", "handler"])
            spec.update(event="ticket.updated", field=field)
            if field == "status":
                conditions.append(Condition(field="ticket.status", op="changed_to", value=rng.choice(STATUSES)))
        elif kind == "comment":
            spec.update(event="comment.added", comment_by=rng.choice(["customer", "agent"]))
        else:
            spec["event"] = "time"
            conditions.append(Condition(field="ticket.status_since", op="older_than", value=f"{rng.randint(1, 96)}h"))
        spec["conditions"] = conditions
        rules.append(Rule.model_validate(spec))
    return [r.model_copy(update={"active": True}) for r in rules]


def make_events(n: int, rng: random.Random) -> list[tuple[str, Any]]:
    """Return `n` ticket events: new tickets, comments by either side, field updates."""
    events: list[tuple[str, Any]] = []
    for i in range(n):
        title = " ".join(rng.sample(WORDS, 3))
        snap = TicketSnapshot(
            ticket_id=f"t-{i}",
            number=i + 1,
            title=title,
            status=rng.choice(STATUSES),
            status_category=rng.choice(STATUSES),
            priority=rng.choice(["low", "medium", "high"]),
            type=rng.choice(TYPES),
            group=rng.choice(GROUPS[:-1]),
            handler=rng.choice([None, "u-1", "u-2"]),
            channel="email",
            mailbox="support@localhost",
            requester=Address(email=f"customer{i}@example.com", name="Kim Kund"),
            created_at=NOW - timedelta(hours=rng.randint(0, 200)),
            updated_at=NOW,
            version=rng.randint(1, 9),
            link_token="token",  # noqa: S106 (a made-up ticket link)
            custom={"region": rng.choice(["north", "south", "east"])},
        )
        pick = rng.random()
        if pick < 0.3:
            events.append(("ticket.created", TicketCreated(ticket=snap, actor=Actor(role="customer"))))
        elif pick < 0.65:
            role = rng.choice(["customer", "agent"])
            comment = Comment(
                comment_id=f"c-{i}",
                visibility="public",
                author=Actor(role=role, id="u-1" if role == "agent" else None, email="a@example.com"),  # type: ignore[arg-type]
                channel="email",
                text="Hej! " * 40,
                created_at=NOW,
            )
            events.append(("comment.added", CommentAdded(ticket=snap, comment=comment, author_role=role)))  # type: ignore[arg-type]
        else:
            field = rng.choice(["status", "priority", "handler", "title"])
            change = FieldChange(field=field, old="open", new=getattr(snap, field))
            events.append(
                ("ticket.updated", TicketUpdated(ticket=snap, changes=(change,), actor=Actor(role="agent", id="u-2")))
            )
    return events


class MemoryStore:
    """The triggers store in memory (the benchmark measures the engine, not the database)."""

    def __init__(self, rules: list[Rule]) -> None:
        from tests_triggers.fakes import FakeTriggerStore  # the same fake the fast tests use

        self.inner = FakeTriggerStore(rules)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def bench_engine(rules: list[Rule], events: list[tuple[str, Any]], calendars: dict[str, Any]) -> tuple[float, int]:
    """Return events/s of `evaluate_event` alone and the number of firings."""
    dumped = [(name, e.model_dump(mode="json")) for name, e in events]
    for _, d in dumped:
        d["ticket"]["status_since"] = (NOW - timedelta(hours=30)).isoformat()
    ctx = Context(now=NOW, calendars=calendars)
    fired = 0
    start = time.process_time()
    for name, event in dumped:
        fired += len(evaluate_event(rules, name, event, ctx).firings)
    return len(dumped) / (time.process_time() - start), fired


async def bench_handlers(rules: list[Rule], events: list[tuple[str, Any]], calendars: dict[str, Any]) -> float:
    """Return events/s through `Handlers` (store and publisher in memory)."""
    store = MemoryStore(rules)
    publisher = FakePublisher()

    class Calendars:
        async def get(self) -> dict[str, Any]:
            return calendars

        async def policies(self) -> list[Any]:
            return []

    handlers = Handlers(
        store,  # type: ignore[arg-type]
        OutboxRelay(store.collection, publisher),  # type: ignore[arg-type]
        public_url="https://help.example.com",
        default_mailbox="support@localhost",
        metrics=CollectorRegistry(),
        rules=RuleCache(store, ttl=3600),  # type: ignore[arg-type]
        calendars=Calendars(),
        clock=lambda: NOW,
    )
    method = {
        "ticket.created": handlers.ticket_created,
        "comment.added": handlers.comment_added,
        "ticket.updated": handlers.ticket_updated,
    }
    envelopes = [(method[name], Envelope.wrap(e, key=e.ticket.ticket_id), e) for name, e in events]
    start = time.process_time()
    for handle, envelope, event in envelopes:
        await handle(envelope, event)
    return len(envelopes) / (time.process_time() - start)


def main() -> None:
    """Run both measurements and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rules", type=int, default=500)
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as the target says
    rng = random.Random(5)  # noqa: S311 (repeatable test data, not secrets)
    rules = make_rules(args.rules, rng)
    events = make_events(args.events, rng)
    office = BusinessCalendar(
        id="office",
        name="Office",
        timezone="Europe/Stockholm",
        hours={d: [("08:00", "17:00")] for d in ("mon", "tue", "wed", "thu", "fri")},  # type: ignore[misc]
    )
    calendars = {ALWAYS_OPEN.id: ALWAYS_OPEN, office.id: office}
    engine_rate, fired = bench_engine(rules, events, calendars)
    handler_rate = asyncio.run(bench_handlers(rules, events[: args.events // 4], calendars))
    print(f"rules: {len(rules)} active; events: {len(events)} ({fired} firings, {fired / len(events):.1f} per event)")
    print(f"rule engine alone (evaluate_event), one core: {engine_rate:,.0f} events/s (target ≥ 2,000)")
    print(f"handler path with the store in memory, one core: {handler_rate:,.0f} events/s")


if __name__ == "__main__":
    main()
