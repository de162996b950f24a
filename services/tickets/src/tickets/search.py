"""Full-text search over tickets: an inverted index kept in the store, bucketed by ticket number.

A posting document holds, for one term and one bucket of ticket numbers (`number // BUCKET`), the numbers
of the tickets in that bucket whose text has the term. The only index is (term, bucket), and every query
is either by `_id` or by term with a bucket range, sorted by bucket, with a limit: the shapes that the
local FerretDB store runs through an index, and that MongoDB runs through one too. A query walks buckets
from the newest down, intersecting the terms' numbers bucket by bucket, so a page costs a few reads
however many tickets there are.

A small record per ticket lists the terms indexed for it, so re-indexing a ticket whose title changed
can take the ticket out of the postings of words it no longer has, and adding a comment writes only
the postings of words that are new to the ticket. Postings are written before the record, and every
write is idempotent, so an index call that is retried after a crash finishes the job.
"""

import asyncio
import base64
import binascii
import json
import re
import unicodedata
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

from pymongo import ASCENDING, DESCENDING, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

POSTINGS = "search_postings"
RECORDS = "search_tickets"

BUCKET = 1024  # ticket numbers per posting document (measured, see the module's benchmark notes in the report)
MIN_WORD = 2
MAX_WORD = 40
MAX_EMAIL = 100
MAX_TERMS_PER_TEXT = 500  # a pasted log must not turn one ticket into thousands of postings
MAX_TERMS_PER_TICKET = 5000
MAX_QUERY_CHARS = 1000
MAX_QUERY_TERMS = 8
MAX_LIMIT = 200
MAX_CANDIDATES = 2000  # numbers handed to `visible` in one call, at most
MAX_POSTINGS_READ = 3000  # posting documents read in one call, at most
MAX_PAGE = 64  # posting documents of the rarest term read in one round
MAX_IN = 500  # the store runs `$in` through an index only up to this many values
VISIBLE_BATCH = 500
WRITE_RETRIES = 3
DUPLICATE_KEY = 11000

Visible = Callable[[list[int]], Awaitable[list[dict[str, Any]]]]


class InvalidQuery(ValueError):
    """A search query or cursor that cannot be run (too long, too many words, not a string, bad cursor)."""


def _marks() -> str:
    """Return a regex character class body of every combining mark in the first two Unicode planes."""
    ranges: list[tuple[int, int]] = []
    for code in range(0x20000):
        if unicodedata.category(chr(code)).startswith("M"):
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1] = (ranges[-1][0], code)
            else:
                ranges.append((code, code))
    return "".join(f"\\U{a:08x}-\\U{b:08x}" if a != b else f"\\U{a:08x}" for a, b in ranges)


# A word is a run of letters and digits of any script; combining marks that NFKC could not compose
# (Devanagari vowel signs, the dot of a case-folded Turkish İ) stay inside the word instead of splitting it.
_WORD = re.compile(f"[^\\W_](?:[^\\W_]|[{_marks()}])*")
_EMAIL = re.compile(r"[\w.+%'-]+@[\w-]+(?:\.[\w-]+)+")


