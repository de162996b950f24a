"""The only module that talks to MongoDB for tickets: one ticket is one document, outbox included."""

import base64
import json
from datetime import datetime
from typing import Any

from hdkit.mongo import outbox_fields, outbox_set
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from contracts import Envelope
from tickets.domain import DEFAULT_SETTINGS, DEFAULT_TYPES, Change, Mailbox

SUMMARY_FIELDS = {
    "number": 1,
    "title": 1,
    "status": 1,
    "priority": 1,
    "type": 1,
    "group": 1,
    "handler": 1,
    "channel": 1,
    "mailbox": 1,
    "requester": 1,
    "created_at": 1,
    "updated_at": 1,
    "last_customer_comment_at": 1,
    "version": 1,
}
HIDDEN_FIELDS = {"outbox": 0, "outbox_since": 0, "applied": 0}


class Store:
    """Reads and writes the tickets service's collections."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.db = db
        self.tickets = db["tickets"]
        self.counters = db["counters"]
        self.mailboxes = db["mailboxes"]
        self.config = db["config"]
        self.types = db["ticket_types"]

    async def ensure_indexes(self) -> None:
        """Create the indexes queries and threading rely on."""
        t = self.tickets
        await t.create_index([("number", ASCENDING)], name="number", unique=True)
        await t.create_index([("message_ids", ASCENDING)], name="message_ids")
        await t.create_index([("updated_at", DESCENDING), ("number", DESCENDING)], name="updated")
        await t.create_index([("status", ASCENDING), ("updated_at", DESCENDING)], name="status_updated")
        await t.create_index([("handler", ASCENDING), ("status", ASCENDING)], name="handler_status")
        await t.create_index([("group", ASCENDING), ("status", ASCENDING)], name="group_status")
        await t.create_index([("requester.email", ASCENDING)], name="requester")
        await t.create_index([("link_token", ASCENDING)], name="link_token", unique=True)

    async def seed_defaults(self, mailbox: Mailbox) -> None:
        """Insert the default ticket types, settings and mailbox unless they exist (never overwrites edits)."""
        for ticket_type in DEFAULT_TYPES:
            await self.types.update_one({"_id": ticket_type["key"]}, {"$setOnInsert": ticket_type}, upsert=True)
        await self.config.update_one({"_id": "global"}, {"$setOnInsert": DEFAULT_SETTINGS}, upsert=True)
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
        await self.tickets.insert_one({**doc, **outbox_fields(outbox)})

    async def get(self, ticket_id: str) -> dict[str, Any] | None:
        """Return a ticket by id."""
        return await self.tickets.find_one({"_id": ticket_id})

    async def by_number(self, number: int) -> dict[str, Any] | None:
        """Return a ticket by number."""
        return await self.tickets.find_one({"number": number})

    async def by_message_ids(self, ids: list[str]) -> tuple[dict[str, Any] | None, str | None]:
        """Return the ticket that has seen one of these Message-IDs (latest id first), and which id."""
        for message_id in reversed(ids):
            doc = await self.tickets.find_one({"message_ids": message_id})
            if doc is not None:
                return doc, message_id
        return None, None

    async def apply(
        self,
        ticket_id: str,
        change: Change,
        *,
        event_id: str,
        outbox: list[tuple[str, Envelope]],
        expected_version: int | None,
    ) -> bool:
        """Apply a change once per event id, if the ticket is still at `expected_version`; tell whether it applied."""
        query: dict[str, Any] = {"_id": ticket_id, "applied": {"$ne": event_id}}
        update: dict[str, Any] = {"$push": {"applied": event_id}}
        if expected_version is not None:
            query["version"] = expected_version
            update["$inc"] = {"version": 1}
        for key, values in change.push.items():
            if values:
                update["$push"][key] = {"$each": values}
        add = {key: {"$each": values} for key, values in change.add_to_set.items() if values}
        if add:
            update["$addToSet"] = add
        fields = {**change.set_fields, **outbox_set(outbox)}
        if fields:
            update["$set"] = fields
        result = await self.tickets.update_one(query, update)
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

    async def settings(self) -> dict[str, Any]:
        """Return the global settings."""
        return await self.config.find_one({"_id": "global"}) or dict(DEFAULT_SETTINGS)

    async def list_tickets(
        self, query: dict[str, Any], *, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Return one page of ticket summaries, newest update first, and the cursor of the next page."""
        if cursor:
            updated_at, number = decode_cursor(cursor)
            query = {
                "$and": [
                    query,
                    {
                        "$or": [
                            {"updated_at": {"$lt": updated_at}},
                            {"updated_at": updated_at, "number": {"$lt": number}},
                        ]
                    },
                ]
            }
        found = self.tickets.find(query, SUMMARY_FIELDS).sort([("updated_at", DESCENDING), ("number", DESCENDING)])
        docs = [doc async for doc in found.limit(limit + 1)]
        more = len(docs) > limit
        docs = docs[:limit]
        return docs, encode_cursor(docs[-1]["updated_at"], docs[-1]["number"]) if more else None

    async def count(self, query: dict[str, Any]) -> int:
        """Count tickets matching a query."""
        return await self.tickets.count_documents(query)

    async def detail(self, query: dict[str, Any]) -> dict[str, Any] | None:
        """Return one whole ticket (without its outbox) matching a query."""
        return await self.tickets.find_one(query, HIDDEN_FIELDS)


def encode_cursor(updated_at: datetime, number: int) -> str:
    """Return an opaque cursor for keyset pagination."""
    return base64.urlsafe_b64encode(json.dumps({"u": updated_at.isoformat(), "n": number}).encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """Read a cursor made by `encode_cursor` (ValueError when it is not one)."""
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return datetime.fromisoformat(str(data["u"])), int(data["n"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError("invalid cursor") from exc
