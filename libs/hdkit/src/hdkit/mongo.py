"""The MongoDB client (PyMongo's asyncio API, the successor of Motor) and the outbox every producer uses.

An outbox entry is stored in the same document as the change that caused it, in one atomic update,
so a crash can never keep the change and lose the event or the other way round. The relay then
publishes the entries and removes them; the sweeper republishes whatever a crash left behind.
Consumers deduplicate on event ids, so publishing twice is harmless.
"""

import asyncio
import logging
from datetime import timedelta
from typing import Any

from contracts.envelope import utcnow
from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, DuplicateKeyError

from contracts import Envelope
from hdkit import failpoints
from hdkit.kafka import Publisher

log = logging.getLogger(__name__)

OUTBOX = "outbox"
OUTBOX_SINCE = "outbox_since"


def make_client(url: str) -> AsyncMongoClient[dict[str, Any]]:
    """Return a client that keeps datetimes timezone-aware (UTC)."""
    return AsyncMongoClient(url, tz_aware=True, serverSelectionTimeoutMS=10_000)


def is_duplicate(exc: BaseException) -> bool:
    """Tell whether an error is a unique-index violation."""
    return isinstance(exc, DuplicateKeyError)


def outbox_set(items: list[tuple[str, Envelope]]) -> dict[str, Any]:
    """Return the `$set` fields that add these (topic, envelope) pairs to a document's outbox."""
    fields: dict[str, Any] = {
        f"{OUTBOX}.{env.event_id}": {"topic": topic, "envelope": env.model_dump(mode="json")} for topic, env in items
    }
    if items:
        fields[OUTBOX_SINCE] = utcnow()
    return fields


def outbox_fields(items: list[tuple[str, Envelope]]) -> dict[str, Any]:
    """Return the fields that give a new document (for `insert_one`) these outbox entries."""
    entries = {env.event_id: {"topic": topic, "envelope": env.model_dump(mode="json")} for topic, env in items}
    return {OUTBOX: entries, OUTBOX_SINCE: utcnow()} if items else {OUTBOX: {}}


def pending(doc: dict[str, Any]) -> list[tuple[str, Envelope]]:
    """Return a document's outbox entries in the order they were made."""
    entries = [(e["topic"], Envelope.model_validate(e["envelope"])) for e in (doc.get(OUTBOX) or {}).values()]
    entries.sort(key=lambda item: item[1].occurred_at)
    return entries


