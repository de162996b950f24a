"""User accounts: signing in, the first admin, setting passwords. One method per thing a person does."""

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from portal.domain import EmailTaken, User, Users, is_plausible_email, normalise_email
from portal.security import MAX_PASSWORD_LENGTH, Passwords, Session, SignInLimiter, new_password

log = logging.getLogger(__name__)

MIN_PASSWORD_LENGTH = 12

WRONG_CREDENTIALS = "Wrong email or password."


class AccountError(Exception):
    """An account operation that cannot be done; the message says why, for the person who asked."""


class WrongCredentials(AccountError):
    """The email and password do not match an active account (the same for every cause, on purpose)."""

    def __init__(self) -> None:
        super().__init__(WRONG_CREDENTIALS)


class TooManyAttempts(AccountError):
    """Too many failed sign-ins for this email or from this address lately."""

    def __init__(self, retry_after: int) -> None:
        minutes = max(1, (retry_after + 59) // 60)
        super().__init__(
            f"Too many failed sign-in attempts. Try again in {minutes} minute{'s' if minutes != 1 else ''}."
        )
        self.retry_after = retry_after


@dataclass(frozen=True)
class AdminEnsured:
    """The outcome of `ensure_admin`: the admin, and the new password when one was just created."""

    user: User
    password: str | None

    @property
    def created(self) -> bool:
        """Tell whether this call created the admin."""
        return self.password is not None


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Accounts:
    """Signs people in and manages passwords against the user store."""

    def __init__(
        self,
        users: Users,
        passwords: Passwords,
        limiter: SignInLimiter | None = None,
        *,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.users = users
        self.passwords = passwords
        self.limiter = limiter or SignInLimiter()
        self._now = now

    async def sign_in(self, email: str, password: str, client: str) -> User:
        """Return the user these credentials belong to; raise `WrongCredentials` or `TooManyAttempts`."""
        email = normalise_email(email)[:320]
        verdict = self.limiter.check(email, client)
        if not verdict.allowed:
            raise TooManyAttempts(verdict.retry_after)
        user = await self.users.by_email(email) if is_plausible_email(email) else None
        # Unknown users are checked against a dummy hash, so both cases take the same time.
        ok = await self.passwords.verify(user.password_hash if user else None, password)
        if not ok or user is None or user.disabled:
            self.limiter.failed(email, client)
            raise WrongCredentials()
        self.limiter.succeeded(email)
        if self.passwords.needs_rehash(user.password_hash):
            await self.users.set_password_hash(user.id, self.passwords.hash(password), end_sessions=False)
        return user

    async def user_of(self, session: Session | None) -> User | None:
        """Return the active user a session belongs to, or None (signed out, disabled, password changed)."""
        if session is None or session.user_id is None:
            return None
        user = await self.users.by_id(session.user_id)
        if user is None or user.disabled or user.session_version != session.version:
            return None
        return user

    async def ensure_admin(self, email: str, name: str = "") -> AdminEnsured:
        """Create the first admin with a random password, unless an admin exists already."""
        existing = await self.users.any_admin()
        if existing:
            return AdminEnsured(existing, None)
        email = normalise_email(email)
        if not is_plausible_email(email):
            raise AccountError(f"not an email address: {email!r}")
        password = new_password()
        user = User(
            id=str(uuid.uuid4()),
            email=email,
            name=name.strip() or "Admin",
            role="admin",
            groups=(),
            password_hash=self.passwords.hash(password),
            created_at=self._now(),
        )
        try:
            await self.users.add(user)
        except EmailTaken:
            # Another process may have created the same admin at the same moment.
            existing = await self.users.any_admin()
            if existing:
                return AdminEnsured(existing, None)
            taken = await self.users.by_email(email)
            role = taken.role if taken else "unknown"
            raise AccountError(f"{email} is already a user with role {role}; not made admin") from None
        log.info("created the first admin %s", email)
        return AdminEnsured(user, password)

    async def set_password(self, email: str, password: str | None = None) -> str | None:
        """Set a user's password (a random one when None, which is returned) and end their sessions."""
        user = await self.users.by_email(normalise_email(email))
        if user is None:
            raise AccountError(f"no user with email {normalise_email(email)}")
        generated = None
        if password is None:
            password = generated = new_password()
        if len(password) < MIN_PASSWORD_LENGTH:
            raise AccountError(f"password too short: at least {MIN_PASSWORD_LENGTH} characters")
        if len(password) > MAX_PASSWORD_LENGTH:
            raise AccountError(f"password too long: at most {MAX_PASSWORD_LENGTH} characters")
        await self.users.set_password_hash(user.id, self.passwords.hash(password), end_sessions=True)
        log.info("password of %s set", user.email)
        return generated
