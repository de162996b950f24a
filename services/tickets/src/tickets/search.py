"""Full-text search over tickets: an inverted index kept in the store, bucketed by ticket number.

A posting document holds, for one term and one bucket of ticket numbers (`number // BUCKET`), a bitmap of
the tickets in that bucket whose text has the term: bit `number % BUCKET`, kept in 64-bit integer fields
`w0`, `w1`, ... so that adding or removing a ticket is one atomic, idempotent `$bit` update, and reading
a bucket decodes at most BUCKET / 64 numbers instead of one array element per ticket. The only index is
(term, bucket), and every query is by `_id` or by term with a bucket bound, sorted by bucket, with a
limit: the shapes the local FerretDB store runs through an index, and MongoDB too. A query walks buckets
from the newest down, intersecting the terms' bitmaps bucket by bucket.

A record per ticket lists the terms indexed for it, so that re-indexing a ticket whose title changed
takes it out of the postings of words it no longer has, and a new comment writes only the postings of
words new to the ticket. Postings are written before the record and every write is idempotent, so an
index call retried after a crash finishes the job.
"""

import asyncio
import base64
import binascii
import itertools
import json
import re
import unicodedata
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

from bson.int64 import Int64
from pymongo import ASCENDING, DESCENDING, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

POSTINGS = "search_postings"
RECORDS = "search_tickets"

BUCKET = 16384  # ticket numbers per posting document: a multiple of 64 (see the benchmark in the report)
WORD = 64
MASK = (1 << WORD) - 1
MIN_WORD = 2
MAX_WORD = 40
MAX_EMAIL = 100
MAX_TERMS_PER_TEXT = 500  # a pasted log must not turn one ticket into thousands of postings
MAX_TERMS_PER_TICKET = 5000
MAX_QUERY_CHARS = 1000
MAX_QUERY_TERMS = 8
MAX_LIMIT = 200
MAX_CANDIDATES = 2000  # numbers handed to `visible` in one call, at most
MAX_POSTINGS_READ = 1000  # posting documents read in one call, at most
MAX_PAGE = 32  # posting documents of the rarest term read in one round, at most
MAX_IN = 500  # the local store runs `$in` through an index only up to this many values
VISIBLE_BATCH = 500
WRITE_RETRIES = 5
DUPLICATE_KEY = 11000

Visible = Callable[[list[int]], Awaitable[list[dict[str, Any]]]]
Bitmap = dict[int, int]  # word index -> 64 bits (unsigned), only non-zero words


class InvalidQuery(ValueError):
    """A search query or cursor that cannot be run (too long, too many words, not a string, bad cursor)."""


class RecordConflict(RuntimeError):
    """The record of a ticket's terms kept changing while it was being indexed (retry the message later)."""


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
    """Return the `_id`s of the posting documents a ticket belongs in, each with the numbers it adds there."""
    bucket = number // BUCKET
    return {posting_id(term, bucket): [number] for term in ticket_terms(texts)}


def bulk_documents(pairs: Iterable[tuple[int, Iterable[str]]]) -> Iterator[dict[str, Any]]:
    """Yield whole posting documents for (number, texts) pairs given in ascending number order, for insert_many.

    A bucket's documents are yielded once a ticket of a later bucket (or the end) shows that the bucket is
    complete, so memory holds one bucket at a time. Going back to a finished bucket is a ValueError.
    """
    return _documents((number, ticket_terms(texts)) for number, texts in pairs)


def _documents(pairs: Iterable[tuple[int, list[str]]]) -> Iterator[dict[str, Any]]:
    current: int | None = None
    bitmaps: dict[str, int] = {}
    for number, terms in pairs:
        bucket, offset = divmod(number, BUCKET)
        if current is not None and bucket < current:
            raise ValueError(f"ticket {number} comes after bucket {current} was finished: sort the pairs by number")
        if bucket != current:
            if current is not None:
                yield from _bucket_documents(current, bitmaps)
            current, bitmaps = bucket, {}
        bit = 1 << offset
        for term in terms:
            bitmaps[term] = bitmaps.get(term, 0) | bit
    if current is not None:
        yield from _bucket_documents(current, bitmaps)