def normalise(text: str) -> str:
    """Return text as the index compares it: NFKC-normalised and case-folded (so "Åsa" and "ÅSA" match)."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())


def _emails(text: str) -> Iterator[tuple[str, str, str]]:
    """Yield (address, local part, domain) of every email address in normalised text."""
    for match in _EMAIL.finditer(text):
        local, _, domain = match.group().rpartition("@")
        local, domain = local.strip(".'-"), domain.strip(".-")
        if local and "." in domain and len(local) + len(domain) < MAX_EMAIL:
            yield f"{local}@{domain}", local, domain


def _words(text: str) -> Iterator[str]:
    """Yield the words of normalised text that are long enough and short enough to index."""
    for match in _WORD.finditer(text):
        word = match.group()
        if MIN_WORD <= len(word) <= MAX_WORD:
            yield word


def _ordered_tokens(text: str, cap: int = MAX_TERMS_PER_TEXT) -> dict[str, None]:
    """Return the distinct tokens of a text in the order they first appear, at most `cap` of them."""
    norm = normalise(text)
    found: dict[str, None] = {}
    for address, local, domain in _emails(norm):
        for token in (address, local, domain):
            if MIN_WORD <= len(token) <= MAX_EMAIL:
                found[token] = None
        if len(found) >= cap:
            return dict.fromkeys(list(found)[:cap])
    for word in _words(norm):
        found[word] = None
        if len(found) >= cap:
            break
    return found


def tokens(text: str) -> set[str]:
    """Return the search terms of a text: its words, and each email address whole, by local part and by domain."""
    return set(_ordered_tokens(text))


def query_terms(query: str) -> list[str]:
    """Return the terms a query asks for (all must match), rarest-looking first; InvalidQuery if it cannot run."""
    if not isinstance(query, str):
        raise InvalidQuery("a search query must be a string")
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidQuery(f"a search query may have at most {MAX_QUERY_CHARS} characters")
    norm = normalise(query)
    found: dict[str, None] = {}
    for address, _, _ in _emails(norm):
        found[address] = None  # the address implies its parts: asking for them too would only cost reads
    for word in _words(_EMAIL.sub(" ", norm)):
        found[word] = None
    if len(found) > MAX_QUERY_TERMS:
        raise InvalidQuery(f"a search query may have at most {MAX_QUERY_TERMS} words")
    return list(found)


def ticket_terms(texts: Iterable[str]) -> list[str]:
    """Return the distinct terms of a ticket's texts in order of appearance, capped per text and per ticket."""
    found: dict[str, None] = {}
    for text in texts:
        found.update(_ordered_tokens(text))
        if len(found) >= MAX_TERMS_PER_TICKET:
            return list(found)[:MAX_TERMS_PER_TICKET]
    return list(found)


def ticket_texts(doc: dict[str, Any]) -> list[str]:
    """Return the searchable texts of a ticket document: title, requester, organisation, description, comments."""
    requester = doc.get("requester") or {}
    texts = [
        doc.get("title"),
        requester.get("email") if isinstance(requester, dict) else None,
        requester.get("name") if isinstance(requester, dict) else None,
        doc.get("organisation"),
        doc.get("description"),
    ]
    texts.extend(c.get("text") for c in doc.get("comments") or [] if isinstance(c, dict))
    return [text for text in texts if isinstance(text, str) and text]


def posting_id(term: str, bucket: int) -> str:
    """Return the `_id` of the posting document of a term in a bucket."""
    return f"{term}|{bucket:09d}"


def postings_for(number: int, texts: Iterable[str]) -> dict[str, list[int]]:
    """Return the posting `_id`s a ticket belongs in, each with the numbers to add there (just this one)."""
    bucket = number // BUCKET
    return {posting_id(term, bucket): [number] for term in ticket_terms(texts)}


def record_document(number: int, texts: Iterable[str]) -> dict[str, Any]:
    """Return the record of the terms indexed for one ticket, as `SearchIndex` keeps it."""
    return {"_id": _record_id(number), "terms": ticket_terms(texts)}


def bulk_documents(pairs: Iterable[tuple[int, Iterable[str]]]) -> Iterator[dict[str, Any]]:
    """Yield whole posting documents for (number, texts) pairs given in ascending bucket order, for insert_many.

    A bucket's documents are yielded once a ticket of a later bucket (or the end) shows the bucket is complete,
    so memory holds one bucket at a time. A pair that goes back to a finished bucket is a ValueError.
    """
    return _documents((number, ticket_terms(texts)) for number, texts in pairs)


def _documents(pairs: Iterable[tuple[int, list[str]]]) -> Iterator[dict[str, Any]]:
    current: int | None = None
    terms: dict[str, list[int]] = {}
    for number, ticket in pairs:
        bucket = number // BUCKET
        if current is not None and bucket < current:
            raise ValueError(f"ticket {number} comes after bucket {current} was finished: sort the pairs by number")
        if bucket != current:
            if current is not None:
                yield from _bucket_documents(current, terms)
            current, terms = bucket, {}
        for term in ticket:
            terms.setdefault(term, []).append(number)
    if current is not None:
        yield from _bucket_documents(current, terms)


def _bucket_documents(bucket: int, terms: dict[str, list[int]]) -> Iterator[dict[str, Any]]:
    for term, numbers in terms.items():
        yield {"_id": posting_id(term, bucket), "t": term, "b": bucket, "n": sorted(set(numbers))}


def _record_id(number: int) -> str:
    return str(number)  # a string: the local store looks `_id`s up through its index only for strings


def encode_cursor(below: int) -> str:
    """Return the opaque cursor of a search page that continues with ticket numbers below `below`."""
    return base64.urlsafe_b64encode(json.dumps({"below": below}).encode()).decode()


