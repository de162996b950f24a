"""The only module that talks to MongoDB: the `users` collection of the portal's own database."""

import re
from collections.abc import Iterable
from typing import Any

from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from portal.domain import ROLES, EmailTaken, User

USERS = "users"
EDITABLE = frozenset({"name", "role", "groups", "organisation", "language", "disabled"})
"""What `update_user` changes; the email, the password and the session version have their own ways."""


def _to_doc(user: User) -> dict[str, Any]:
    return {
        "_id": user.id,
        "email": user.email,
        "name": user.name,
        "role": user.role,
        "groups": list(user.groups),
        "password_hash": user.password_hash,
        "created_at": user.created_at,
        "disabled": user.disabled,
        "session_version": user.session_version,
        "language": user.language,
        "organisation": user.organisation,
    }


def _to_user(doc: dict[str, Any]) -> User | None:
    role = doc.get("role")
    if role not in ROLES:
        return None
    return User(
        id=str(doc["_id"]),
        email=str(doc["email"]),
        name=str(doc.get("name") or ""),
        role=role,
        groups=tuple(str(g) for g in doc.get("groups") or ()),
        password_hash=str(doc.get("password_hash") or ""),
        created_at=doc["created_at"],
        disabled=bool(doc.get("disabled", False)),
        session_version=int(doc.get("session_version", 1)),
        language=str(doc.get("language") or ""),
        organisation=str(doc["organisation"]) if doc.get("organisation") else None,
    )


class UserStore:
    """User accounts in the `users` collection (email unique)."""

    def __init__(self, db: Any) -> None:
        self.collection = db[USERS]

    async def ensure_indexes(self) -> None:
        """Create the unique email index and the role index (idempotent)."""
        await self.collection.create_index([("email", ASCENDING)], name="email_unique", unique=True)
        await self.collection.create_index([("role", ASCENDING)], name="role")

    async def by_email(self, email: str) -> User | None:
        """Return the user with this (normalised) email, if any."""
        if not isinstance(email, str):
            return None
        doc = await self.collection.find_one({"email": email})
        return _to_user(doc) if doc else None

    async def by_id(self, user_id: str) -> User | None:
        """Return the user with this id, if any."""
        if not isinstance(user_id, str):
            return None
        doc = await self.collection.find_one({"_id": user_id})
        return _to_user(doc) if doc else None

    async def names(self, user_ids: Iterable[str]) -> dict[str, str]:
        """Return display names of the users with these ids (unknown ids are left out)."""
        ids = sorted({i for i in user_ids if isinstance(i, str)})
        if not ids:
            return {}
        cursor = self.collection.find({"_id": {"$in": ids}}, {"name": 1, "email": 1})
        return {str(d["_id"]): str(d.get("name") or d.get("email") or d["_id"]) async for d in cursor}

    async def staff(self) -> list[User]:
        """Return the admins, agents and light agents that are not disabled."""
        cursor = self.collection.find({"role": {"$in": ["admin", "agent", "light_agent"]}, "disabled": {"$ne": True}})
        return [user async for doc in cursor if (user := _to_user(doc)) is not None]

    async def any_admin(self) -> User | None:
        """Return an admin account that is not disabled, if there is one."""
        doc = await self.collection.find_one({"role": "admin", "disabled": {"$ne": True}}, sort=[("created_at", 1)])
        return _to_user(doc) if doc else None

    async def add(self, user: User) -> None:
        """Store a new user; raise `EmailTaken` when the email is in use."""
        try:
            await self.collection.insert_one(_to_doc(user))
        except DuplicateKeyError as exc:
            raise EmailTaken(user.email) from exc

    async def set_password_hash(self, user_id: str, password_hash: str, *, end_sessions: bool) -> None:
        """Replace a user's password hash; with `end_sessions` every current session of the user ends."""
        update: dict[str, Any] = {"$set": {"password_hash": password_hash}}
        if end_sessions:
            update["$inc"] = {"session_version": 1}
        await self.collection.update_one({"_id": user_id}, update)

    async def set_language(self, user_id: str, language: str) -> None:
        """Set the language a user sees the portal in."""
        await self.collection.update_one({"_id": user_id}, {"$set": {"language": language}})

    async def list_users(
        self, query: str = "", *, role: str | None = None, group: str | None = None, limit: int = 500
    ) -> list[User]:
        """Return users by email, narrowed to a name or email containing `query`, a role, a group."""
        filters: dict[str, Any] = {}
        if role:
            filters["role"] = role
        if group:
            filters["groups"] = group
        if query.strip():
            # Escaped: what an admin types is a piece of text, never a pattern.
            pattern = {"$regex": re.escape(query.strip()[:200]), "$options": "i"}
            filters["$or"] = [{"name": pattern}, {"email": pattern}]
        cursor = self.collection.find(filters).sort("email", ASCENDING).limit(limit)
        return [user async for doc in cursor if (user := _to_user(doc)) is not None]

    async def update_user(self, user: User, *, end_sessions: bool) -> None:
        """Save a user's name, role, groups, organisation, language and disabled flag (not email or password).

        With `end_sessions` every current session of the user ends.
        """
        fields = {k: v for k, v in _to_doc(user).items() if k in EDITABLE}
        update: dict[str, Any] = {"$set": fields}
        if end_sessions:
            update["$inc"] = {"session_version": 1}
        await self.collection.update_one({"_id": user.id}, update)
