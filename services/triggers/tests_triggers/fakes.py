"""In-memory stand-ins for the store, the outbox collection and the Kafka publisher."""

import copy
from collections.abc import Sequence
from typing import Any

from triggers.domain import Rule

from contracts import Envelope


class OutboxCollection:
    """The few collection methods `hdkit.mongo.OutboxRelay.flush` uses, over a dict of documents."""

    def __init__(self) -> None:
        self.docs: dict[Any, dict[str, Any]] = {}
        self.name = "fake"

    async def find_one(self, flt: dict[str, Any], projection: Any = None) -> dict[str, Any] | None:
        doc = self.docs.get(flt["_id"])
        return copy.deepcopy(doc) if doc else None

    async def update_one(self, flt: dict[str, Any], update: dict[str, Any]) -> None:
        doc = self.docs.get(flt["_id"])
        if doc is None:
            return
        if "outbox" in flt and doc.get("outbox") != flt["outbox"]:
            return
        for key in update.get("$unset", {}):
            *path, last = key.split(".")
            target = doc
            for part in path:
                target = target.get(part, {})
            target.pop(last, None)


class FakePublisher:
    """Records what would have gone to Kafka; can be told to fail the next publishes."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Envelope]] = []
        self.fail_next = 0

    async def publish(self, topic: str, envelope: Envelope) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise ConnectionError("broker away")
        self.sent.append((topic, envelope))

    async def publish_many(self, items: list[tuple[str, Envelope]]) -> None:
        for topic, envelope in items:
            await self.publish(topic, envelope)


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
