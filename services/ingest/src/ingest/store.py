"""Ingest's own store: raw messages (for audit, dedupe and reprocessing), attachments and the quarantine."""

from datetime import datetime
from typing import Any

from bson import Binary
from hdkit.mongo import GroupInserter
from pymongo import ASCENDING, DESCENDING, ReturnDocument, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

CHUNK = 8 * 1024 * 1024  # raw messages are split so a large one stays under the 16 MB document limit
INLINE_RAW = 256 * 1024  # a message up to this size keeps its bytes in its own record (one write, not two)


class Store:
    """Reads and writes ingest's collections."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.db = db
        self.messages = db["messages"]
        self.chunks = db["raw_chunks"]
        self.quarantine = db["quarantine"]
        self.attachments = db["attachments"]
        self._inserter = GroupInserter(self.messages)

    async def ensure_indexes(self) -> None:
        """Create the indexes ingest relies on."""
        # Message records are looked up by id only; an index on received_at cost every insert for no query.
        if "received_at" in {doc["name"] async for doc in await self.messages.list_indexes()}:
            await self.messages.drop_index("received_at")
        await self.chunks.create_index([("raw_id", ASCENDING), ("n", ASCENDING)], name="raw_id_n", unique=True)
        await self.quarantine.create_index([("received_at", DESCENDING)], name="received_at")
        await self.attachments.create_index([("raw_id", ASCENDING)], name="raw_id")

    async def save_raw(self, raw_id: str, raw: bytes) -> None:
        """Keep the raw bytes (idempotent: saving the same id again changes nothing)."""
        for n, start in enumerate(range(0, max(len(raw), 1), CHUNK)):
            try:
                await self.chunks.insert_one(
                    {"_id": f"{raw_id}:{n}", "raw_id": raw_id, "n": n, "data": Binary(raw[start : start + CHUNK])}
                )
            except DuplicateKeyError:
                pass  # kept by an earlier delivery of the same message

    async def load_raw(self, raw_id: str) -> bytes | None:
        """Return the raw bytes of a message or attachment (kept in its record or in chunks), or None."""
        record = await self.messages.find_one({"_id": raw_id, "raw": {"$exists": True}}, {"raw": 1})
        if record is not None:
            return bytes(record["raw"])
        parts = [doc["data"] async for doc in self.chunks.find({"raw_id": raw_id}).sort("n", ASCENDING)]
        return b"".join(bytes(p) for p in parts) if parts else None

    async def insert_message(self, doc: dict[str, Any]) -> None:
        """Insert a message record with its outbox (raises DuplicateKeyError for a message seen before).

        Messages arriving together are written together (`GroupInserter`: one transaction, not one each).
        """
        await self._inserter.insert(doc)

    async def find_message(self, message_key: str) -> dict[str, Any] | None:
        """Return a message record by id."""
        return await self.messages.find_one({"_id": message_key}, {"raw": 0})

    async def add_quarantine(self, doc: dict[str, Any]) -> None:
        """Keep a message that could not be read, with its reason."""
        await self.quarantine.update_one({"_id": doc["_id"]}, {"$setOnInsert": doc}, upsert=True)

    async def list_quarantine(self, limit: int = 100, *, include_reprocessed: bool = False) -> list[dict[str, Any]]:
        """Return the newest quarantined messages (without their bytes), by default only those still waiting."""
        query: dict[str, Any] = {} if include_reprocessed else {"reprocessed_at": {"$exists": False}}
        cursor = self.quarantine.find(query, {"raw": 0}).sort("received_at", DESCENDING).limit(limit)
        return [doc async for doc in cursor]

    async def find_quarantine(self, quarantine_id: str) -> dict[str, Any] | None:
        """Return one quarantine entry by id."""
        return await self.quarantine.find_one({"_id": quarantine_id}, {"raw": 0})

    async def mark_reprocessed(self, quarantine_id: str, outcome: str, at: datetime) -> dict[str, Any] | None:
        """Record that a quarantined message was accepted on a later try (the entry stays, for audit)."""
        return await self.quarantine.find_one_and_update(
            {"_id": quarantine_id},
            {"$set": {"reprocessed_at": at, "outcome": outcome}},
            return_document=ReturnDocument.AFTER,
        )

    async def note_failed_attempt(self, quarantine_id: str, reason: str, at: datetime) -> dict[str, Any] | None:
        """Record that a quarantined message is still unreadable: the newest reason, one more attempt."""
        return await self.quarantine.find_one_and_update(
            {"_id": quarantine_id},
            {"$set": {"reason": reason, "last_attempt_at": at}, "$inc": {"attempts": 1}},
            return_document=ReturnDocument.AFTER,
        )

    async def save_attachments(self, docs: list[dict[str, Any]]) -> None:
        """Keep what is known about kept attachments (name, type, size, message), once per attachment id."""
        if docs:
            await self.attachments.bulk_write(
                [UpdateOne({"_id": doc["_id"]}, {"$setOnInsert": doc}, upsert=True) for doc in docs], ordered=False
            )

    async def save_upload(self, record: dict[str, Any], data: bytes) -> None:
        """Keep an uploaded file: its bytes first, then the record that makes it downloadable."""
        await self.save_raw(record["_id"], data)
        await self.save_attachments([record])

    async def find_attachment(self, attachment_id: str) -> dict[str, Any] | None:
        """Return an attachment's metadata record, or None."""
        return await self.attachments.find_one({"_id": attachment_id})
