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
