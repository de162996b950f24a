"""Full-text search over tickets: an inverted index kept in the store, bucketed by ticket number.

A posting document holds, for one term and one bucket of ticket numbers (`number // BUCKET`), the set of
tickets of that bucket whose text has the term, as bits at `number % BUCKET`. The bulk of it is sealed in
one binary field `p` (a bitmap, or 2-byte offsets while the set is sparse), because the local store
decodes a binary field about fifteen times faster per ticket than integer fields and two hundred times
faster than array elements. Changes since the last seal live in 64-bit fields `w<k>` (bits added) and
`x<k>` (bits removed), so that adding or removing a ticket is one atomic, idempotent `$bit` update. A
search or an indexing call that meets a document with many such fields folds them into `p`, guarded by
the version `v` that every write increments, so a concurrent write is never lost.

The only index is (term, bucket), and every query is by `_id` or by term with a bucket bound, sorted by
bucket, with a limit: the shapes that the local FerretDB store runs through an index, and MongoDB too.
A query walks buckets from the newest down, intersecting the terms' bitmaps bucket by bucket.

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
import struct
import time
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

BUCKET = 65536  # ticket numbers per posting document: a multiple of 64, at most 65536 (2-byte offsets)
WORD = 64
MASK = (1 << WORD) - 1
SEAL_AT = 8  # live fields a posting document may have before it is folded into `p`
SEAL_EVERY = 64  # every 64th ticket number also seals the postings it wrote to
MAX_SEALS = 16  # documents one search seals, at most
MIN_WORD = 2
MAX_WORD = 40
MAX_EMAIL = 100
MAX_EMAILS_SCANNED = 1000  # `@` signs looked at per text, at most
MAX_TERMS_PER_TEXT = 500  # a pasted log must not turn one ticket into thousands of postings
MAX_TERMS_PER_TICKET = 5000
MAX_QUERY_CHARS = 1000
MAX_QUERY_TERMS = 8
MAX_LIMIT = 200
BUDGET = 0.15  # seconds one search call may spend before it returns what it has and a cursor
MAX_CANDIDATES = 2000  # numbers handed to `visible` in one call, at most
MAX_POSTINGS_READ = 400  # posting documents read in one call, at most
MAX_PAGE = 32  # posting documents of the rarest term read in one round, at most
MAX_IN = 500  # the local store runs `$in` through an index only up to this many values
VISIBLE_BATCH = 200
WRITE_RETRIES = 5
DUPLICATE_KEY = 11000

Visible = Callable[[list[int]], Awaitable[list[dict[str, Any]]]]


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
_LOCAL = re.compile(r"[\w.+%'-]+\Z")  # searched in a window that ends at the `@`
_DOMAIN = re.compile(r"[\w-]+(?:\.[\w-]+)+")


def normalise(text: str) -> str:
    """Return text as the index compares it: NFKC-normalised and case-folded (so "Åsa" and "ÅSA" match)."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())


def _emails(text: str) -> Iterator[tuple[str, str, str]]:
    """Yield (address, local part, domain) of every email address in normalised text.

    The scan starts at each `@` and looks at most MAX_EMAIL characters either side, so a long run of word
    characters costs linear time (a plain `local@domain` regex backtracks quadratically over it).
    """
    at = text.find("@")
    for _ in range(MAX_EMAILS_SCANNED):
        if at < 0:
            return
        local = _LOCAL.search(text, max(0, at - MAX_EMAIL), at)
        domain = _DOMAIN.match(text, at + 1, at + 1 + MAX_EMAIL)
        if local and domain:
            name, host = local.group().strip(".'-"), domain.group().strip(".-")
            if name and "." in host and len(name) + len(host) < MAX_EMAIL:
                yield f"{name}@{host}", name, host
        at = text.find("@", at + 1)


def _without_emails(text: str) -> str:
    """Return normalised text with its email addresses blanked out."""
    for address, _, _ in _emails(text):
        text = text.replace(address, " ")
    return text


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
    """Return the terms a query asks for (all must match); InvalidQuery if it cannot be run."""
    if not isinstance(query, str):
        raise InvalidQuery("a search query must be a string")
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidQuery(f"a search query may have at most {MAX_QUERY_CHARS} characters")
    norm = normalise(query)
    found: dict[str, None] = {}
    for address, _, _ in _emails(norm):
        found[address] = None  # the address implies its parts: asking for them too would only cost reads
    for word in _words(_without_emails(norm)):
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
    for bucket, tickets in _by_bucket((number, ticket_terms(texts)) for number, texts in pairs):
        yield from _bucket_documents(bucket, tickets)


