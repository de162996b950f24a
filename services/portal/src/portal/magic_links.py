"""Sign-in links for customers: one-time tokens that last 15 minutes, kept only as their SHA-256, and a rate limit.

The token is 32 random bytes (URL-safe base64, 43 characters). The store keeps its hash, so a copy of the
database signs nobody in. A link is consumed atomically (find and delete in one step), so two clicks, or a
mail scanner racing the customer, sign in once at most.
"""

import hashlib
import re
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from pymongo import ASCENDING

from portal.security import Verdict

SIGN_IN_LINKS = "sign_in_links"
LINK_LIFETIME = timedelta(minutes=15)
TOKEN_BYTES = 32
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}")
"""What `new_token` makes; anything else is refused before the store is asked."""


@dataclass(frozen=True)
class SignInLink:
    """Whom a link signs in: the address it was sent to and the name we know them by."""

    email: str
    name: str
    expires_at: datetime


def new_token() -> str:
    """Return a fresh link token (256 random bits)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    """Return what the store keeps of a token: its SHA-256, hex (a fast hash is enough for 256 random bits)."""
    return hashlib.sha256(token.encode()).hexdigest()


def _aware(value: datetime) -> datetime:
    # The store may hand back naive UTC datetimes.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class SignInLinks(Protocol):
    """Where sign-in links are kept (`MongoSignInLinks`; tests use `MemorySignInLinks`)."""

    async def ensure_indexes(self) -> None:
        """Create the indexes the queries need."""

    async def issue(self, email: str, name: str, now: datetime) -> str:
        """Store a new link for `email` and return its token (the only time the token is known)."""

    async def peek(self, token: str, now: datetime) -> SignInLink | None:
        """Return the link of a token if it is unused and unexpired, leaving it unused."""

    async def consume(self, token: str, now: datetime) -> SignInLink | None:
        """Use up the link of a token and return it, or None when it is unknown, used or expired."""


class MongoSignInLinks:
    """Sign-in links in the portal's `sign_in_links` collection, by token hash.

    Expired links are deleted when the next link is issued (through the `expires_at` index) rather than by a
    TTL index, which the local MongoDB-wire store does not honour; a lookup checks the expiry itself anyway.
    """

    def __init__(self, db: Any) -> None:
        self.collection = db[SIGN_IN_LINKS]

    async def ensure_indexes(self) -> None:
        """Create the index on the expiry (idempotent)."""
        await self.collection.create_index([("expires_at", ASCENDING)], name="expires_at")

    async def issue(self, email: str, name: str, now: datetime) -> str:
        """Store a new link for `email` and return its token."""
        await self.collection.delete_many({"expires_at": {"$lte": now}})
        token = new_token()
        await self.collection.insert_one(
            {
                "_id": token_hash(token),
                "email": email,
                "name": name,
                "created_at": now,
                "expires_at": now + LINK_LIFETIME,
            }
        )
        return token

    async def peek(self, token: str, now: datetime) -> SignInLink | None:
        """Return the link of a token if it is unused and unexpired, leaving it unused."""
        doc = await self.collection.find_one({"_id": token_hash(token), "expires_at": {"$gt": now}})
        return _link(doc)

    async def consume(self, token: str, now: datetime) -> SignInLink | None:
        """Use up the link of a token and return it, or None when it is unknown, used or expired."""
        doc = await self.collection.find_one_and_delete({"_id": token_hash(token), "expires_at": {"$gt": now}})
        return _link(doc)


def _link(doc: dict[str, Any] | None) -> SignInLink | None:
    if not doc:
        return None
    return SignInLink(email=str(doc["email"]), name=str(doc.get("name") or ""), expires_at=_aware(doc["expires_at"]))


class MemorySignInLinks:
    """Sign-in links in a dict, for tests; the same rules as `MongoSignInLinks`."""

    def __init__(self) -> None:
        self.links: dict[str, SignInLink] = {}
        """Links by token hash."""

    async def ensure_indexes(self) -> None:
        """Nothing to create."""

    async def issue(self, email: str, name: str, now: datetime) -> str:
        """Store a new link for `email` and return its token."""
        token = new_token()
        self.links[token_hash(token)] = SignInLink(email=email, name=name, expires_at=now + LINK_LIFETIME)
        return token

    async def peek(self, token: str, now: datetime) -> SignInLink | None:
        """Return the link of a token if it is unused and unexpired."""
        link = self.links.get(token_hash(token))
        return link if link is not None and link.expires_at > now else None

    async def consume(self, token: str, now: datetime) -> SignInLink | None:
        """Use up the link of a token and return it, or None when it is unknown, used or expired."""
        link = self.links.pop(token_hash(token), None)
        return link if link is not None and link.expires_at > now else None


class LinkRequestLimiter:
    """At most `per_address` links asked for an address and `per_client` asks from one client per `window` seconds.

    Every ask counts, known address or not, so the limit tells nothing about who is a customer. The counts
    live in this process's memory: they reset on restart and each replica counts on its own.
    """

    def __init__(
        self,
        *,
        per_address: int = 3,
        per_client: int = 10,
        window: float = 15 * 60,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self.per_address = per_address
        self.per_client = per_client
        self.window = window
        self._clock = clock
        self._max_keys = max_keys
        self._asks: dict[str, deque[float]] = {}

    def ask(self, address: str, client: str) -> Verdict:
        """Count an ask for a link to `address` from `client`, or refuse it (uncounted) when over a limit."""
        now = self._clock()
        keys = ((f"address:{address}", self.per_address), (f"client:{client}", self.per_client))
        wait = max(self._wait(key, limit, now) for key, limit in keys)
        if wait > 0:
            return Verdict(allowed=False, retry_after=int(wait + 0.999))
        if len(self._asks) >= self._max_keys:
            # Under a flood of distinct keys forget the oldest half rather than grow without bound.
            for key in list(self._asks)[: len(self._asks) // 2]:
                del self._asks[key]
        for key, _ in keys:
            self._asks.setdefault(key, deque()).append(now)
        return Verdict(allowed=True)

    def _wait(self, key: str, limit: int, now: float) -> float:
        times = self._asks.get(key)
        if not times:
            return 0
        while times and now - times[0] >= self.window:
            times.popleft()
        if not times:
            del self._asks[key]
            return 0
        if len(times) < limit:
            return 0
        return times[-limit] + self.window - now


__all__ = [
    "LINK_LIFETIME",
    "TOKEN_PATTERN",
    "LinkRequestLimiter",
    "MemorySignInLinks",
    "MongoSignInLinks",
    "SignInLink",
    "SignInLinks",
    "new_token",
    "token_hash",
]
