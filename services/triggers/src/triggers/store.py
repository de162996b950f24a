"""The only module of triggers that talks to MongoDB: rules, and the log of firings with their outbox."""

from collections.abc import Sequence
from typing import Any

from contracts.envelope import utcnow
from hdkit.mongo import OUTBOX_SINCE
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from triggers.domain import Rule

_META = ("_id", "updated_at", "created_at")


def rule_from_doc(doc: dict[str, Any]) -> Rule:
    """Read a rule document back into a `Rule`."""
    return Rule.model_validate({"id": doc["_id"], **{k: v for k, v in doc.items() if k not in _META}})


def rule_to_doc(rule: Rule) -> dict[str, Any]:
    """Return the stored fields of a rule (without `_id`)."""
    body = rule.model_dump(mode="json")
    body.pop("id")
    return body


class Store:
    """Rules (`rules`, `_id` = rule id) and one record per handled event (`firings`, `_id` = event id)."""

    def __init__(self, db: Any) -> None:
        self.rules: AsyncCollection[dict[str, Any]] = db["rules"]
        self.collection: AsyncCollection[dict[str, Any]] = db["firings"]

    async def ensure_indexes(self) -> None:
        """Create the indexes the queries need."""
        await self.collection.create_index([("ticket_id", ASCENDING), ("handled_at", DESCENDING)], name="ticket")
        await self.collection.create_index([(OUTBOX_SINCE, ASCENDING)], name="outbox_since")  # the sweeper's
        await self.rules.create_index([("active", ASCENDING)], name="active")

    async def active_rules(self) -> list[Rule]:
        """Return the active rules, in name order."""
        return [rule_from_doc(d) async for d in self.rules.find({"active": True}).sort([("name", ASCENDING)])]

    async def all_rules(self) -> list[Rule]:
        """Return every rule, in name order."""
        return [rule_from_doc(d) async for d in self.rules.find({}).sort([("name", ASCENDING)])]

    async def get_rule(self, rule_id: str) -> Rule | None:
        """Return one rule, or None."""
        doc = await self.rules.find_one({"_id": rule_id})
        return rule_from_doc(doc) if doc else None

    async def put_rule(self, rule: Rule) -> Rule:
        """Create or replace a rule."""
        now = utcnow()
        await self.rules.update_one(
            {"_id": rule.id},
            {"$set": {**rule_to_doc(rule), "updated_at": now}, "$setOnInsert": {"created_at": now}},
            upsert=True,
        )
        return rule

    async def set_active(self, rule_id: str, active: bool | None) -> Rule | None:
        """Switch a rule on or off (None: flip it); return it, or None when there is no such rule."""
        if active is None:
            current = await self.get_rule(rule_id)
            if current is None:
                return None
            active = not current.active
        doc = await self.rules.find_one_and_update(
            {"_id": rule_id},
            {"$set": {"active": active, "updated_at": utcnow()}},
            return_document=ReturnDocument.AFTER,
        )
        return rule_from_doc(doc) if doc else None

    async def delete_rule(self, rule_id: str) -> bool:
        """Delete a rule; tell whether it existed."""
        result = await self.rules.delete_one({"_id": rule_id})
        return result.deleted_count == 1

    async def seed_rules(self, rules: Sequence[Rule]) -> int:
        """Insert the rules that do not exist yet (edits an admin made are kept); return how many were new."""
        added = 0
        now = utcnow()
        for rule in rules:
            result = await self.rules.update_one(
                {"_id": rule.id},
                {"$setOnInsert": {**rule_to_doc(rule), "created_at": now, "updated_at": now}},
                upsert=True,
            )
            added += 1 if result.upserted_id is not None else 0
        return added

    async def add_firing(self, doc: dict[str, Any]) -> bool:
        """Insert the record of a handled event with its outbox; False when the event was handled before."""
        try:
            await self.collection.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    async def get_firing(self, event_id: str) -> dict[str, Any] | None:
        """Return the record of a handled event, with whatever outbox is left."""
        return await self.collection.find_one({"_id": event_id})

    async def firings_for_ticket(self, ticket_id: str, limit: int = 100) -> list[dict[str, Any]]:
        """Return the firing records of one ticket, newest first (without outbox)."""
        cursor = (
            self.collection.find({"ticket_id": ticket_id}, {"outbox": 0, "outbox_since": 0})
            .sort([("handled_at", DESCENDING)])
            .limit(limit)
        )
        return [d async for d in cursor]
