"""The only module that talks to MongoDB for tickets: one ticket is one document, outbox included."""

import asyncio
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from contracts.envelope import utcnow
from contracts.models import Address
from hdkit.mongo import is_duplicate, outbox_fields, outbox_set
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from contracts import Envelope
from tickets.config import Config, default_config
from tickets.domain import Change, Mailbox
from tickets.keyset import decode_cursor, encode_cursor, sortable
from tickets.listcache import UNKNOWN, Seen, Write, Writes, changed, seen

# What a list row shows. Kept short on purpose: the store's cost of a page grows with every field read.
SUMMARY_FIELDS = {
    "number": 1,
    "title": 1,
    "status": 1,
    "status_category": 1,
    "priority": 1,
    "type": 1,
    "group": 1,
    "handler": 1,
    "channel": 1,
    "requester": 1,
    "created_at": 1,
    "updated_at": 1,
    "last_updated_by": 1,
    "last_customer_comment_at": 1,
    "version": 1,
}
# Bumped by every change of a ticket (Store.apply), unlike `version`, which only changes with the commands
# that name the version they read. A list row read at one revision is that row until the next (RowCache).
REVISION = "rev"
HIDDEN_FIELDS = {"outbox": 0, "outbox_since": 0, "applied": 0, REVISION: 0}
# Indexes of earlier releases; "message_ids" indexed an array, which the launcher's index contract forbids.
OBSOLETE_INDEXES = {"message_ids", "status_updated", "handler_status", "group_status", "requester"}
_VIEW_TAIL = [("updated_at", DESCENDING), ("number", DESCENDING)]
_CUSTOMER_TAIL = [("last_customer_comment_at", DESCENDING), ("number", DESCENDING)]
INDEXES: list[tuple[str, list[tuple[str, int]], bool]] = [
    # look-ups
    ("number", [("number", ASCENDING)], True),
    ("link_token", [("link_token", ASCENDING)], True),
    # queue views (access.VIEWS), for everyone and per group: equality fields first, then the sort
    ("phase_handler", [("phase", ASCENDING), ("handler", ASCENDING), *_VIEW_TAIL], False),
    ("phase_category", [("phase", ASCENDING), ("status_category", ASCENDING), *_VIEW_TAIL], False),
    ("phase", [("phase", ASCENDING), *_VIEW_TAIL], False),
    ("phase_customer", [("phase", ASCENDING), *_CUSTOMER_TAIL], False),
    ("updated", _VIEW_TAIL, False),
    ("group_phase_handler", [("group", ASCENDING), ("phase", ASCENDING), ("handler", ASCENDING), *_VIEW_TAIL], False),
    (
        "group_phase_category",
        [("group", ASCENDING), ("phase", ASCENDING), ("status_category", ASCENDING), *_VIEW_TAIL],
        False,
    ),
    ("group_phase", [("group", ASCENDING), ("phase", ASCENDING), *_VIEW_TAIL], False),
    ("group_phase_customer", [("group", ASCENDING), ("phase", ASCENDING), *_CUSTOMER_TAIL], False),
    ("group_updated", [("group", ASCENDING), *_VIEW_TAIL], False),
    ("type_phase", [("type", ASCENDING), ("phase", ASCENDING), *_VIEW_TAIL], False),
    ("type_group_phase", [("type", ASCENDING), ("group", ASCENDING), ("phase", ASCENDING), *_VIEW_TAIL], False),
    # customers: their own tickets, or their organisation's
    ("requester_updated", [("requester.email", ASCENDING), *_VIEW_TAIL], False),
    ("organisation", [("organisation", ASCENDING), *_VIEW_TAIL], False),
    ("requester_organisation", [("requester.email", ASCENDING), ("organisation", ASCENDING), *_VIEW_TAIL], False),
    # time rules (dormant wake-up, recurrence) find their due tickets without a scan
    ("wake_at", [("wake_at", ASCENDING), ("number", ASCENDING)], False),
    # statistics (stats.py): counts per day, channel and overdue SLA, for everyone and per group (phase first:
    # SQLite prefers an index with an equality, and would otherwise read every active ticket)
    ("created", [("created_at", ASCENDING)], False),
    ("group_created", [("group", ASCENDING), ("created_at", ASCENDING)], False),
    ("resolved_closed", [("resolved_at", ASCENDING), ("closed_at", ASCENDING)], False),
    ("group_resolved_closed", [("group", ASCENDING), ("resolved_at", ASCENDING), ("closed_at", ASCENDING)], False),
    ("channel_created", [("channel", ASCENDING), ("created_at", ASCENDING)], False),
    ("group_channel_created", [("group", ASCENDING), ("channel", ASCENDING), ("created_at", ASCENDING)], False),
    ("phase_sla_first_response_due", [("phase", ASCENDING), ("sla.first_response_due", ASCENDING)], False),
    (
        "group_phase_sla_first_response_due",
        [("group", ASCENDING), ("phase", ASCENDING), ("sla.first_response_due", ASCENDING)],
        False,
    ),
    ("phase_sla_resolution_due", [("phase", ASCENDING), ("sla.resolution_due", ASCENDING)], False),
    (
        "group_phase_sla_resolution_due",
        [("group", ASCENDING), ("phase", ASCENDING), ("sla.resolution_due", ASCENDING)],
        False,
    ),
]


