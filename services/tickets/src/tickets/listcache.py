"""Queue pages shared by every viewer for a moment: at a million tickets the list read is the page's dearest part.

Agents of the same groups ask the very same store query for a view (same filters, sort, order, limit, cursor
and fields). So a page is read once per query and `ttl` seconds (2 by default) and handed to every viewer
asking meanwhile; viewers asking while it is being read wait for that one read.

A ticket written by this process (a command, a mail, an import) is noted in the store's `Writes`: its id, what
it looked like before and after as far as lists care (`Seen`), and which fields the write touched. A kept page
is handed out again only if none of the writes since its read can change it: the ticket is not on the page,
and neither its old nor its new state matches the page's filters at a place within the page's stretch of the
order (first pages are changed by a ticket moving to the top, later ones only by tickets within their
stretch). Whatever cannot be told for sure (a field not known, an operator not known here, a write of
unknown tickets) counts as a change. So an agent always sees their own change in the next list, and a
write to a ticket of one group leaves the other groups' pages and the pages further down kept. Changes
made by other processes show within `ttl` seconds.
"""

import asyncio
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from tickets.keyset import decode_cursor, sortable

PageResult = tuple[list[dict[str, Any]], str | None]
ReadPage = Callable[..., Awaitable[PageResult]]
_SCALARS = (str, int, float, bool, datetime, type(None))
_LONGEST = 500  # longer texts (a description) are no list's filter: not kept, counted as unknown


def _scalar(value: Any) -> bool:
    return isinstance(value, _SCALARS) and not (isinstance(value, str) and len(value) > _LONGEST)


def _plain(value: Any) -> bool:
    return _scalar(value) or (isinstance(value, dict) and len(value) <= 20 and all(map(_scalar, value.values())))


@dataclass(frozen=True)
class Seen:
    """A ticket as lists see it: its top-level fields of plain values (scalars, or objects of scalars).

    `unknown` names the top-level fields not known (lists, deeper objects, fields a write changed in ways
    not followed here); every other field is known, absent ones as absent. `unknown=None` turns it round:
    only the fields in `values` are known.
    """

    values: Mapping[str, Any]
    unknown: frozenset[str] | None = frozenset()

    def get(self, path: str) -> tuple[bool, Any]:
        """Return whether the value at a dotted path is known, and the value (None when absent)."""
        top, _, rest = path.partition(".")
        if (top not in self.values) if self.unknown is None else (top in self.unknown):
            return False, None
        value = self.values.get(top)
        if rest:
            if "." in rest or not isinstance(value, dict):
                return (value is None, None)  # into an absent object: absent; into anything else: not followed
            value = value.get(rest)
        return True, value


UNKNOWN = Seen({}, None)


def seen(doc: Mapping[str, Any]) -> Seen:
    """Return what lists can tell of a ticket document."""
    values = {key: dict(value) if isinstance(value, dict) else value for key, value in doc.items() if _plain(value)}
    return Seen(values, frozenset(key for key in doc if key not in values))


def changed(before: Seen, set_fields: Mapping[str, Any], other_fields: Iterable[str]) -> Seen:
    """Return `before` after a write that sets `set_fields` and changes `other_fields` (pushes, pulls, counters)."""
    values = dict(before.values)
    unknown = set(before.unknown or ())
    for key, value in set_fields.items():
        top, _, rest = key.partition(".")
        inner = values.get(top)
        if not rest and _plain(value):
            values[top] = dict(value) if isinstance(value, dict) else value
            unknown.discard(top)
        elif rest and "." not in rest and isinstance(inner, dict) and _scalar(value):
            values[top] = {**inner, rest: value}
        else:
            values.pop(top, None)
            unknown.add(top)
    for key in other_fields:
        top = key.partition(".")[0]
        values.pop(top, None)
        unknown.add(top)
    if before.unknown is None:
        return Seen(values, None)
    return Seen(values, frozenset(unknown))


@dataclass(frozen=True)
class Write:
    """One write of a ticket: which (None: any), its state before and after (None: no such ticket), fields touched."""

    ticket_id: str | None
    before: Seen | None
    after: Seen | None
    touched: frozenset[str] | None  # top-level fields written; None: any


