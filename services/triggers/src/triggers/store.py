"""The only module of triggers that talks to MongoDB: rules, and the log of firings with their outbox."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from contracts.envelope import utcnow
from hdkit.mongo import OUTBOX_SINCE
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from triggers.calendar import BusinessCalendar
from triggers.domain import CallWebhook, Rule
from triggers.sla import SlaPolicy

_META = ("_id", "updated_at", "created_at")


def rule_from_doc(doc: dict[str, Any]) -> Rule:
    """Read a rule document back into a `Rule`."""
    return Rule.model_validate({"id": doc["_id"], **{k: v for k, v in doc.items() if k not in _META}})


def rule_to_doc(rule: Rule) -> dict[str, Any]:
    """Return the stored fields of a rule (without `_id`), webhook secrets in clear (the API masks them)."""
    body = rule.model_dump(mode="json", by_alias=True)
    body.pop("id")
    for index, action in enumerate(rule.actions):
        if isinstance(action, CallWebhook):
            body["actions"][index]["secret"] = action.secret.get_secret_value()
    return body


class Store:
    """Rules, one record per handled event (`firings`), the latest snapshot of each ticket, round-robin counters."""

    def __init__(self, db: Any) -> None:
        self.rules: AsyncCollection[dict[str, Any]] = db["rules"]
        self.collection: AsyncCollection[dict[str, Any]] = db["firings"]
        self.tickets: AsyncCollection[dict[str, Any]] = db["tickets"]
        self.rotations: AsyncCollection[dict[str, Any]] = db["rotations"]
        self.timers: AsyncCollection[dict[str, Any]] = db["timers"]
        self.calendars: AsyncCollection[dict[str, Any]] = db["calendars"]
        self.sla_policies: AsyncCollection[dict[str, Any]] = db["sla_policies"]
        self.sla: AsyncCollection[dict[str, Any]] = db["sla"]

    async def ensure_indexes(self) -> None:
        """Create the indexes the queries need."""
        await self.collection.create_index([("ticket_id", ASCENDING), ("handled_at", DESCENDING)], name="ticket")
        await self.collection.create_index([("handled_at", ASCENDING)], name="handled_at")  # dry runs, purge
        await self.collection.create_index([(OUTBOX_SINCE, ASCENDING)], name="outbox_since")  # the sweeper's
        await self.rules.create_index([("active", ASCENDING)], name="active")
        await self.tickets.create_index([("seen_at", ASCENDING)], name="seen_at")  # dry runs of time rules

    # ------------------------------------------------------------------------------- calendars, SLA policies

    async def all_calendars(self) -> list[BusinessCalendar]:
        """Return every stored business-hours calendar, by id."""
        return [
            BusinessCalendar.model_validate({"id": d["_id"], **{k: v for k, v in d.items() if k not in _META}})
            async for d in self.calendars.find({}).sort([("_id", ASCENDING)])
        ]

    async def put_calendar(self, calendar: BusinessCalendar) -> None:
        """Create or replace a calendar."""
        body = calendar.model_dump(mode="json", exclude={"id"})
        await self.calendars.replace_one({"_id": calendar.id}, {**body, "updated_at": utcnow()}, upsert=True)

    async def delete_calendar(self, calendar_id: str) -> bool:
        """Delete a calendar; tell whether it existed."""
        return (await self.calendars.delete_one({"_id": calendar_id})).deleted_count == 1

    async def all_policies(self) -> list[SlaPolicy]:
        """Return every SLA policy, by id."""
        return [
            SlaPolicy.model_validate({"id": d["_id"], **{k: v for k, v in d.items() if k not in _META}})
            async for d in self.sla_policies.find({}).sort([("_id", ASCENDING)])
        ]

    async def put_policy(self, policy: SlaPolicy) -> None:
        """Create or replace an SLA policy."""
        body = policy.model_dump(mode="json", exclude={"id"})
        await self.sla_policies.replace_one({"_id": policy.id}, {**body, "updated_at": utcnow()}, upsert=True)

    async def delete_policy(self, policy_id: str) -> bool:
        """Delete an SLA policy; tell whether it existed."""
        return (await self.sla_policies.delete_one({"_id": policy_id})).deleted_count == 1

    # ------------------------------------------------------------------------------- ticket snapshots

    async def save_ticket(self, ticket: dict[str, Any], at: datetime) -> dict[str, Any]:
        """Keep the latest snapshot of a ticket; return the event's snapshot with `status_since` and its timers.

        `status_since` is when the ticket took its present status (time rules age from it). An older
        snapshot (a redelivered event) is returned enriched but does not replace a newer one.
        """
        ticket_id = ticket["ticket_id"]
        stored = await self.tickets.find_one({"_id": ticket_id})
        since: Any = ticket.get("updated_at") or at
        timers: dict[str, str] = {}
        if stored is not None:
            timers = stored.get("rule_timers") or {}
            if stored["ticket"].get("status") == ticket.get("status"):
                since = stored.get("status_since") or since
        extra = _projected(stored) if stored is not None else {}
        enriched = {
            **ticket,
            "status_since": _iso(since),
            "_rule_timers": timers,
            **{k: v for k, v in extra.items() if k.startswith("_sla")},
        }
        if stored is None or int(stored.get("version", 0)) <= int(ticket.get("version", 0)):
            await self.tickets.update_one(
                {"_id": ticket_id},
                {
                    "$set": {
                        "ticket": ticket,
                        "status_since": _iso(since),
                        "version": int(ticket.get("version", 0)),
                        "seen_at": utcnow(),
                    }
                },
                upsert=True,
            )
        return enriched

    async def get_ticket(self, ticket_id: str) -> dict[str, Any] | None:
        """Return the latest snapshot of a ticket with `status_since` and its timers, or None."""
        stored = await self.tickets.find_one({"_id": ticket_id})
        if stored is None:
            return None
        return _projected(stored)

    async def set_rule_timers(self, ticket_id: str, timers: dict[str, str]) -> None:
        """Remember which time rules have a timer for a ticket, and when."""
        await self.tickets.update_one({"_id": ticket_id}, {"$set": {"rule_timers": timers}})

    async def tickets_seen_since(self, since: datetime, limit: int) -> list[dict[str, Any]]:
        """Return snapshots of tickets with events since a moment, oldest first (dry runs of time rules)."""
        cursor = self.tickets.find({"seen_at": {"$gte": since}}).sort([("seen_at", ASCENDING)]).limit(limit)
        return [_projected(d) async for d in cursor]

    async def open_tickets(self, batch: int = 500) -> Any:
        """Yield the snapshot of every ticket not closed (to give a new time rule its timers)."""
        cursor = self.tickets.find({"ticket.status_category": {"$ne": "closed"}}).batch_size(batch)
        async for d in cursor:
            yield _projected(d)

    async def set_sla(self, ticket_id: str, state: dict[str, Any], timers: list[str], due: dict[str, Any]) -> None:
        """Remember a ticket's SLA clocks, the ids of its SLA timers and its due times."""
        await self.tickets.update_one(
            {"_id": ticket_id}, {"$set": {"sla_state": state, "sla_timers": timers, "sla_due": due}}
        )

    async def next_in_rotation(self, group: str) -> int:
        """Return the next number of a group's round-robin counter (1, 2, 3 ...)."""
        doc = await self.rotations.find_one_and_update(
            {"_id": group}, {"$inc": {"turn": 1}}, upsert=True, return_document=ReturnDocument.AFTER
        )
        return int(doc["turn"]) if doc else 1

    async def mark_webhooks_scheduled(self, event_id: str) -> None:
        """Note that a firing record's webhook calls have their timers."""
        await self.collection.update_one({"_id": event_id}, {"$set": {"webhooks_scheduled": True}})

    async def firings_since(self, since: datetime, event: str, limit: int) -> list[dict[str, Any]]:
        """Return the records of events of one kind handled since a moment, oldest first (dry runs)."""
        cursor = (
            self.collection.find({"handled_at": {"$gte": since}}, {"outbox": 0})
            .sort([("handled_at", ASCENDING)])
            .limit(limit)
        )
        return [d async for d in cursor if d.get("event") == event]

    async def purge_firings(self, before: datetime) -> int:
        """Delete firing records handled before a moment whose outbox is empty; return how many."""
        # an emptied outbox has no `outbox_since`; a record still holding commands is kept until they go out
        result = await self.collection.delete_many({"handled_at": {"$lt": before}, OUTBOX_SINCE: {"$exists": False}})
        return result.deleted_count

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
            # webhook calls carry their signing secret; the replayable event copy is for dry runs only
            self.collection.find({"ticket_id": ticket_id}, {"outbox": 0, "outbox_since": 0, "webhooks": 0, "data": 0})
            .sort([("handled_at", DESCENDING)])
            .limit(limit)
        )
        return [d async for d in cursor]


def _iso(moment: Any) -> str:
    return moment.isoformat() if isinstance(moment, datetime) else str(moment)


def _projected(doc: dict[str, Any]) -> dict[str, Any]:
    """Return a stored snapshot as rules see it: the ticket with `status_since`, its timers and SLA clocks."""
    return {
        **doc["ticket"],
        "status_since": doc.get("status_since"),
        "_rule_timers": doc.get("rule_timers") or {},
        "_sla_state": doc.get("sla_state"),
        "_sla_timers": doc.get("sla_timers") or [],
        "_sla_due": doc.get("sla_due") or {},
    }