class RowCache:
    """List rows of recently listed tickets, each kept with the revision it was read at (least recently used go).

    A queue page first reads only the keys of its rows (id, sort keys, revision), which the store answers
    without decoding whole tickets; the rows themselves are read only for tickets changed since this process
    last listed them. Every change of a ticket bumps its revision in the same write (`Store.apply`), so a
    kept row is never shown once its ticket changed, whichever process changed it.
    """

    def __init__(self, max_rows: int) -> None:
        self.max_rows = max_rows
        self._rows: OrderedDict[tuple[str, str], tuple[Any, dict[str, Any]]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        """Return how many rows are kept."""
        return len(self._rows)

    def get(self, ticket_id: str, revision: Any, shape: str) -> dict[str, Any] | None:
        """Return a copy of the row of a ticket at this revision with these fields (`shape`), if kept."""
        kept = self._rows.get((shape, ticket_id))
        if kept is None or kept[0] != revision:
            self.misses += 1
            return None
        self._rows.move_to_end((shape, ticket_id))
        self.hits += 1
        return dict(kept[1])

    def put(self, ticket_id: str, revision: Any, shape: str, row: dict[str, Any]) -> None:
        """Keep a row read at a revision (a copy), dropping the least recently used beyond `max_rows`."""
        if self.max_rows <= 0:
            return
        self._rows[(shape, ticket_id)] = (revision, dict(row))
        self._rows.move_to_end((shape, ticket_id))
        while len(self._rows) > self.max_rows:
            self._rows.popitem(last=False)


class Store:
    """Reads and writes the tickets service's collections."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]], *, list_rows_kept: int = 20_000) -> None:
        self.db = db
        self.tickets = db["tickets"]
        self.rows = RowCache(list_rows_kept)
        # Every ticket this process writes, noted once the write is done (or failed): the list cache
        # (listcache.py) drops the kept pages a write may change.
        self.writes = Writes()
        self.counters = db["counters"]
        self.mailboxes = db["mailboxes"]
        self.config = db["config"]
        self.message_index = db["message_ids"]
        self.ticket_templates = db["ticket_templates"]
        self.contacts = db["contacts"]

    async def ensure_indexes(self) -> None:
        """Create the indexes the queue views, look-ups and threading rely on (see INDEXES)."""
        existing = {doc["name"] async for doc in await self.tickets.list_indexes()}
        for name in OBSOLETE_INDEXES & existing:
            await self.tickets.drop_index(name)
        for name, keys, unique in INDEXES:
            await self.tickets.create_index(keys, name=name, unique=unique)

    async def seed_defaults(self, mailbox: Mailbox) -> None:
        """Insert the default configuration and mailbox unless they exist (never overwrites edits)."""
        config = default_config().model_dump(mode="json")
        await self.config.update_one(
            {"_id": "tickets"}, {"$setOnInsert": {"config": config, "version": 1}}, upsert=True
        )
        await self.mailboxes.update_one(
            {"_id": mailbox.address},
            {
                "$setOnInsert": {
                    "address": mailbox.address,
                    "name": mailbox.name,
                    "type": mailbox.type,
                    "group": mailbox.group,
                }
            },
            upsert=True,
        )

    async def load_config(self) -> tuple[Config, int]:
        """Return the ticket configuration and its version (the defaults before anything was saved)."""
        doc = await self.config.find_one({"_id": "tickets"})
        if doc is None:
            return default_config(), 0
        return Config.model_validate(doc["config"]), int(doc["version"])

    async def save_config(self, config: Config, *, expected_version: int) -> bool:
        """Replace the configuration if it is still at `expected_version`; tell whether it was saved."""
        data = config.model_dump(mode="json")
        if expected_version == 0:
            try:
                await self.config.insert_one({"_id": "tickets", "config": data, "version": 1})
            except Exception as exc:
                if is_duplicate(exc):
                    return False
                raise
            return True
        result = await self.config.update_one(
            {"_id": "tickets", "version": expected_version}, {"$set": {"config": data}, "$inc": {"version": 1}}
        )
        return result.modified_count == 1

    async def point_message_ids(self, ticket_id: str, ids: list[str]) -> None:
        """Make these Message-IDs lead to a ticket (the survivor of a merge)."""
        for message_id in ids:
            await self.message_index.update_one({"_id": message_id}, {"$set": {"ticket_id": ticket_id}}, upsert=True)

    async def purge_deleted(self, ticket_id: str | None = None) -> int:
        """Remove deleted tickets whose last events are out (one, or every one a crash left behind)."""
        query: dict[str, Any] = {"phase": "deleted"} if ticket_id is None else {"_id": ticket_id, "phase": "deleted"}
        removed = 0
        async for doc in self.tickets.find(query, {"outbox": 1}):
            if not doc.get("outbox"):
                try:
                    removed += (await self.tickets.delete_one({"_id": doc["_id"], "outbox": {}})).deleted_count
                finally:  # as insert_ticket; what lists can tell of it: it was deleted
                    self.writes.note(Write(doc["_id"], Seen({"phase": "deleted"}, None), None, None))
        return removed

    async def templates(self) -> dict[str, dict[str, Any]]:
        """Return the ticket templates by key."""
        return {doc["_id"]: doc async for doc in self.ticket_templates.find({})}

    async def save_template(self, key: str, template: dict[str, Any]) -> None:
        """Create or replace a ticket template."""
        await self.ticket_templates.replace_one({"_id": key}, {"_id": key, **template}, upsert=True)

    async def delete_template(self, key: str) -> bool:
        """Delete a ticket template; tell whether it existed."""
        return (await self.ticket_templates.delete_one({"_id": key})).deleted_count == 1

    async def contact_seen(self, address: Address) -> None:
        """Make a sender a contact the first time they write (their display name kept); never overwrites."""
        now = utcnow()
        await self.contacts.update_one(
            {"_id": address.email.lower()},
            {"$setOnInsert": {"email": address.email.lower(), "name": address.name, "created_at": now}},
            upsert=True,
        )

    async def mark_undeliverable(
        self, address: str, problem: dict[str, Any], *, event_id: str, outbox: list[tuple[str, Envelope]]
    ) -> bool:
        """Mark an address undeliverable once per report, with its outbox (contact made if unknown).

        Tell whether it was marked: False when this report (`event_id`) was applied already, even if an agent
        has lifted the mark since, so a redelivered report never marks the address again.
        """
        query = {"_id": address.lower(), "undeliverable_event": {"$ne": event_id}}
        update: dict[str, Any] = {
            "$set": {"undeliverable": problem, "undeliverable_event": event_id, **outbox_set(outbox)},
            "$unset": {"lifted": ""},
        }
        insert = {"$setOnInsert": {"email": address.lower(), "name": "", "created_at": problem["since"]}}
        try:
            await self.contacts.update_one(query, {**update, **insert}, upsert=True)
        except Exception as exc:
            if not is_duplicate(exc):
                raise
            # The contact exists and either has this report already, or was made meanwhile by another write.
            return (await self.contacts.update_one(query, update)).modified_count == 1
        return True

    async def contact(self, address: str) -> dict[str, Any] | None:
        """Return a contact by address (without its outbox)."""
        return await self.contacts.find_one({"_id": address.lower()}, {"outbox": 0, "outbox_since": 0})

    async def set_deliverable(
        self,
        address: str,
        *,
        event_id: str | None,
        lifted: dict[str, Any],
        outbox: list[tuple[str, Envelope]],
    ) -> bool:
        """Lift the undeliverable mark a report (`event_id`) set, with its outbox; tell whether it was lifted."""
        result = await self.contacts.update_one(
            {"_id": address.lower(), "undeliverable": {"$exists": True}, "undeliverable_event": event_id},
            {"$unset": {"undeliverable": ""}, "$set": {"lifted": lifted, **outbox_set(outbox)}},
        )
        return result.modified_count == 1

    async def next_number(self) -> int:
        """Return the next ticket number (atomic, sequential)."""
        doc = await self.counters.find_one_and_update(
            {"_id": "ticket_number"},
            {"$inc": {"value": 1}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        assert doc is not None  # noqa: S101 - upsert always returns the document
        return int(doc["value"])

    async def insert_ticket(self, doc: dict[str, Any], outbox: list[tuple[str, Envelope]]) -> None:
        """Insert a new ticket with its outbox (DuplicateKeyError if it exists)."""
        try:
            await self.tickets.insert_one({**doc, **outbox_fields(outbox)})
        finally:  # after the write (a page read meanwhile is looked at again), even one that failed: it may have landed
            self.writes.note(Write(doc["_id"], None, seen(doc), None))

    async def get(self, ticket_id: str) -> dict[str, Any] | None:
        """Return a ticket by id."""
        return await self.tickets.find_one({"_id": ticket_id})

    async def by_number(self, number: int) -> dict[str, Any] | None:
        """Return a ticket by number."""
        return await self.tickets.find_one({"number": number})

    async def by_message_ids(self, ids: list[str]) -> tuple[dict[str, Any] | None, str | None]:
        """Return the ticket that has seen one of these Message-IDs (latest id first), and which id."""
        for message_id in reversed(ids):
            entry = await self.message_index.find_one({"_id": message_id})
            if entry is not None and (doc := await self.get(entry["ticket_id"])) is not None:
                return doc, message_id
        return None, None

    async def remember_message_ids(self, ticket_id: str, ids: list[str]) -> None:
        """Record which ticket these Message-IDs belong to (the first ticket to claim one keeps it).

        Written before the ticket itself changes, so a crash in between leaves at worst an entry that points
        at the ticket the mail was going to anyway.
        """
        for message_id in ids:
            await self.message_index.update_one(
                {"_id": message_id}, {"$setOnInsert": {"ticket_id": ticket_id}}, upsert=True
            )

    async def apply(
        self,
        ticket_id: str,
        change: Change,
        *,
        event_id: str,
        outbox: list[tuple[str, Envelope]],
        before: Mapping[str, Any] | None = None,
    ) -> bool:
        """Apply a change once per event id; tell whether it applied.

        `before` is the ticket as the caller read it: the change then applies only if the ticket is still at
        that version (and bumps it), and the list cache keeps the pages this change cannot reach. Without it
        the change applies whatever the version, and the list cache keeps only the pages the change's fields
        cannot reach.
        """
        query: dict[str, Any] = {"_id": ticket_id, "applied": {"$ne": event_id}}
        update: dict[str, Any] = {"$push": {"applied": event_id}, "$inc": {REVISION: 1}}
        if before is not None:
            query["version"] = before["version"]
            update["$inc"]["version"] = 1
        for key, values in change.push.items():
            if values:
                update["$push"][key] = {"$each": values}
        add = {key: {"$each": values} for key, values in change.add_to_set.items() if values}
        if add:
            update["$addToSet"] = add
        fields = {**change.set_fields, **outbox_set(outbox)}
        if fields:
            update["$set"] = fields
        if change.pull:
            update["$pull"] = dict(change.pull)
        try:
            result = await self.tickets.update_one(query, update)
        finally:  # as insert_ticket
            self.writes.note(_write_of(ticket_id, update, change, before))
        return result.modified_count == 1

    async def mailbox(self, address: str) -> Mailbox | None:
        """Return a mailbox by address."""
        doc = await self.mailboxes.find_one({"_id": address.lower()})
        if doc is None:
            return None
        return Mailbox(
            address=doc["address"], name=doc.get("name", "Support"), type=doc["type"], group=doc.get("group")
        )

    async def list_mailboxes(self) -> list[dict[str, Any]]:
        """Return every mailbox."""
        return [
            {k: v for k, v in doc.items() if k != "_id"} async for doc in self.mailboxes.find({}).sort("address", 1)
        ]

    async def put_mailbox(self, mailbox: Mailbox) -> None:
        """Create or replace a mailbox (its address is its id, lower-cased)."""
        address = mailbox.address.lower()
        doc = {"address": address, "name": mailbox.name, "type": mailbox.type, "group": mailbox.group}
        await self.mailboxes.replace_one({"_id": address}, {"_id": address, **doc}, upsert=True)

    async def delete_mailbox(self, address: str) -> bool:
        """Delete a mailbox; tell whether there was one."""
        result = await self.mailboxes.delete_one({"_id": address.lower()})
        return result.deleted_count == 1

    async def page(
        self,
        filters: list[dict[str, Any]],
        *,
        sort: str,
        limit: int,
        cursor: str | None,
        projection: dict[str, int] | None = None,
        oldest_first: bool = False,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Return one page, newest `sort` value first, of the union of `filters`, and the next page's cursor.

        Keyset pagination on (sort field, number), both descending. Each filter is asked separately with
        two index-ordered queries at once (ties of the cursor's value, then older values) and the pages are merged,
        so an agent's several groups never make the store sort a whole queue. Those queries read only each
        row's keys (id, sort keys, revision); the page's rows then come from `rows` (RowCache), and only the
        tickets changed since they were last listed here are read with their page fields, by id.
        `oldest_first` walks the same indexes backwards (both keys ascending), so it costs the same.
        """
        after = decode_cursor(cursor) if cursor else None
        keys = {"_id": 1, "number": 1, sort: 1, REVISION: 1}
        direction, beyond = (ASCENDING, "$gt") if oldest_first else (DESCENDING, "$lt")
        order = [(sort, direction), ("number", direction)]
        found: dict[str, dict[str, Any]] = {}

        async def keys_of(part: dict[str, Any]) -> list[dict[str, Any]]:
            return [doc async for doc in self.tickets.find(part, keys).sort(order).limit(limit + 1)]

        parts = filters
        if after is not None:
            # the ties of the cursor's value, and the values beyond it: asked at once (the ties are few or none)
            value, number = after
            parts = [
                part
                for query in filters
                for part in ({**query, sort: value, "number": {beyond: number}}, {**query, sort: {beyond: value}})
            ]
        for rows in await asyncio.gather(*(keys_of(part) for part in parts)):
            found.update((doc["_id"], doc) for doc in rows)
        heads = sorted(found.values(), key=lambda d: (sortable(d.get(sort)), d["number"]), reverse=not oldest_first)
        more = len(heads) > limit
        heads = heads[:limit]
        docs = await self._rows_of(heads, {**(projection or SUMMARY_FIELDS), sort: 1, "number": 1})
        return docs, encode_cursor(heads[-1].get(sort), heads[-1]["number"]) if more and heads else None

    async def _rows_of(self, heads: list[dict[str, Any]], fields: dict[str, int]) -> list[dict[str, Any]]:
        """Return the rows of these tickets (keys read by `page`) in their order: kept ones, the rest read."""
        shape = ",".join(sorted(fields))
        rows = {head["_id"]: self.rows.get(head["_id"], head.get(REVISION), shape) for head in heads}
        missing = [ticket_id for ticket_id, row in rows.items() if row is None]
        if missing:
            async for doc in self.tickets.find({"_id": {"$in": missing}}, {**fields, REVISION: 1}):
                revision = doc.pop(REVISION, None)  # newer than the key's if it changed meanwhile: shown as read
                self.rows.put(doc["_id"], revision, shape, doc)
                rows[doc["_id"]] = doc
        # a ticket deleted between the two reads is left out
        return [row for head in heads if (row := rows[head["_id"]]) is not None]

    async def count(self, filters: list[dict[str, Any]]) -> int:
        """Count tickets matching any of `filters` (disjoint by construction); index-only on the store."""
        results = await asyncio.gather(*(self.db.command("count", self.tickets.name, query=query) for query in filters))
        return sum(int(result["n"]) for result in results)

    async def detail(self, query: dict[str, Any]) -> dict[str, Any] | None:
        """Return one whole ticket (without its outbox) matching a query."""
        return await self.tickets.find_one(query, HIDDEN_FIELDS)


def _write_of(ticket_id: str, update: dict[str, Any], change: Change, before: Mapping[str, Any] | None) -> Write:
    """Return what an update does to a ticket as lists see it (see listcache.py)."""
    touched = frozenset(key.partition(".")[0] for operator in update.values() for key in operator)
    if before is None:
        return Write(ticket_id, UNKNOWN, UNKNOWN, touched)
    old = seen(before)
    return Write(ticket_id, old, changed(old, change.set_fields, touched - change.set_fields.keys()), touched)