def decode_cursor(cursor: str) -> int:
    """Read a cursor made by `encode_cursor` (InvalidQuery when it is not one)."""
    try:
        below = json.loads(base64.urlsafe_b64decode(cursor.encode()))["below"]
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
        raise InvalidQuery("invalid search cursor") from exc
    if not isinstance(below, int) or isinstance(below, bool) or not 0 <= below < 2**53:
        raise InvalidQuery("invalid search cursor")
    return below


class _Walk:
    """The numbers of tickets that have every term, newest first, read bucket page by bucket page."""

    def __init__(self, postings: AsyncCollection[dict[str, Any]], terms: list[str], below: int | None) -> None:
        self._postings = postings
        self._driver, self._others = terms[0], terms[1:]
        self._below = below
        self._top = None if below is None else (below - 1) // BUCKET  # highest bucket still to read
        self._page = 4
        self._max_page = min(MAX_PAGE, MAX_IN // max(1, len(self._others)))
        self.read = 0
        self.finished = False  # nothing more will come
        self.exhausted = False  # ... because every bucket was read (not because of the read budget)

    @property
    def position(self) -> int:
        """Return the bound below which numbers have not been read yet."""
        return 0 if self._top is None or self._top < 0 else (self._top + 1) * BUCKET

    async def next(self) -> list[int]:
        """Return the hits of the next page of buckets, newest first (maybe none); sets `finished` at the end."""
        if self.finished:
            return []
        if self.read >= MAX_POSTINGS_READ:
            self.finished = True
            return []
        if self._top is not None and self._top < 0:
            self.finished = self.exhausted = True
            return []
        query: dict[str, Any] = {"t": self._driver}
        if self._top is not None:
            query["b"] = {"$lte": self._top}
        page = [doc async for doc in self._postings.find(query).sort("b", DESCENDING).limit(self._page)]
        self.read += len(page)
        if len(page) < self._page:
            self.finished = self.exhausted = True
        if not page:
            return []
        self._top = int(page[-1]["b"]) - 1
        self._page = min(self._page * 2, self._max_page)
        alive = {int(doc["b"]): set(doc["n"]) for doc in page}
        for term in self._others:
            ids = [posting_id(term, bucket) for bucket in alive]
            found = {int(doc["b"]): doc["n"] async for doc in self._postings.find({"_id": {"$in": ids}})}
            self.read += len(found)
            alive = {b: numbers.intersection(found[b]) for b, numbers in alive.items() if b in found}
            alive = {b: numbers for b, numbers in alive.items() if numbers}
            if not alive:
                break
        hits = [n for numbers in alive.values() for n in numbers if self._below is None or n < self._below]
        hits.sort(reverse=True)
        return hits


class SearchIndex:
    """The tickets' full-text index in the store: write postings for tickets, answer queries page by page."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.db = db
        self.postings = db[POSTINGS]
        self.records = db[RECORDS]

    async def ensure_indexes(self) -> None:
        """Create the (term, bucket) index that every query by term runs through."""
        await self.postings.create_index([("t", ASCENDING), ("b", DESCENDING)], name="term_bucket")

    async def index_texts(self, number: int, texts: Iterable[str]) -> None:
        """Make a ticket findable by the terms of these texts (adds to what it has; safe to repeat)."""
        terms = ticket_terms(texts)
        known = await self._known(number)
        room = max(0, MAX_TERMS_PER_TICKET - len(known))
        new = [term for term in terms if term not in known][:room]
        if not new:
            return
        await self._write(number, add=new, remove=[])
        await self.records.update_one(
            {"_id": _record_id(number)}, {"$addToSet": {"terms": {"$each": new}}}, upsert=True
        )

    async def reindex(self, number: int, texts: Iterable[str]) -> None:
        """Make a ticket findable by exactly the terms of these texts (all of its texts; safe to repeat)."""
        terms = ticket_terms(texts)
        known = await self._known(number)
        wanted = set(terms)
        add = [term for term in terms if term not in known]
        remove = sorted(known - wanted)
        if not add and not remove:
            return
        await self._write(number, add=add, remove=remove)
        await self.records.update_one({"_id": _record_id(number)}, {"$set": {"terms": terms}}, upsert=True)

    async def bulk_load(self, pairs: Iterable[tuple[int, Iterable[str]]], *, batch: int = 5000) -> int:
        """Insert the postings and records of many new tickets (ascending numbers, not indexed yet); return postings."""
        pending: list[dict[str, Any]] = []
        records: list[dict[str, Any]] = []
        written = 0

        def remember(items: Iterable[tuple[int, Iterable[str]]]) -> Iterator[tuple[int, list[str]]]:
            for number, texts in items:
                terms = ticket_terms(texts)
                records.append({"_id": _record_id(number), "terms": terms})
                yield number, terms

        for doc in _documents(remember(pairs)):
            pending.append(doc)
            if len(pending) >= batch:
                await self.postings.insert_many(pending, ordered=False)
                written += len(pending)
                pending = []
            if len(records) >= batch:
                await self.records.insert_many(records, ordered=False)
                records.clear()
        if pending:
            await self.postings.insert_many(pending, ordered=False)
            written += len(pending)
        if records:
            await self.records.insert_many(records, ordered=False)
        return written

    async def search(
        self, query: str, *, visible: Visible, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Return the newest tickets that have every word of the query and that `visible` lets through, and a cursor.

        `visible(numbers)` returns the summaries (with `number`) of those tickets the viewer may see. A page
        holds at most `limit` tickets; it may hold fewer and still have a cursor when the work one call may do
        ran out first. The cursor is None when nothing more can match.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise InvalidQuery(f"limit must be between 1 and {MAX_LIMIT}")
        terms = query_terms(query)
        below = None if cursor is None else decode_cursor(cursor)
        if not terms or below == 0:
            return [], None
        counts = await asyncio.gather(*(self._buckets(term) for term in terms))
        if 0 in counts:
            return [], None
        ordered = [term for _, term in sorted(zip(counts, terms, strict=True))]
        walk = _Walk(self.postings, ordered, below)
        hits: list[dict[str, Any]] = []
        queue: list[int] = []
        checked = 0
        size = limit + 1  # one more than the page, so a full page knows whether another follows
        while True:
            while len(queue) < size and not walk.finished:
                queue.extend(await walk.next())
            if not queue:
                return hits, None if walk.exhausted else encode_cursor(walk.position)
            batch, queue = queue[:size], queue[size:]
            shown = {}
            for summary in await visible(batch):
                number = summary.get("number") if isinstance(summary, dict) else None
                if isinstance(number, int):
                    shown[number] = summary
            for position, number in enumerate(batch):
                if number in shown:
                    hits.append(shown[number])
                    if len(hits) == limit:
                        more = position < len(batch) - 1 or queue or not walk.exhausted
                        return hits, encode_cursor(number) if more else None
            checked += len(batch)
            if checked >= MAX_CANDIDATES:
                more = queue or not walk.exhausted
                return hits, encode_cursor(batch[-1]) if more else None
            size = min(VISIBLE_BATCH, size * 2, MAX_CANDIDATES - checked)

    async def _buckets(self, term: str) -> int:
        """Return how many buckets hold a term (a count the store answers from the index alone)."""
        reply = await self.db.command("count", POSTINGS, query={"t": term})
        return int(reply["n"])

    async def _known(self, number: int) -> set[str]:
        record = await self.records.find_one({"_id": _record_id(number)})
        return set(record.get("terms") or []) if record else set()

    async def _write(self, number: int, *, add: list[str], remove: list[str]) -> None:
        """Add the ticket to the postings of `add` and take it out of those of `remove` (idempotent)."""
        bucket = number // BUCKET
        ops = [
            UpdateOne(
                {"_id": posting_id(term, bucket)},
                {"$addToSet": {"n": number}, "$setOnInsert": {"t": term, "b": bucket}},
                upsert=True,
            )
            for term in add
        ]
        ops += [UpdateOne({"_id": posting_id(term, bucket)}, {"$pull": {"n": number}}) for term in remove]
        for attempt in range(WRITE_RETRIES):
            try:
                await self.postings.bulk_write(ops, ordered=False)
                break
            except BulkWriteError as exc:
                # two tickets of one bucket may insert the same new posting at once; the loser just retries
                errors = exc.details.get("writeErrors", [])
                if attempt == WRITE_RETRIES - 1 or any(e.get("code") != DUPLICATE_KEY for e in errors):
                    raise
        ids = [posting_id(term, bucket) for term in remove]
        for start in range(0, len(ids), MAX_IN):
            await self.postings.delete_many({"_id": {"$in": ids[start : start + MAX_IN]}, "n": {"$size": 0}})