class Writes:
    """The tickets this process wrote lately, in order, so kept list pages can tell whether they still hold."""

    def __init__(self, kept: int = 1_000) -> None:
        self.count = 0
        self._log: deque[tuple[int, Write]] = deque(maxlen=kept)

    def note(self, write: Write) -> None:
        """Record a write (before it is known to have landed: even a failed write may have)."""
        self.count += 1
        self._log.append((self.count, write))

    def since(self, count: int) -> list[Write] | None:
        """Return the writes after the `count`th, oldest first; None when they are no longer all kept."""
        if count >= self.count:
            return []
        if not self._log or self._log[0][0] > count + 1:
            return None
        later: list[Write] = []
        for number, write in reversed(self._log):
            if number <= count:
                break
            later.append(write)
        later.reverse()
        return later


def _key(filters: list[dict[str, Any]], options: dict[str, Any]) -> str:
    # repr() for values JSON cannot hold (datetimes) keeps them apart from a string of the same text.
    return json.dumps([filters, options], sort_keys=True, default=lambda value: {"$repr": repr(value)})


@dataclass
class _Kept:
    checked: int  # the write count this page is known to hold at
    expires: float
    result: PageResult
    filters: list[dict[str, Any]]
    options: dict[str, Any]


@dataclass
class _Reading:
    started: int  # the write count when the read began
    task: asyncio.Task[PageResult]