class GroupInserter:
    """Inserts documents that arrive within a few milliseconds of each other with one `insert_many`.

    Each caller still learns its own outcome: `insert` returns when its document is stored, or raises
    `DuplicateKeyError` when one with its `_id` exists (the others of the group are stored regardless), or
    the error that failed the whole write. On a store that commits per write (FerretDB on SQLite) one
    transaction for many documents costs much less than one each.
    """

    def __init__(self, collection: AsyncCollection[dict[str, Any]], *, window: float = 0.002, most: int = 200) -> None:
        self._coll = collection
        self._window = window
        self._most = most
        self._waiting: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def insert(self, doc: dict[str, Any]) -> None:
        """Store one document with the others of its moment; raise DuplicateKeyError for an existing `_id`."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((doc, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())
        await done

    async def _write(self) -> None:
        while self._waiting:
            await asyncio.sleep(self._window)
            group, self._waiting = self._waiting[: self._most], self._waiting[self._most :]
            failed: dict[int, BaseException] = {}
            try:
                await self._coll.insert_many([doc for doc, _ in group], ordered=False)
            except BulkWriteError as exc:
                for error in exc.details.get("writeErrors", []):
                    index = int(error["index"])
                    if error.get("code") == 11000:
                        failed[index] = DuplicateKeyError(error.get("errmsg", "duplicate key"), 11000, error)
                    else:
                        failed[index] = exc
            except Exception as exc:  # the whole write failed: every caller of the group hears it
                failed = {n: exc for n in range(len(group))}
            for n, (_, done) in enumerate(group):
                if done.done():  # its caller was cancelled
                    continue
                if n in failed:
                    done.set_exception(failed[n])
                else:
                    done.set_result(None)


class OutboxRelay:
    """Publishes the outbox entries of documents in one collection and removes them once Kafka has them."""

    def __init__(
        self, collection: AsyncCollection[dict[str, Any]], publisher: Publisher, *, clear_window: float = 0.2
    ) -> None:
        self._coll = collection
        self._publisher = publisher
        self._clear_window = clear_window
        self._to_clear: list[Any] = []
        self._published: set[Any] = set()  # being published or published, outbox not yet emptied
        self._flushing: dict[Any, int] = {}  # documents a `flush` of this process is working on
        self._clearing: asyncio.Task[None] | None = None

    async def ensure_indexes(self) -> None:
        """Index the field the sweeper looks for."""
        await self._coll.create_index([(OUTBOX_SINCE, ASCENDING)], name="outbox_since")

    async def flush(self, doc: dict[str, Any] | None) -> int:
        """Publish a document's pending entries, then remove them from it; return how many."""
        if not doc:
            return 0
        items = pending(doc)
        if not items:
            return 0
        doc_id = doc["_id"]
        self._flushing[doc_id] = self._flushing.get(doc_id, 0) + 1
        try:
            return await self._flush(doc, items)
        finally:
            if self._flushing[doc_id] == 1:
                del self._flushing[doc_id]
            else:
                self._flushing[doc_id] -= 1

    async def _flush(self, doc: dict[str, Any], items: list[tuple[str, Envelope]]) -> int:
        failpoints.hit("before_publish")  # the change is stored, its events not yet sent
        await self._publisher.publish_many(items)
        # Usually the outbox holds exactly what was just published: empty it in one write. If another change
        # added entries meanwhile, remove only ours and keep `outbox_since` until the outbox is empty, so the
        # sweeper still finds the newer entries should their own flush never happen.
        done = await self._coll.update_one(
            {"_id": doc["_id"], OUTBOX: doc[OUTBOX]}, {"$set": {OUTBOX: {}}, "$unset": {OUTBOX_SINCE: ""}}
        )
        if done.matched_count:
            return len(items)
        await self._coll.update_one(
            {"_id": doc["_id"]}, {"$unset": {f"{OUTBOX}.{env.event_id}": "" for _, env in items}}
        )
        await self._coll.update_one({"_id": doc["_id"], OUTBOX: {}}, {"$unset": {OUTBOX_SINCE: ""}})
        return len(items)

    async def flush_written_once(self, doc: dict[str, Any]) -> int:
        """Publish the entries of a document whose outbox is only ever written when it is inserted.

        Nothing can add entries to such a document later, so emptying its outbox needs no comparison: the
        documents published within `clear_window` seconds are emptied together in one write. A crash before
        that write leaves the entries to the sweeper, which publishes them again (consumers drop the copy).
        """
        items = pending(doc)
        if not items or doc["_id"] in self._published:  # a second delivery while its outbox awaits emptying
            return 0
        self._published.add(doc["_id"])
        try:
            failpoints.hit("before_publish")
            await self._publisher.publish_many(items)
        except BaseException:
            self._published.discard(doc["_id"])
            raise
        self._to_clear.append(doc["_id"])
        if self._clearing is None or self._clearing.done():
            self._clearing = asyncio.create_task(self._clear_published())
        return len(items)

    async def _clear_published(self) -> None:
        while self._to_clear:
            await asyncio.sleep(self._clear_window)
            ids, self._to_clear = self._to_clear, []
            try:
                await self._coll.update_many(
                    {"_id": {"$in": ids}}, {"$set": {OUTBOX: {}}, "$unset": {OUTBOX_SINCE: ""}}
                )
            except Exception as exc:  # the sweeper publishes them again; consumers deduplicate
                log.warning("could not empty the outbox of %d published document(s): %r", len(ids), exc)
            finally:
                self._published.difference_update(ids)

    async def drain(self) -> None:
        """Wait until the published documents have been emptied (at shutdown, and in tests)."""
        while self._clearing is not None and not self._clearing.done():
            await asyncio.shield(self._clearing)

    async def flush_items(self, doc_id: Any, items: list[tuple[str, Envelope]]) -> int:
        """Flush entries just written to a document, without reading it back."""
        return await self.flush({"_id": doc_id, **outbox_fields(items)})

    async def flush_id(self, doc_id: Any) -> int:
        """Load a document by id and flush its outbox."""
        return await self.flush(await self._coll.find_one({"_id": doc_id}, {OUTBOX: 1}))

    async def sweep(self, older_than: timedelta = timedelta(seconds=5)) -> int:
        """Publish entries a crash left behind (older than `older_than`); return how many."""
        count = 0
        cursor = self._coll.find({OUTBOX_SINCE: {"$lt": utcnow() - older_than}}, {OUTBOX: 1}).limit(500)
        async for doc in cursor:
            # A publish of this process still under way (Kafka can be slow under load) is not a leftover.
            if doc["_id"] not in self._flushing and doc["_id"] not in self._published:
                count += await self.flush(doc)
        return count

    async def run_sweeper(self, interval: float = 10.0) -> None:
        """Sweep now and then every `interval` seconds (a background task of the service).

        Entries are normally published inline right after the change; the sweeper only picks up what a
        crash or a Kafka outage left behind, so it runs rarely (on FerretDB its query is a full scan).
        """
        while True:
            try:
                swept = await self.sweep()
                if swept:
                    log.warning("outbox sweeper republished %d event(s) from %s", swept, self._coll.name)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox sweep of %s failed; will try again", self._coll.name)
            await asyncio.sleep(interval)