def _by_bucket(pairs: Iterable[tuple[int, list[str]]]) -> Iterator[tuple[int, list[tuple[int, list[str]]]]]:
    """Group (number, terms) pairs given in ascending number order by bucket."""
    current: int | None = None
    tickets: list[tuple[int, list[str]]] = []
    for number, terms in pairs:
        bucket = number // BUCKET
        if current is not None and bucket < current:
            raise ValueError(f"ticket {number} comes after bucket {current} was finished: sort the pairs by number")
        if bucket != current:
            if current is not None:
                yield current, tickets
            current, tickets = bucket, []
        tickets.append((number, terms))
    if current is not None:
        yield current, tickets


def _bucket_documents(bucket: int, tickets: list[tuple[int, list[str]]]) -> Iterator[dict[str, Any]]:
    offsets: dict[str, list[int]] = {}
    for number, terms in tickets:
        for term in terms:
            offsets.setdefault(term, []).append(number % BUCKET)
    for term, found in offsets.items():
        yield {"_id": posting_id(term, bucket), "t": term, "b": bucket, "p": _pack(sorted(set(found)))}


def _pack(offsets: list[int]) -> bytes:
    """Return sorted offsets as 2-byte little-endian offsets while that is shorter than a bitmap, else a bitmap."""
    if 2 * len(offsets) < BUCKET // 8:
        return struct.pack(f"<{len(offsets)}H", *offsets)
    bitmap = bytearray(BUCKET // 8)
    for offset in offsets:
        bitmap[offset >> 3] |= 1 << (offset & 7)
    return bytes(bitmap)


def _pack_bits(bits: int) -> bytes:
    """Return bits packed as `_pack` packs their offsets."""
    if 2 * bits.bit_count() < BUCKET // 8:
        return _pack(sorted(_offsets(bits)))
    return bits.to_bytes(BUCKET // 8, "little")


def _unpack(raw: bytes) -> int:
    """Return the bits that `_pack` packed."""
    if len(raw) == BUCKET // 8:
        return int.from_bytes(raw, "little")
    offsets = struct.unpack(f"<{len(raw) // 2}H", raw)
    if len(offsets) <= 8:
        return sum(1 << offset for offset in set(offsets))
    bitmap = bytearray(BUCKET // 8)
    for offset in offsets:
        bitmap[offset >> 3] |= 1 << (offset & 7)
    return int.from_bytes(bitmap, "little")


def _offsets(bits: int) -> Iterator[int]:
    """Yield the offsets of the set bits, highest first."""
    words = struct.unpack(f"<{BUCKET // WORD}Q", bits.to_bytes(BUCKET // 8, "little"))
    for index in range((bits.bit_length() - 1) // WORD, -1, -1):
        word = words[index]
        while word:
            top = word.bit_length() - 1
            yield index * WORD + top
            word ^= 1 << top


def _int64(word: int) -> Int64:
    """Return 64 unsigned bits as the signed integer that BSON stores."""
    return Int64(word - (1 << WORD) if word >> (WORD - 1) else word)


def _live(doc: dict[str, Any]) -> list[str]:
    """Return the names of a posting document's fields that changed since it was sealed."""
    return [key for key in doc if key[:1] in ("w", "x") and key[1:].isdigit()]


def _bits(doc: dict[str, Any]) -> int:
    """Return the tickets of a posting document as bits: the sealed ones, less those removed, plus those added."""
    raw = doc.get("p")
    bits = _unpack(raw) if isinstance(raw, bytes) else 0
    added = removed = 0
    for key in _live(doc):
        value = doc[key]
        if isinstance(value, int) and value:
            word = (value & MASK) << (int(key[1:]) * WORD)
            if key[0] == "w":
                added |= word
            else:
                removed |= word
    return (bits & ~removed) | added


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

    def __init__(
        self, postings: AsyncCollection[dict[str, Any]], terms: list[str], below: int | None, deadline: float
    ) -> None:
        self._postings = postings
        self._deadline = deadline
        self._driver, self._others = terms[0], terms[1:]
        self._below = below
        self._top = None if below is None else (below - 1) // BUCKET  # highest bucket not read yet
        self._page = 1
        self._max_page = min(MAX_PAGE, MAX_IN // max(1, len(self._others)))
        self._ready: Iterator[int] = iter(())
        self.read = 0
        self.unsealed: list[dict[str, Any]] = []  # documents read that have many changes since their seal
        self.finished = False  # every bucket was read, or the budget is spent
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

    def _decode(self, doc: dict[str, Any]) -> int:
        self.read += 1
        if len(_live(doc)) > SEAL_AT:
            self.unsealed.append(doc)
        return _bits(doc)

    async def _next_page(self) -> Iterator[int]:
        if self.read >= MAX_POSTINGS_READ or (self.read and time.monotonic() > self._deadline):
            self.finished = True
            return iter(())
        if self._top is not None and self._top < 0:
            self.finished = self.exhausted = True
            return iter(())
        query: dict[str, Any] = {"t": self._driver}
        if self._top is not None:
            query["b"] = {"$lte": self._top}
        page = [doc async for doc in self._postings.find(query).sort("b", DESCENDING).limit(self._page)]
        if len(page) < self._page:
            self.finished = self.exhausted = True
        if not page:
            return iter(())
        self._top = int(page[-1]["b"]) - 1
        self._page = min(self._page * 2, self._max_page)
        alive = {int(doc["b"]): self._decode(doc) for doc in page}
        for term in self._others:
            alive = {bucket: bits for bucket, bits in alive.items() if bits}
            if not alive:
                break
            ids = [posting_id(term, bucket) for bucket in alive]
            found = {int(doc["b"]): self._decode(doc) async for doc in self._postings.find({"_id": {"$in": ids}})}
            alive = {bucket: bits & found.get(bucket, 0) for bucket, bits in alive.items()}
        if self._below is not None:
            last = (self._below - 1) // BUCKET
            if last in alive:
                alive[last] &= (1 << (self._below - last * BUCKET)) - 1
        return (
            bucket * BUCKET + offset
            for bucket in sorted(alive, reverse=True)
            if alive[bucket]
            for offset in _offsets(alive[bucket])
        )


GROUP_WINDOW = 0.02  # seconds a posting update waits for others to share its write


class _AddBatch:
    """Posting bits to set, merged across the tickets indexed within one group window."""

    def __init__(self) -> None:
        self.bits: dict[tuple[str, int], tuple[str, int, int]] = {}  # (posting id, word) → (term, bucket, bits)
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()


class SearchIndex:
    """The tickets' full-text index in the store: writes the postings of tickets, answers queries page by page."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]], *, budget: float = BUDGET) -> None:
        self.db = db
        self.budget = budget
        self.postings = db[POSTINGS]
        self.records = db[RECORDS]
        self._batch: _AddBatch | None = None
        self._flushing: set[asyncio.Future[None]] = set()

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
        """Index many tickets at once, given in ascending number order; return how many postings were inserted.

        Meant for seeding an index that has none of these tickets yet. A load that stopped half-way can be
        run again with the same tickets: what is already there is kept.
        """
        written = 0
        for bucket, tickets in _by_bucket((number, ticket_terms(texts)) for number, texts in pairs):
            docs = _bucket_documents(bucket, tickets)
            while chunk := list(itertools.islice(docs, batch)):
                written += await self._insert(self.postings, chunk)
            # records last: a record claims that its ticket's postings are all written
            records = [{"_id": _record_id(number), "terms": " ".join(terms)} for number, terms in tickets]
            for start in range(0, len(records), batch):
                await self._insert(self.records, records[start : start + batch])
        return written

    @staticmethod
    async def _insert(collection: AsyncCollection[dict[str, Any]], docs: list[dict[str, Any]]) -> int:
        """Insert documents, keeping those that exist already; return how many were new."""
        try:
            await collection.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(error.get("code") != DUPLICATE_KEY for error in errors):
                raise
            return len(docs) - len(errors)
        return len(docs)

    async def search(
        self, query: str, *, visible: Visible, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Return the newest tickets that have every word of the query and that `visible` lets through, and a cursor.

        `visible(numbers)` returns the summaries (with `number`) of those of the tickets the viewer may see.
        A page holds at most `limit` tickets. It may hold fewer and still have a cursor when the work that
        one call may do (the time budget, MAX_CANDIDATES numbers, MAX_POSTINGS_READ postings) ran out first;
        the cursor is None when nothing more can match. Every call makes progress, so following the cursors
        returns every hit exactly once.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise InvalidQuery(f"limit must be between 1 and {MAX_LIMIT}")
        deadline = time.monotonic() + self.budget
        terms = query_terms(query)
        below = None if cursor is None else decode_cursor(cursor)
        if not terms or below == 0:
            return [], None
        counts = await asyncio.gather(*(self._buckets(term) for term in terms))
        if 0 in counts:
            return [], None
        walk = _Walk(self.postings, [term for _, term in sorted(zip(counts, terms, strict=True))], below, deadline)
        page = await self._page(walk, visible, limit, deadline)
        await self._seal(walk.unsealed[:MAX_SEALS])
        return page

    async def _page(
        self, walk: _Walk, visible: Visible, limit: int, deadline: float
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Hand the walk's numbers to `visible` in growing batches until the page is full or the budget is spent."""
        hits: list[dict[str, Any]] = []
        checked = 0
        spent = 0.0  # seconds spent in `visible`, to size the next batch to the time that is left
        size = limit + 1  # one more than the page, so that a full page knows whether another follows
        while True:
            batch = await walk.take(size)
            if not batch:
                return hits, None if walk.exhausted else encode_cursor(walk.position)
            started = time.monotonic()
            shown: dict[int, dict[str, Any]] = {}
            for summary in await visible(batch):
                number = summary.get("number") if isinstance(summary, dict) else None
                if isinstance(number, int):
                    shown[number] = summary
            now = time.monotonic()
            spent += now - started
            for at, number in enumerate(batch):
                if number in shown:
                    hits.append(shown[number])
                    if len(hits) == limit:
                        more = at < len(batch) - 1 or not walk.exhausted or bool(await walk.take(1))
                        return hits, encode_cursor(number) if more else None
            checked += len(batch)
            affordable = int((deadline - now) * checked / spent) if spent > 0 else VISIBLE_BATCH
            size = min(VISIBLE_BATCH, size * 2, MAX_CANDIDATES - checked, affordable)
            if size < 1:
                more = not walk.exhausted or bool(await walk.take(1))
                return hits, encode_cursor(batch[-1]) if more else None

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
        index, bit = offset // WORD, 1 << (offset % WORD)
        if add:
            await self._add_grouped(bucket, index, bit, add)
        ops = [
            UpdateOne(
                {"_id": posting_id(term, bucket)},
                {
                    "$bit": {f"w{index}": {"and": _int64(MASK ^ bit)}, f"x{index}": {"or": _int64(bit)}},
                    "$inc": {"v": 1},
                },
            )
            for term in remove
        ]
        if ops:
            await self._bulk(ops)
        if number % SEAL_EVERY == 0:
            # postings that no search reads would otherwise gather changes (and get slower to write) forever
            ids = [posting_id(term, bucket) for term in [*add, *remove]]
            for start in range(0, len(ids), MAX_IN):
                found = self.postings.find({"_id": {"$in": ids[start : start + MAX_IN]}})
                await self._seal([doc async for doc in found if len(_live(doc)) > SEAL_AT])

    async def _bulk(self, ops: list[UpdateOne]) -> None:
        for attempt in range(WRITE_RETRIES):
            try:
                await self.postings.bulk_write(ops, ordered=False)
                return
            except BulkWriteError as exc:
                # two writers may create the same posting at once; the loser's upsert is retried
                errors = exc.details.get("writeErrors", [])
                if attempt == WRITE_RETRIES - 1 or any(error.get("code") != DUPLICATE_KEY for error in errors):
                    raise

    async def _add_grouped(self, bucket: int, index: int, bit: int, terms: list[str]) -> None:
        """Set a ticket's bit in these postings once the store has them (or raise what the store raised).

        Tickets indexed within one short window share one update per posting word (group commit).
        """
        batch = self._batch
        if batch is None:
            batch = self._batch = _AddBatch()
            asyncio.get_running_loop().call_later(GROUP_WINDOW, self._start_flush, batch)
        for term in terms:
            key = (posting_id(term, bucket), index)
            _, _, bits = batch.bits.get(key, (term, bucket, 0))
            batch.bits[key] = (term, bucket, bits | bit)
        await asyncio.shield(batch.done)

    def _start_flush(self, batch: _AddBatch) -> None:
        task = asyncio.ensure_future(self._flush(batch))
        self._flushing.add(task)  # keep a reference until it is done
        task.add_done_callback(self._flushing.discard)

    async def _flush(self, batch: _AddBatch) -> None:
        if self._batch is batch:
            self._batch = None
        ops = [
            UpdateOne(
                {"_id": pid},
                {
                    "$bit": {f"w{index}": {"or": _int64(bits)}},
                    "$inc": {"v": 1},
                    "$setOnInsert": {"t": term, "b": bucket},
                },
                upsert=True,
            )
            for (pid, index), (term, bucket, bits) in batch.bits.items()
        ]
        try:
            await self._bulk(ops)
        except Exception as exc:  # every ticket of the batch fails and is retried by its consumer
            batch.done.set_exception(exc)
        else:
            batch.done.set_result(None)

    async def _seal(self, docs: list[dict[str, Any]]) -> None:
        """Fold the changes of posting documents into their sealed bits, unless a write came in since they were read."""
        for doc in docs:
            live = _live(doc)
            if not live:
                continue
            await self.postings.update_one(
                {"_id": doc["_id"], "v": doc.get("v")},
                {
                    "$set": {"p": _pack_bits(_bits(doc))},
                    "$unset": dict.fromkeys(live, ""),
                    "$inc": {"v": 1},
                },
            )


def _terms(record: dict[str, Any] | None) -> list[str]:
    terms = record.get("terms") if record else None
    return terms.split() if isinstance(terms, str) else []