class ListCache:
    """Pages of `read_page` kept for `ttl` seconds or until a write of this process may change them."""

    def __init__(
        self,
        read_page: ReadPage,
        *,
        ttl: float,
        writes: Writes,
        max_entries: int = 1_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read_page = read_page
        self.ttl = ttl
        self._writes = writes
        self._max_entries = max_entries
        self._clock = clock
        self._entries: dict[str, _Kept] = {}
        self._running: dict[str, _Reading] = {}
        # how pages were answered: "kept" (from memory), "shared" (a read under way), "read" (asked the store)
        self.answers = {"kept": 0, "shared": 0, "read": 0}

    def __len__(self) -> int:
        """Return how many pages are kept."""
        return len(self._entries)

    async def page(self, filters: list[dict[str, Any]], **options: Any) -> PageResult:
        """Return `read_page(filters, **options)`, shared with the viewers of the same query for a moment."""
        if self.ttl <= 0:
            self.answers["read"] += 1
            return await self._read_page(filters, **options)
        key = _key(filters, options)
        kept = self._entries.get(key)
        if kept is not None:
            if kept.expires > self._clock() and self._holds(kept.checked, filters, options, kept.result):
                kept.checked = self._writes.count
                self.answers["kept"] += 1
                return _copy(kept.result)
            del self._entries[key]
        # A read under way may be shared unless a write since it began may change its page.
        running = self._running.get(key)
        if running is not None and self._holds(running.started, filters, options, None):
            self.answers["shared"] += 1
        else:
            running = _Reading(self._writes.count, asyncio.create_task(self._read_page(filters, **options)))
            running.task.add_done_callback(_retrieve)
            running.task.add_done_callback(lambda task: self._done(key, running, filters, options))
            self._running[key] = running
            self.answers["read"] += 1
        # shield: a viewer who gives up must not cancel the read the others wait for
        return _copy(await asyncio.shield(running.task))

    def _done(self, key: str, reading: _Reading, filters: list[dict[str, Any]], options: dict[str, Any]) -> None:
        if self._running.get(key) is reading:
            del self._running[key]
        if reading.task.cancelled() or reading.task.exception() is not None:
            return
        now = self._clock()
        if len(self._entries) >= self._max_entries:
            self._entries = {k: v for k, v in self._entries.items() if v.expires > now}
            if len(self._entries) >= self._max_entries:
                self._entries.clear()
        kept = self._entries.get(key)
        if kept is not None and kept.checked > reading.started:
            return  # a read begun later (after a write) finished first: it is the one to keep
        # kept as of the read's start: the writes landing during the read are looked at on the next ask
        self._entries[key] = _Kept(reading.started, now + self.ttl, reading.task.result(), filters, options)

    def _holds(
        self, checked: int, filters: list[dict[str, Any]], options: dict[str, Any], result: PageResult | None
    ) -> bool:
        writes = self._writes.since(checked)
        return writes is not None and not any(_may_change(w, filters, options, result) for w in writes)


class AnswersMetric(Collector):
    """A `<name>_total{answer}` counter on /metrics, read from a cache's own counts at each scrape."""

    def __init__(self, name: str, documentation: str, answers: Callable[[], Mapping[str, int]]) -> None:
        self._name = name
        self._documentation = documentation
        self._answers = answers

    def collect(self) -> Iterable[CounterMetricFamily]:
        """Yield the counts of the cache's answers."""
        family = CounterMetricFamily(self._name, self._documentation, labels=["answer"])
        for answer, count in self._answers().items():
            family.add_metric([answer], count)
        yield family

    @classmethod
    def register(
        cls, registry: CollectorRegistry, name: str, documentation: str, answers: Callable[[], Mapping[str, int]]
    ) -> None:
        """Show a cache's answers in a registry."""
        registry.register(cls(name, documentation, answers))


def _may_change(
    write: Write, filters: list[dict[str, Any]], options: dict[str, Any], result: PageResult | None
) -> bool:
    """Tell whether a write may change a page (`result` None: a page not read yet, any place counts)."""
    if write.ticket_id is None:
        return True
    if result is not None and any(row.get("_id") == write.ticket_id for row in result[0]):
        return True
    sort = str(options.get("sort", ""))
    fields = {path.partition(".")[0] for f in filters for path in f} | {sort.partition(".")[0], "number"}
    if result is not None and write.touched is not None and not fields & write.touched:
        return False  # not on the page, and neither where it belongs nor where it sorts has changed
    for state in (write.before, write.after):
        if state is not None and _may_match(filters, state) and (result is None or _may_be_on(state, options, result)):
            return True
    return False


def _may_match(filters: list[dict[str, Any]], state: Seen) -> bool:
    return any(all(_may_hold(state, path, condition) for path, condition in f.items()) for f in filters)


def _may_hold(state: Seen, path: str, condition: Any) -> bool:
    known, value = state.get(path)
    if not known or path.startswith("$"):
        return True
    if isinstance(condition, dict) and any(str(k).startswith("$") for k in condition):
        return all(_may_pass(operator, value, argument) for operator, argument in condition.items())
    return _equal(value, condition)


def _equal(value: Any, wanted: Any) -> bool:
    if isinstance(value, bool) or isinstance(wanted, bool):
        return type(value) is type(wanted) and value == wanted
    return bool(sortable(value) == sortable(wanted)) if None not in (value, wanted) else value is wanted


def _may_pass(operator: str, value: Any, argument: Any) -> bool:
    if operator == "$ne":
        return not _equal(value, argument)
    if operator == "$in" and isinstance(argument, list | tuple):
        return any(_equal(value, a) for a in argument)
    if operator == "$nin" and isinstance(argument, list | tuple):
        return not any(_equal(value, a) for a in argument)
    if operator in ("$lt", "$lte", "$gt", "$gte") and argument is not None:
        if value is None:
            return False  # the store compares like with like: no value is never below or above one
        try:
            a, b = sortable(value), sortable(argument)
            return bool({"$lt": a < b, "$lte": a <= b, "$gt": a > b, "$gte": a >= b}[operator])
        except TypeError:
            return True
    return True  # an operator not followed here


def _may_be_on(state: Seen, options: dict[str, Any], result: PageResult) -> bool:
    """Tell whether a ticket in this state may sort within the page's stretch of the order."""
    sort = str(options.get("sort", ""))
    (known_value, value), (known_number, number) = state.get(sort), state.get("number")
    if not (known_value and known_number and isinstance(number, int)):
        return True
    oldest_first = bool(options.get("oldest_first"))
    place = (sortable(value), number)
    docs, next_cursor = result
    try:
        cursor = options.get("cursor")
        if cursor:
            start_value, start_number = decode_cursor(str(cursor))
            start = (sortable(start_value), start_number)
            if (place <= start) if oldest_first else (place >= start):
                return False  # before the page's first row (the cursor is the previous page's last)
        if next_cursor is not None and docs:
            last = (sortable(docs[-1].get(sort)), docs[-1]["number"])
            if (place > last) if oldest_first else (place < last):
                return False  # after the page's last row: the next page's
    except (TypeError, ValueError, KeyError):
        return True
    return True


def _copy(result: PageResult) -> PageResult:
    # Each viewer gets rows of their own, so whatever a caller does to them never reaches the next viewer.
    docs, cursor = result
    return [dict(doc) for doc in docs], cursor


def _retrieve(task: asyncio.Task[PageResult]) -> None:
    # A failed read whose viewers all gave up is still looked at, so asyncio does not log it as lost;
    # the viewers who waited got the error themselves.
    if not task.cancelled():
        task.exception()


__all__ = ["UNKNOWN", "AnswersMetric", "ListCache", "Seen", "Write", "Writes", "changed", "seen"]
