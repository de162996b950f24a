"""An agent's saved personal views: a name and the list's filters, kept in the portal's own MongoDB.

Each view belongs to one user; every read and delete is narrowed to that user's id, so nobody sees or
deletes another's views. The filters are checked by the list page (`workspace_lists.ListQuery`) before
they are stored: only plain strings under a fixed set of keys, never an operator.
"""

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

MAX_VIEWS_PER_USER = 30
MAX_NAME_LENGTH = 60


class TooManyViews(Exception):
    """The user has as many saved views as one may keep."""


@dataclass(frozen=True)
class SavedView:
    """One saved view: whose, its name, the list's query (view, filters, order) and when it was saved."""

    id: str
    user_id: str
    name: str
    query: dict[str, str] = field(default_factory=dict)
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))


class SavedViews(Protocol):
    """The saved views (`MongoSavedViews`; tests and a store-less portal use `MemorySavedViews`)."""

    async def ensure_indexes(self) -> None:
        """Create the indexes the queries need."""

    async def of_user(self, user_id: str) -> list[SavedView]:
        """Return a user's saved views, oldest first (the order of their tabs)."""

    async def add(self, user_id: str, name: str, query: Mapping[str, str]) -> SavedView:
        """Save a view for a user; raise `TooManyViews` when the user has the most one may keep."""

    async def delete(self, user_id: str, view_id: str) -> bool:
        """Delete one of the user's views; tell whether there was one (another user's is never touched)."""


def _new_id() -> str:
    return secrets.token_urlsafe(9)


class MongoSavedViews:
    """Saved views in the collection `saved_views`, one document per view."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.collection = db["saved_views"]

    async def ensure_indexes(self) -> None:
        """Create the index on (user_id, created_at) that every query of a user's views uses."""
        await self.collection.create_index([("user_id", ASCENDING), ("created_at", ASCENDING)], name="user_views")

    async def of_user(self, user_id: str) -> list[SavedView]:
        """Return a user's saved views, oldest first (the order of their tabs)."""
        found = self.collection.find({"user_id": user_id}).sort("created_at", ASCENDING).limit(MAX_VIEWS_PER_USER)
        return [_view(doc) async for doc in found]

    async def add(self, user_id: str, name: str, query: Mapping[str, str]) -> SavedView:
        """Save a view for a user; raise `TooManyViews` when the user has the most one may keep."""
        # Two saves at once may both pass the count and leave one view too many: harmless, the page
        # shows the first thirty.
        if await self.collection.count_documents({"user_id": user_id}) >= MAX_VIEWS_PER_USER:
            raise TooManyViews(user_id)
        view = SavedView(id=_new_id(), user_id=user_id, name=name, query=dict(query))
        await self.collection.insert_one(
            {"_id": view.id, "user_id": user_id, "name": name, "query": view.query, "created_at": view.created_at}
        )
        return view

    async def delete(self, user_id: str, view_id: str) -> bool:
        """Delete one of the user's views; tell whether there was one (another user's is never touched)."""
        result = await self.collection.delete_one({"_id": view_id, "user_id": user_id})
        return result.deleted_count == 1


def _view(doc: Mapping[str, Any]) -> SavedView:
    query = doc.get("query") or {}
    return SavedView(
        id=str(doc["_id"]),
        user_id=str(doc["user_id"]),
        name=str(doc.get("name", "")),
        query={str(k): str(v) for k, v in query.items()},
        created_at=doc.get("created_at") or datetime.now(UTC),
    )


class MemorySavedViews:
    """Saved views in a dict, with the same contract as `MongoSavedViews` (for tests)."""

    def __init__(self) -> None:
        self.views: dict[str, SavedView] = {}

    async def ensure_indexes(self) -> None:
        """Do nothing: a dict needs no index."""

    async def of_user(self, user_id: str) -> list[SavedView]:
        """Return a user's saved views, oldest first."""
        return [v for v in self.views.values() if v.user_id == user_id][:MAX_VIEWS_PER_USER]

    async def add(self, user_id: str, name: str, query: Mapping[str, str]) -> SavedView:
        """Save a view for a user; raise `TooManyViews` when the user has the most one may keep."""
        if len(await self.of_user(user_id)) >= MAX_VIEWS_PER_USER:
            raise TooManyViews(user_id)
        view = SavedView(id=_new_id(), user_id=user_id, name=name, query=dict(query))
        self.views[view.id] = view
        return view

    async def delete(self, user_id: str, view_id: str) -> bool:
        """Delete one of the user's views; tell whether there was one."""
        view = self.views.get(view_id)
        if view is None or view.user_id != user_id:
            return False
        del self.views[view_id]
        return True


__all__ = [
    "MAX_NAME_LENGTH",
    "MAX_VIEWS_PER_USER",
    "MemorySavedViews",
    "MongoSavedViews",
    "SavedView",
    "SavedViews",
    "TooManyViews",
]