def _bucket_documents(bucket: int, bitmaps: dict[str, int]) -> Iterator[dict[str, Any]]:
    for term, bits in bitmaps.items():
        doc: dict[str, Any] = {"_id": posting_id(term, bucket), "t": term, "b": bucket}
        for index in range(BUCKET // WORD):
            word = (bits >> (index * WORD)) & MASK
            if word:
                doc[f"w{index}"] = _int64(word)
        yield doc


def _int64(word: int) -> Int64:
    """Return 64 unsigned bits as the signed integer BSON stores."""
    return Int64(word - (1 << WORD) if word >> (WORD - 1) else word)


def _bitmap(doc: dict[str, Any]) -> Bitmap:
    """Return the non-zero words of a posting document, unsigned."""
    words: Bitmap = {}
    for key, value in doc.items():
        if key[0] == "w" and key[1:].isdigit() and isinstance(value, int) and value:
            words[int(key[1:])] = value & MASK
    return words


def _below(words: Bitmap, limit: int) -> Bitmap:
    """Return the words with only the bits of offsets below `limit` left."""
    kept: Bitmap = {}
    for index, word in words.items():
        if (index + 1) * WORD <= limit:
            kept[index] = word
        elif index * WORD < limit:
            word &= (1 << (limit - index * WORD)) - 1
            if word:
                kept[index] = word
    return kept


def _numbers(bucket: int, words: Bitmap) -> Iterator[int]:
    """Yield the ticket numbers of a bucket's bitmap, highest first."""
    base = bucket * BUCKET
    for index in sorted(words, reverse=True):
        word = words[index]
        while word:
            top = word.bit_length() - 1
            yield base + index * WORD + top
            word ^= 1 << top


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
    """The numbers of the tickets that have every term, highest first, read a page of buckets at a time."""

    def __init__(self, postings: AsyncCollection[dict[str, Any]], terms: list[str], below: int | None) -> None:
        self._postings = postings
        self._driver, self._others = terms[0], terms[1:]
        self._below = below
        self._top = None if below is None else (below - 1) // BUCKET  # highest bucket not read yet
        self._page = 2
        self._max_page = min(MAX_PAGE, MAX_IN // max(1, len(self._others)))
        self._ready: Iterator[int] = iter(())
        self.read = 0
        self.finished = False  # every bucket was read, or the read budget is spent
        self.exhausted = False  # every bucket was read

    @property
    def position(self) -> int:
        """Return the bound below which numbers have not been looked at yet."""
        return 0 if self._top is None or self._top < 0 else (self._top + 1) * BUCKET

    async def take(self, count: int) -> list[int]:
        """Return up to `count` more numbers, highest first; fewer only once `finished`."""
        out: list[int] = []
        while len(out) < count:
            out.extend(itertools.islice(self._ready, count - len(out)))
            if len(out) < count:
                if self.finished:
                    break
                self._ready = await self._next_page()
        return out

    async def _next_page(self) -> Iterator[int]:
        if self.read >= MAX_POSTINGS_READ:
            self.finished = True
            return iter(())
        if self._top is not None and self._top < 0:
            self.finished = self.exhausted = True
            return iter(())
        query: dict[str, Any] = {"t": self._driver}
        if self._top is not None:
            query["b"] = {"$lte": self._top}
        page = [doc async for doc in self._postings.find(query).sort("b", DESCENDING).limit(self._page)]
        self.read += len(page)
        if len(page) < self._page:
            self.finished = self.exhausted = True
        if not page:
            return iter(())
        self._top = int(page[-1]["b"]) - 1
        self._page = min(self._page * 2, self._max_page)
        alive = {int(doc["b"]): _bitmap(doc) for doc in page}
        for term in self._others:
            alive = {bucket: words for bucket, words in alive.items() if words}
            if not alive:
                break
            ids = [posting_id(term, bucket) for bucket in alive]
            found = {int(doc["b"]): _bitmap(doc) async for doc in self._postings.find({"_id": {"$in": ids}})}
            self.read += len(found)
            alive = {bucket: _and(words, found.get(bucket, {})) for bucket, words in alive.items()}
        if self._below is not None:
            last = (self._below - 1) // BUCKET
            if last in alive:
                alive[last] = _below(alive[last], self._below - last * BUCKET)
        return (number for bucket in sorted(alive, reverse=True) for number in _numbers(bucket, alive[bucket]))


def _and(a: Bitmap, b: Bitmap) -> Bitmap:
    both = {index: word & b[index] for index, word in a.items() if index in b}
    return {index: word for index, word in both.items() if word}


class SearchIndex:
    """The tickets' full-text index in the store: writes the postings of tickets, answers queries page by page."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.db = db
        self.postings = db[POSTINGS]
        self.records = db[RECORDS]

    async def ensure_indexes(self) -> None:
        """Create the (term, bucket) index that every query by term runs through."""
        await self.postings.create_index([("t", ASCENDING), ("b", DESCENDING)], name="term_bucket")

    async def index_texts(self, number: int, texts: Iterable[str]) -> None:
        """Make a ticket findable by the terms of these texts, besides those it has (safe to repeat)."""
        terms = ticket_terms(texts)
        for _ in range(WRITE_RETRIES):
            record = await self._record(number)
            known = _terms(record)
            room = max(0, MAX_TERMS_PER_TICKET - len(known))
            new = [term for term in terms if term not in known][:room]
            if not new:
                return
            await self._write(number, add=new, remove=[])
            if await self._save(number, record, [*known, *new]):
                return
        raise RecordConflict(f"the search record of ticket {number} kept changing")

    async def reindex(self, number: int, texts: Iterable[str]) -> None:
        """Make a ticket findable by exactly the terms of these texts (pass all of its texts; safe to repeat)."""
        terms = ticket_terms(texts)
        wanted = set(terms)
        for _ in range(WRITE_RETRIES):
            record = await self._record(number)
            known = _terms(record)
            add = [term for term in terms if term not in known]
            remove = [term for term in known if term not in wanted]
            if not add and not remove:
                return
            await self._write(number, add=add, remove=remove)
            if await self._save(number, record, terms):
                return
        raise RecordConflict(f"the search record of ticket {number} kept changing")

    async def bulk_load(self, pairs: Iterable[tuple[int, Iterable[str]]], *, batch: int = 5000) -> int:
        """Insert postings and records of tickets not indexed yet, given in ascending number order; return postings."""
        records: list[dict[str, Any]] = []
        pending: list[dict[str, Any]] = []
        written = 0

        def remember(items: Iterable[tuple[int, Iterable[str]]]) -> Iterator[tuple[int, list[str]]]:
            for number, texts in items:
                terms = ticket_terms(texts)
                records.append({"_id": _record_id(number), "terms": " ".join(terms)})
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

        `visible(numbers)` returns the summaries (with `number`) of those of the tickets the viewer may see.
        A page holds at most `limit` tickets. It may hold fewer and still have a cursor when the work that
        one call may do ran out first; the cursor is None when nothing more can match.
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
        walk = _Walk(self.postings, [term for _, term in sorted(zip(counts, terms, strict=True))], below)
        hits: list[dict[str, Any]] = []
        checked = 0
        size = limit + 1  # one more than the page, so that a full page knows whether another follows
        while True:
            batch = await walk.take(size)
            if not batch:
                return hits, None if walk.exhausted else encode_cursor(walk.position)
            shown = {}
            for summary in await visible(batch):
                number = summary.get("number") if isinstance(summary, dict) else None
                if isinstance(number, int):
                    shown[number] = summary
            for at, number in enumerate(batch):
                if number in shown:
                    hits.append(shown[number])
                    if len(hits) == limit:
                        more = at < len(batch) - 1 or not walk.exhausted or bool(await walk.take(1))
                        return hits, encode_cursor(number) if more else None
            checked += len(batch)
            if checked >= MAX_CANDIDATES:
                more = not walk.exhausted or bool(await walk.take(1))
                return hits, encode_cursor(batch[-1]) if more else None
            size = min(VISIBLE_BATCH, size * 2, MAX_CANDIDATES - checked)

    async def _buckets(self, term: str) -> int:
        """Return how many buckets hold a term (a count that the store answers from the index alone)."""
        reply = await self.db.command("count", POSTINGS, query={"t": term})
        return int(reply["n"])

    async def _record(self, number: int) -> dict[str, Any] | None:
        return await self.records.find_one({"_id": _record_id(number)})

    async def _save(self, number: int, record: dict[str, Any] | None, terms: list[str]) -> bool:
        """Replace the record of a ticket's terms unless it changed since it was read; tell whether it was saved."""
        if record is None:
            try:
                await self.records.insert_one({"_id": _record_id(number), "terms": " ".join(terms)})
            except DuplicateKeyError:
                return False
            return True
        result = await self.records.update_one(
            {"_id": _record_id(number), "terms": record.get("terms")}, {"$set": {"terms": " ".join(terms)}}
        )
        return result.matched_count == 1

    async def _write(self, number: int, *, add: list[str], remove: list[str]) -> None:
        """Set the ticket's bit in the postings of `add` and clear it in those of `remove` (idempotent)."""
        bucket, offset = divmod(number, BUCKET)
        field, bit = f"w{offset // WORD}", 1 << (offset % WORD)
        ops = [
            UpdateOne(
                {"_id": posting_id(term, bucket)},
                {"$bit": {field: {"or": _int64(bit)}}, "$setOnInsert": {"t": term, "b": bucket}},
                upsert=True,
            )
            for term in add
        ]
        ops += [
            UpdateOne({"_id": posting_id(term, bucket)}, {"$bit": {field: {"and": _int64(MASK ^ bit)}}})
            for term in remove
        ]
        for attempt in range(WRITE_RETRIES):
            try:
                await self.postings.bulk_write(ops, ordered=False)
                return
            except BulkWriteError as exc:
                # two tickets of one bucket may create the same posting at once; the loser's upsert is retried
                errors = exc.details.get("writeErrors", [])
                if attempt == WRITE_RETRIES - 1 or any(error.get("code") != DUPLICATE_KEY for error in errors):
                    raise


def _terms(record: dict[str, Any] | None) -> list[str]:
    terms = record.get("terms") if record else None
    return terms.split() if isinstance(terms, str) else []
