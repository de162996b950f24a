"""Passwords (argon2id), signed session cookies, CSRF tokens and the sign-in rate limit."""

import asyncio
import hashlib
import hmac
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from itsdangerous import BadSignature, URLSafeTimedSerializer

MAX_PASSWORD_LENGTH = 1024
"""Longer passwords are refused before hashing, so nobody can make us hash megabytes."""

SESSION_MAX_AGE = 12 * 60 * 60
"""A session ends 12 hours after sign-in, whatever happens in between."""


class Passwords:
    """Hashes and checks passwords with argon2id; checks run in a thread so the event loop keeps going."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()
        # Unknown users are checked against this, so they cost the same time as known ones.
        self._dummy = self._hasher.hash(secrets.token_urlsafe(16))

    def hash(self, password: str) -> str:
        """Return the argon2id hash of a password."""
        return self._hasher.hash(password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Tell whether the password matches the hash; a missing hash is checked against a dummy."""
        return await asyncio.to_thread(self._verify, password_hash, password)

    def _verify(self, password_hash: str | None, password: str) -> bool:
        if len(password) > MAX_PASSWORD_LENGTH:
            return False
        try:
            return self._hasher.verify(password_hash or self._dummy, password) and password_hash is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        """Tell whether a hash was made with weaker parameters than we use now."""
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True


def new_password() -> str:
    """Return a fresh random password (128 bits)."""
    return secrets.token_urlsafe(16)


@dataclass(frozen=True)
class Session:
    """What the session cookie holds: the user (None before sign-in), a nonce and the session version."""

    user_id: str | None
    nonce: str
    version: int = 0

    @classmethod
    def anonymous(cls) -> "Session":
        """Return a fresh session for someone who has not signed in (it carries the login form's CSRF)."""
        return cls(user_id=None, nonce=secrets.token_urlsafe(16))

    @classmethod
    def signed_in(cls, user_id: str, version: int) -> "Session":
        """Return a fresh session for a user who just signed in (a new nonce: no session fixation)."""
        return cls(user_id=user_id, nonce=secrets.token_urlsafe(16), version=version)


class SessionCodec:
    """Signs sessions into cookie values and reads them back, refusing forged or expired ones."""

    def __init__(self, secret: str, *, max_age: int = SESSION_MAX_AGE, clock: Callable[[], float] = time.time):
        self._serializer = URLSafeTimedSerializer(secret, salt="portal.session")
        self._csrf_key = hashlib.sha256(b"portal.csrf\0" + secret.encode()).digest()
        self.max_age = max_age
        self._clock = clock

    def dumps(self, session: Session) -> str:
        """Return the signed cookie value of a session."""
        payload = {"u": session.user_id, "n": session.nonce, "v": session.version}
        return self._serializer.dumps(payload)

    def loads(self, value: str | None) -> Session | None:
        """Return the session a cookie value holds, or None when it is missing, forged or older than 12h."""
        if not value or len(value) > 4096:
            return None
        try:
            payload, signed_at = self._serializer.loads(value, return_timestamp=True)
        except (BadSignature, ValueError, TypeError):
            return None
        if self._clock() - signed_at.timestamp() > self.max_age:
            return None
        if not isinstance(payload, dict):
            return None
        user_id, nonce, version = payload.get("u"), payload.get("n"), payload.get("v")
        if not isinstance(nonce, str) or not isinstance(version, int) or not isinstance(user_id, str | None):
            return None
        return Session(user_id=user_id, nonce=nonce, version=version)

    def csrf_token(self, session: Session) -> str:
        """Return the CSRF token of a session (derived from its nonce, so nothing needs storing)."""
        return hmac.new(self._csrf_key, session.nonce.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, session: Session | None, token: object) -> bool:
        """Tell whether a submitted token belongs to this session."""
        if session is None or not isinstance(token, str) or not token:
            return False
        return hmac.compare_digest(self.csrf_token(session), token)


@dataclass(frozen=True)
class Verdict:
    """Whether a sign-in attempt may go ahead, and if not how many seconds until it may."""

    allowed: bool
    retry_after: int = 0


class SignInLimiter:
    """At most `limit` failed sign-ins per email and per client address within `window` seconds.

    The counts live in this process's memory: they reset on restart and are not shared between
    replicas, so with N replicas an attacker gets up to N times the limit. A shared store comes later.
    """

    def __init__(
        self,
        *,
        limit: int = 5,
        window: float = 15 * 60,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._max_keys = max_keys
        self._failures: dict[str, deque[float]] = {}

    def check(self, email: str, client: str) -> Verdict:
        """Tell whether an attempt for this email from this client may be checked at all."""
        now = self._clock()
        waits = [self._wait(key, now) for key in self._keys(email, client)]
        longest = max(waits)
        return Verdict(allowed=longest <= 0, retry_after=max(0, int(longest + 0.999)))

    def failed(self, email: str, client: str) -> None:
        """Count a failed attempt against the email and the client address."""
        now = self._clock()
        if len(self._failures) >= self._max_keys:
            self._prune(now)
        for key in self._keys(email, client):
            self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, email: str) -> None:
        """Forget the failures of an email once its owner got in (the client address keeps its count)."""
        self._failures.pop(f"email:{email}", None)

    @staticmethod
    def _keys(email: str, client: str) -> tuple[str, str]:
        return (f"email:{email}", f"client:{client}")

    def _wait(self, key: str, now: float) -> float:
        times = self._failures.get(key)
        if not times:
            return 0
        while times and now - times[0] >= self.window:
            times.popleft()
        if not times:
            del self._failures[key]
            return 0
        if len(times) < self.limit:
            return 0
        return times[-self.limit] + self.window - now

    def _prune(self, now: float) -> None:
        for key in list(self._failures):
            self._wait(key, now)
        if len(self._failures) >= self._max_keys:
            # Under a flood of distinct keys keep the newest half rather than grow without bound.
            for key in list(self._failures)[: len(self._failures) // 2]:
                del self._failures[key]
