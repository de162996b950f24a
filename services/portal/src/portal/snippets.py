"""Reply templates and snippets: text blocks agents put into a reply, kept in the portal's `snippets` collection.

A template is a whole answer; a snippet a short block. Both may hold the placeholders in `PLACEHOLDERS`,
filled on the server when an agent picks one for a ticket (`fill`).
"""

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol

from pymongo import ASCENDING

COLLECTION = "snippets"
KEY = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
MAX_NAME_LENGTH = 100
MAX_TEXT_LENGTH = 20_000
KINDS: dict[str, str] = {"template": "Reply template", "snippet": "Snippet"}
PLACEHOLDERS = ("ticket.number", "ticket.title", "customer.name", "agent.name")
_PLACEHOLDER = re.compile(r"\{(" + "|".join(re.escape(p) for p in PLACEHOLDERS) + r")\}")

SnippetKind = Literal["template", "snippet"]


class InvalidSnippet(Exception):
    """A snippet an admin wrote that cannot be saved; the message says why."""


@dataclass(frozen=True)
class Snippet:
    """A reply template or snippet."""

    key: str
    name: str
    kind: SnippetKind
    text: str
    language: str = ""
    """The language of the text ("" for any)."""


def snippet_of(key: str, name: str, kind: str, text: str, language: str = "") -> Snippet:
    """Return a snippet from what an admin typed, or raise `InvalidSnippet` saying what is wrong."""
    key, name, text = key.strip().lower(), name.strip(), text.replace("\r\n", "\n")
    if not KEY.fullmatch(key):
        raise InvalidSnippet("The key is 1–40 lower-case letters, digits, _ or -, starting with a letter or digit.")
    if not name or len(name) > MAX_NAME_LENGTH:
        raise InvalidSnippet(f"The name is 1–{MAX_NAME_LENGTH} characters.")
    if kind not in KINDS:
        raise InvalidSnippet("Choose Reply template or Snippet.")
    if not text.strip() or len(text) > MAX_TEXT_LENGTH:
        raise InvalidSnippet(f"The text is 1–{MAX_TEXT_LENGTH:,} characters.")
    return Snippet(key=key, name=name, kind=kind, text=text, language=language.strip().lower()[:5])  # type: ignore[arg-type]


def fill(text: str, values: Mapping[str, str]) -> str:
    """Return the text with its known placeholders filled; other braces stay as they are."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)


class Snippets(Protocol):
    """Where snippets are kept (`MongoSnippets`; tests use `MemorySnippets`)."""

    async def ensure_indexes(self) -> None:
        """Create the indexes the queries need."""

    async def all(self) -> list[Snippet]:
        """Return every snippet, templates first, by name."""

    async def get(self, key: str) -> Snippet | None:
        """Return the snippet with this key, if any."""

    async def put(self, snippet: Snippet) -> None:
        """Add a snippet or replace the one with its key."""

    async def delete(self, key: str) -> bool:
        """Delete a snippet; tell whether there was one."""


def _ordered(snippets: list[Snippet]) -> list[Snippet]:
    return sorted(snippets, key=lambda s: (s.kind != "template", s.name.lower(), s.key))


def _from_doc(doc: Mapping[str, Any]) -> Snippet:
    kind = doc.get("kind") if doc.get("kind") in KINDS else "snippet"
    return Snippet(
        key=str(doc["key"]),
        name=str(doc.get("name", "")),
        kind=kind,
        text=str(doc.get("text", "")),
        language=str(doc.get("language", "")),
    )


class MongoSnippets:
    """Snippets as documents of the portal's `snippets` collection, one per key."""

    def __init__(self, db: Any) -> None:
        self.collection = db[COLLECTION]

    async def ensure_indexes(self) -> None:
        """Create the unique index on the key."""
        await self.collection.create_index([("key", ASCENDING)], unique=True)

    async def all(self) -> list[Snippet]:
        """Return every snippet, templates first, by name."""
        return _ordered([_from_doc(d) async for d in self.collection.find({}, {"_id": 0})])

    async def get(self, key: str) -> Snippet | None:
        """Return the snippet with this key, if any."""
        doc = await self.collection.find_one({"key": key}, {"_id": 0})
        return _from_doc(doc) if doc else None

    async def put(self, snippet: Snippet) -> None:
        """Add a snippet or replace the one with its key."""
        await self.collection.replace_one({"key": snippet.key}, asdict(snippet), upsert=True)

    async def delete(self, key: str) -> bool:
        """Delete a snippet; tell whether there was one."""
        return (await self.collection.delete_one({"key": key})).deleted_count > 0


class MemorySnippets:
    """Snippets in a dict, for tests."""

    def __init__(self, snippets: list[Snippet] | None = None) -> None:
        self.by_key = {s.key: s for s in snippets or []}

    async def ensure_indexes(self) -> None:
        """Nothing to create."""

    async def all(self) -> list[Snippet]:
        """Return every snippet, templates first, by name."""
        return _ordered(list(self.by_key.values()))

    async def get(self, key: str) -> Snippet | None:
        """Return the snippet with this key, if any."""
        return self.by_key.get(key)

    async def put(self, snippet: Snippet) -> None:
        """Add a snippet or replace the one with its key."""
        self.by_key[snippet.key] = snippet

    async def delete(self, key: str) -> bool:
        """Delete a snippet; tell whether there was one."""
        return self.by_key.pop(key, None) is not None


__all__ = [
    "KINDS",
    "PLACEHOLDERS",
    "InvalidSnippet",
    "MemorySnippets",
    "MongoSnippets",
    "Snippet",
    "Snippets",
    "fill",
    "snippet_of",
]
