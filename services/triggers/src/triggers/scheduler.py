"""A durable timer scheduler on one store collection, shared safely by several processes.

The triggers service uses it for time rules, dormant tickets that wake up, recurring tickets and SLA
breaches; it knows nothing about rules. A timer is one document: `_id` (chosen by the caller, e.g.
`wake:<ticket_id>`), `kind`, `due_at`, `payload`, `state` ("pending"), a lease (`owner`, `claim`,
`lease_until`) and `attempts`.

How a timer fires (no transactions, no change streams, no TTL indexes needed):

1. Every `poll_seconds` a scheduler finds up to `batch` pending timers that are due and whose lease is free
   or expired, oldest first, through the one index `state, due_at, lease_until` (FerretDB pushes the query
   down to SQLite only when one index covers every filter and sort field; `lease_until` is always a
   datetime, the epoch meaning "free", so no `$exists`/null filter is needed).
2. It claims them with one `update_many` that sets its owner, a fresh random claim token and
   `lease_until = now + lease_seconds`, only where the lease is still free; then it reads back which ones
   carry its token. Only those are handled, so two schedulers never handle the same firing at once.
3. After `handle(timer)` returns, the timer is deleted if it still carries this claim's token.
   `schedule()` clears the claim, so a timer re-armed (or re-scheduled) during its handling keeps existing
   and fires again at its new time.
4. If `handle` raises, the error is logged and counted, the claim is dropped and the lease is set to the
   end of a back-off (`retry_seconds * 2**attempts`, at most `max_retry_seconds`); `attempts` is counted.
   The timer is never lost: it fires again after the back-off.

The contract for handlers: delivery is at least once. A crash after `handle` but before the delete leaves
the lease to expire, and another scheduler handles the timer again. `Timer.fire_id` is derived from the
timer id and its due time only, so every attempt at one firing carries the same `fire_id`, and a re-armed
timer's next firing a different one. Handlers use `fire_id` as the event id of whatever they publish (or
derive their event ids from it); consumers deduplicate on event ids, which makes the effect once-only.
A handler must finish well within `lease_seconds`, or another scheduler may start the same firing.
"""

import asyncio
import logging
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from contracts.envelope import utcnow
from prometheus_client import CollectorRegistry, Counter, Histogram
from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection

log = logging.getLogger(__name__)

PENDING = "pending"
FREE = datetime(1970, 1, 1, tzinfo=UTC)  # `lease_until` of a timer nobody holds
FIRE_NAMESPACE = uuid.UUID("6f1d3c52-6a44-4c1e-9a53-2f0f4f3f6b11")
LAG_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600)


@dataclass(frozen=True)
class Timer:
    """One firing of a timer, as handed to the handler."""

    id: str
    kind: str
    due_at: datetime
    payload: dict[str, Any]
    fire_id: str
    attempts: int = 0


Handle = Callable[[Timer], Awaitable[None]]


def to_store_time(moment: datetime) -> datetime:
    """Return a timezone-aware UTC datetime cut to the millisecond, as the store keeps it."""
    if moment.tzinfo is None:
        raise ValueError("timer times must be timezone-aware")
    moment = moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def fire_id(timer_id: str, due_at: datetime) -> str:
    """Return the stable id of the firing of `timer_id` at `due_at` (the same on every attempt)."""
    millis = int(to_store_time(due_at).timestamp() * 1000)
    return str(uuid.uuid5(FIRE_NAMESPACE, f"{timer_id}@{millis}"))


