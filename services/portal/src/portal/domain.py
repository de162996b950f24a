"""Who may do what in the portal, the ticket views and their labels; no framework code here."""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol
from urllib.parse import urlsplit

Role = Literal["admin", "agent", "light_agent", "customer"]
ROLES: tuple[Role, ...] = ("admin", "agent", "light_agent", "customer")
AGENT_ROLES: frozenset[str] = frozenset({"admin", "agent", "light_agent"})

ROLE_LABELS: dict[str, str] = {
    "admin": "Admin",
    "agent": "Agent",
    "light_agent": "Light agent",
    "customer": "Customer",
    "system": "System",
}

VIEWS: dict[str, str] = {
    "unassigned": "Unassigned",
    "mine": "Mine",
    "waiting_for_agent": "Waiting for agent",
    "waiting_for_customer": "Waiting for customer",
    "all_open": "All open",
    "all": "All",
}
"""The ticket views (queues) in the order the tabs show them, with their labels."""

DEFAULT_VIEW = "all_open"

STATUS_LABELS: dict[str, str] = {
    "new": "New",
    "open": "Open",
    "waiting_for_customer": "Waiting for customer",
    "waiting_for_agent": "Waiting for agent",
    "dormant": "Dormant",
    "resolved": "Resolved",
    "closed": "Closed",
}

PRIORITY_LABELS: dict[str, str] = {"low": "Low", "medium": "Medium", "high": "High"}

COMMENT_KINDS: dict[str, str] = {"public_reply": "Public reply", "internal_comment": "Internal comment"}
"""The kinds of comment staff write on the ticket page, public first, with their labels."""

STAFF_COMMENT_KINDS: dict[str, tuple[str, ...]] = {
    "admin": ("public_reply", "internal_comment"),
    "agent": ("public_reply", "internal_comment"),
    "light_agent": ("internal_comment",),
}
"""Which kinds each staff role may write (the tickets service holds the same rule and checks it again)."""

MAX_COMMENT_LENGTH = 1_000_000
"""The longest comment the tickets service takes, in characters."""

CHANNEL_LABELS: dict[str, str] = {
    "email": "Email",
    "portal": "Portal",
    "web_form": "Web form",
    "api": "API",
    "kafka": "Integration",
    "import": "Import",
    "agent": "Agent",
    "system": "System",
}

AFTER_SIGN_IN = "/tickets"


def label(key: str | None, labels: dict[str, str]) -> str:
    """Return the human label of a key, or the key made readable when it has none."""
    if not key:
        return "—"
    return labels.get(key) or key.replace("_", " ").capitalize()


@dataclass(frozen=True)
class User:
    """A person who signs in to the portal."""

    id: str
    email: str
    name: str
    role: Role
    groups: tuple[str, ...]
    password_hash: str
    created_at: datetime
    disabled: bool = False
    session_version: int = 1
    """Raised when the password changes, so sessions signed in with the old one end."""
    language: str = ""
    """The language the portal speaks to this user (`i18n.LANGUAGES`); empty: the browser's."""
    organisation: str | None = None
    """A customer's organisation (as the tickets service knows it), for the organisation's tickets."""

    @property
    def display_name(self) -> str:
        """The name to show, falling back to the address."""
        return self.name or self.email


@dataclass(frozen=True)
class Actor:
    """Who is acting, as the tickets service is told on every call."""

    id: str
    role: Role
    email: str
    groups: tuple[str, ...] = field(default=())
    name: str = ""
    organisation: str | None = None
    """A customer's organisation: the tickets service shows its tickets when its setting allows."""

    @classmethod
    def of(cls, user: User) -> "Actor":
        """Return the actor a signed-in user acts as."""
        return cls(
            id=user.id,
            role=user.role,
            email=user.email,
            groups=user.groups,
            name=user.name,
            organisation=user.organisation,
        )

    @classmethod
    def requester(cls, email: str, name: str = "") -> "Actor":
        """Return the actor a ticket's requester acts as through the ticket's secret link.

        The contact has no account: its address is its id, as for the customer's mail.
        """
        address = normalise_email(email)
        return cls(id=address, role="customer", email=address, name=name)


class EmailTaken(Exception):
    """A user with this email address exists already."""


class Users(Protocol):
    """The user accounts (the port `store.UserStore` implements; tests use an in-memory fake)."""

    async def ensure_indexes(self) -> None:
        """Create the indexes the queries need."""

    async def by_email(self, email: str) -> User | None:
        """Return the user with this (normalised) email, if any."""

    async def by_id(self, user_id: str) -> User | None:
        """Return the user with this id, if any."""

    async def names(self, user_ids: Iterable[str]) -> dict[str, str]:
        """Return display names of the users with these ids (unknown ids are left out)."""

    async def any_admin(self) -> User | None:
        """Return an admin account that is not disabled, if there is one."""

    async def add(self, user: User) -> None:
        """Store a new user; raise `EmailTaken` when the email is in use."""

    async def set_password_hash(self, user_id: str, password_hash: str, *, end_sessions: bool) -> None:
        """Replace a user's password hash; with `end_sessions` every current session of the user ends."""

    async def staff(self) -> list[User]:
        """Return the admins, agents and light agents that are not disabled."""

    async def set_language(self, user_id: str, language: str) -> None:
        """Set the language a user sees the portal in."""

    async def list_users(
        self, query: str = "", *, role: str | None = None, group: str | None = None, limit: int = 500
    ) -> list[User]:
        """Return users by email, narrowed to a name or email containing `query`, a role, a group."""

    async def update_user(self, user: User, *, end_sessions: bool) -> None:
        """Save a user's name, role, groups, organisation, language and disabled flag (not email or password).

        With `end_sessions` every current session of the user ends.
        """


def normalise_email(email: str) -> str:
    """Return an address the way it is stored and compared: trimmed and lower-cased."""
    return email.strip().lower()


def is_plausible_email(email: str) -> bool:
    """Tell whether a string can be a sign-in address (ASCII, one @, no spaces, sane length)."""
    if not 3 <= len(email) <= 320 or not email.isascii():
        return False
    local, at, domain = email.rpartition("@")
    return bool(at and local and domain) and not any(c.isspace() or c in "<>,;\"'" for c in email)


def can_use_agent_workspace(role: str) -> bool:
    """Tell whether a role may open the agent workspace (customers get their own portal later)."""
    return role in AGENT_ROLES


def comment_kinds(role: str) -> dict[str, str]:
    """Return the kinds of comment a role may write on the ticket page, with their labels (light agents: internal)."""
    return {kind: COMMENT_KINDS[kind] for kind in STAFF_COMMENT_KINDS.get(role, ())}


def can_assign(role: str) -> bool:
    """Tell whether a role may take a ticket (light agents change no fields; the tickets service agrees)."""
    return role in ("admin", "agent")


def is_closed(status: str, status_category: str | None = None) -> bool:
    """Tell whether a ticket is closed: its customer may no longer add to it."""
    return (status_category or status) == "closed"


def safe_next(target: str | None, default: str = AFTER_SIGN_IN) -> str:
    """Return `target` if it is a path on this site, else `default`: never an open redirect."""
    if not target or len(target) > 2000 or not target.startswith("/"):
        return default
    # "//host" and "/\host" are read by browsers as another host; control characters can smuggle either.
    if target.startswith(("//", "/\\")) or "\\" in target or any(ord(c) < 0x20 or ord(c) == 0x7F for c in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target
