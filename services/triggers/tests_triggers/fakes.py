"""In-memory stand-ins for the store, the outbox collection and the Kafka publisher."""

import copy
from collections.abc import Sequence
from typing import Any

from hdkit.testing import FakePublisher, OutboxCollection  # noqa: F401 - re-exported for the tests
from triggers.domain import Rule


class FakeStore:
    """Same methods as `triggers.store.Store`, in memory."""

    def __init__(self, rules: Sequence[Rule] = ()) -> None:
        self.rule_docs: dict[str, Rule] = {r.id: r for r in rules}
        self.collection = OutboxCollection()
        self.rule_loads = 0

    async def ensure_indexes(self) -> None:
        return None

    async def active_rules(self) -> list[Rule]:
        self.rule_loads += 1
        return sorted((r for r in self.rule_docs.values() if r.active), key=lambda r: r.name)

    async def all_rules(self) -> list[Rule]:
        return sorted(self.rule_docs.values(), key=lambda r: r.name)

    async def get_rule(self, rule_id: str) -> Rule | None:
        return self.rule_docs.get(rule_id)

    async def put_rule(self, rule: Rule) -> Rule:
        self.rule_docs[rule.id] = rule
        return rule

    async def set_active(self, rule_id: str, active: bool | None) -> Rule | None:
        rule = self.rule_docs.get(rule_id)
        if rule is None:
            return None
        rule = rule.model_copy(update={"active": (not rule.active) if active is None else active})
        self.rule_docs[rule_id] = rule
        return rule

    async def delete_rule(self, rule_id: str) -> bool:
        return self.rule_docs.pop(rule_id, None) is not None

    async def seed_rules(self, rules: Sequence[Rule]) -> int:
        new = [r for r in rules if r.id not in self.rule_docs]
        for r in new:
            self.rule_docs[r.id] = r
        return len(new)

    async def add_firing(self, doc: dict[str, Any]) -> bool:
        if doc["_id"] in self.collection.docs:
            return False
        self.collection.docs[doc["_id"]] = copy.deepcopy(doc)
        return True

    async def get_firing(self, event_id: str) -> dict[str, Any] | None:
        return await self.collection.find_one({"_id": event_id})

    async def firings_for_ticket(self, ticket_id: str, limit: int = 100) -> list[dict[str, Any]]:
        docs = [copy.deepcopy(d) for d in self.collection.docs.values() if d["ticket_id"] == ticket_id]
        for d in docs:
            d.pop("outbox", None)
            d.pop("outbox_since", None)
        return docs[:limit]


class FakeTriggerStore(FakeStore):
    """The rest of `triggers.store.Store` in memory: ticket snapshots, round-robin counters, webhook marks."""

    def __init__(self, rules: Sequence[Rule] = ()) -> None:
        super().__init__(rules)
        self.tickets: dict[str, dict[str, Any]] = {}
        self.turns: dict[str, int] = {}
        self.timers = None  # no scheduler on the fakes

    async def all_calendars(self) -> list[Any]:
        return []

    async def all_policies(self) -> list[Any]:
        return []

    async def purge_firings(self, before: Any) -> int:
        return 0

    async def save_ticket(self, ticket: dict[str, Any], at: Any) -> dict[str, Any]:
        stored = self.tickets.get(ticket["ticket_id"])
        since = ticket.get("updated_at") or at
        timers: dict[str, str] = {}
        extra: dict[str, Any] = {}
        if stored is not None:
            extra = {k: v for k, v in stored.items() if k.startswith("_sla")}
            timers = stored.get("_rule_timers", {})
            if stored.get("status") == ticket.get("status"):
                since = stored["status_since"]
        since = since.isoformat() if hasattr(since, "isoformat") else since
        enriched = {**copy.deepcopy(ticket), "status_since": since, "_rule_timers": dict(timers), **extra}
        if stored is None or stored.get("version", 0) <= ticket.get("version", 0):
            self.tickets[ticket["ticket_id"]] = copy.deepcopy(enriched)
        return enriched

    async def get_ticket(self, ticket_id: str) -> dict[str, Any] | None:
        found = self.tickets.get(ticket_id)
        return copy.deepcopy(found) if found else None

    async def set_rule_timers(self, ticket_id: str, timers: dict[str, str]) -> None:
        if ticket_id in self.tickets:
            self.tickets[ticket_id]["_rule_timers"] = dict(timers)

    async def set_sla(self, ticket_id: str, state: dict[str, Any], timers: list[str], due: dict[str, Any]) -> None:
        if ticket_id in self.tickets:
            self.tickets[ticket_id].update(_sla_state=state, _sla_timers=list(timers), _sla_due=dict(due))

    async def next_in_rotation(self, group: str) -> int:
        self.turns[group] = self.turns.get(group, 0) + 1
        return self.turns[group]

    async def mark_webhooks_scheduled(self, event_id: str) -> None:
        self.collection.docs[event_id]["webhooks_scheduled"] = True


class FakeTimers:
    """The scheduler's `schedule`/`cancel` in memory."""

    def __init__(self) -> None:
        self.timers: dict[str, dict[str, Any]] = {}

    async def schedule(self, timer_id: str, due_at: Any, kind: str, payload: dict[str, Any]) -> None:
        self.timers[timer_id] = {"due_at": due_at, "kind": kind, "payload": dict(payload)}

    async def cancel(self, timer_id: str) -> bool:
        return self.timers.pop(timer_id, None) is not None


class FakeStaff:
    """A staff directory from a list of members."""

    def __init__(self, members: Sequence[Any] = ()) -> None:
        self.list = list(members)

    async def by_id(self, user_id: str) -> Any:
        return next((m for m in self.list if m.id == user_id), None)

    async def members(self, group: str) -> list[Any]:
        return sorted((m for m in self.list if group in m.groups), key=lambda m: m.id)