class Scheduler:
    """Keeps timers in one collection and fires them when due; several instances may share it."""

    def __init__(
        self,
        collection: AsyncCollection[dict[str, Any]],
        owner: str,
        *,
        lease_seconds: float = 30,
        batch: int = 200,
        poll_seconds: float = 1.0,
        retry_seconds: float = 5.0,
        max_retry_seconds: float = 600.0,
        clock: Callable[[], datetime] = utcnow,
        metrics: CollectorRegistry | None = None,
    ) -> None:
        self._coll = collection
        self.owner = owner
        self._lease = timedelta(seconds=lease_seconds)
        self._batch = batch
        self._poll = poll_seconds
        self._retry = retry_seconds
        self._max_retry = max_retry_seconds
        self._clock = clock
        registry = metrics if metrics is not None else CollectorRegistry()
        self.fired = Counter("helpdesk_timers_fired_total", "Timers handled successfully.", ["kind"], registry=registry)
        self.failed = Counter(
            "helpdesk_timers_failed_total", "Timer firings whose handler raised.", ["kind"], registry=registry
        )
        self.lag = Histogram(
            "helpdesk_timer_lag_seconds",
            "Seconds from a timer's due time to the start of its handling.",
            buckets=LAG_BUCKETS,
            registry=registry,
        )

    async def ensure_indexes(self) -> None:
        """Create the one index that covers the claim query's filter and sort."""
        await self._coll.create_index(
            [("state", ASCENDING), ("due_at", ASCENDING), ("lease_until", ASCENDING)], name="timers_due"
        )

    async def schedule(self, timer_id: str, due_at: datetime, kind: str, payload: dict[str, Any]) -> None:
        """Create or re-arm a pending timer: an existing id gets the new due time, kind and payload."""
        await self._coll.update_one(
            {"_id": timer_id},
            {
                "$set": {
                    "state": PENDING,
                    "due_at": to_store_time(due_at),
                    "kind": kind,
                    "payload": payload,
                    "owner": "",
                    "claim": "",
                    "lease_until": FREE,
                    "attempts": 0,
                }
            },
            upsert=True,
        )

    async def cancel(self, timer_id: str) -> bool:
        """Remove a timer; return whether there was one."""
        return (await self._coll.delete_one({"_id": timer_id})).deleted_count > 0

    async def claim(self) -> tuple[str, list[Timer]]:
        """Lease up to `batch` due timers to this scheduler; return the claim token and the timers it won."""
        now = self._clock()
        due = {"state": PENDING, "due_at": {"$lte": now}, "lease_until": {"$lte": now}}
        cursor = self._coll.find(due, {"_id": 1}).sort([("due_at", ASCENDING)]).limit(self._batch)
        ids = [doc["_id"] async for doc in cursor]
        token = secrets.token_hex(12)
        if not ids:
            return token, []
        await self._coll.update_many(
            {"_id": {"$in": ids}, **due},
            {"$set": {"owner": self.owner, "claim": token, "lease_until": now + self._lease}},
        )
        won = [doc async for doc in self._coll.find({"_id": {"$in": ids}, "claim": token})]
        won.sort(key=lambda d: d["due_at"])
        timers = [
            Timer(
                id=d["_id"],
                kind=d["kind"],
                due_at=d["due_at"],
                payload=d.get("payload") or {},
                fire_id=fire_id(d["_id"], d["due_at"]),
                attempts=d.get("attempts", 0),
            )
            for d in won
        ]
        return token, timers

    async def complete(self, token: str, timers: list[Timer]) -> None:
        """Delete handled timers that still carry this claim's token (a timer re-armed meanwhile stays)."""
        if timers:
            await self._coll.delete_many({"_id": {"$in": [t.id for t in timers]}, "claim": token})

    async def run_once(self, handle: Handle) -> int:
        """Claim one batch, handle it, settle each timer; return how many were claimed."""
        token, timers = await self.claim()
        if not timers:
            return 0
        results = await asyncio.gather(*(self._fire(handle, token, t) for t in timers))
        await self.complete(token, [t for t, ok in zip(timers, results, strict=True) if ok])
        return len(timers)

    async def _fire(self, handle: Handle, token: str, timer: Timer) -> bool:
        """Run the handler for one timer; on failure, log, count and back the lease off. Return success."""
        self.lag.observe(max(0.0, (self._clock() - timer.due_at).total_seconds()))
        try:
            await handle(timer)
        except asyncio.CancelledError:
            raise
        except Exception:
            self.failed.labels(timer.kind).inc()
            log.exception("timer %s (%s, attempt %d) failed; will retry", timer.id, timer.kind, timer.attempts + 1)
            delay = min(self._max_retry, self._retry * 2**timer.attempts)
            await self._coll.update_one(
                {"_id": timer.id, "claim": token},
                {
                    "$set": {"claim": "", "owner": "", "lease_until": self._clock() + timedelta(seconds=delay)},
                    "$inc": {"attempts": 1},
                },
            )
            return False
        self.fired.labels(timer.kind).inc()
        return True

    async def run(self, handle: Handle) -> None:
        """Fire due timers forever (a background task): a full batch is followed at once by the next."""
        while True:
            claimed = 0
            try:
                claimed = await self.run_once(handle)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("timer scheduler %s: a poll failed; will try again", self.owner)
            if claimed < self._batch:
                await asyncio.sleep(self._poll)
