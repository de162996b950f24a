"""Queue pages shared by every viewer for a moment: at a million tickets the list read is the page's dearest part.

Agents of the same groups ask the very same store query for a view (same filters, sort, order, limit, cursor
and fields), and each page load reads whole ticket documents on FerretDB. So a page is read once per query
and `ttl` seconds (2 by default) and handed to every viewer asking meanwhile; viewers asking while it is
being read wait for that one read. Any ticket written by this process (a command, a mail, an import) bumps
the store's write generation, and a page kept from before the write is never handed out again: an agent
always sees their own change in the next list. Changes made by other processes show within `ttl` seconds.
"""

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

PageResult = tuple[list[dict[str, Any]], str | None]
ReadPage = Callable[..., Awaitable[PageResult]]


def _key(filters: list[dict[str, Any]], options: dict[str, Any]) -> str:
    # repr() for values JSON cannot hold (datetimes) keeps them apart from a string of the same text.
    return json.dumps([filters, options], sort_keys=True, default=lambda value: {"$repr": repr(value)})


class ListCache:
    """Pages of `read_page` kept for `ttl` seconds or until the next ticket write, read once at a time per query."""

    def __init__(
        self,
        read_page: ReadPage,
        *,
        ttl: float,
        generation: Callable[[], int],
        max_entries: int = 1_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read_page = read_page
        self.ttl = ttl
        self._generation = generation
        self._max_entries = max_entries
        self._clock = clock
        self._entries: dict[str, tuple[int, float, PageResult]] = {}
        self._running: dict[tuple[int, str], asyncio.Task[PageResult]] = {}

    def __len__(self) -> int:
        """Return how many pages are kept."""
        return len(self._entries)

    async def page(self, filters: list[dict[str, Any]], **options: Any) -> PageResult:
        """Return `read_page(filters, **options)`, shared with the viewers of the same query for a moment."""
        if self.ttl <= 0:
            return await self._read_page(filters, **options)
        key, generation = _key(filters, options), self._generation()
        kept = self._entries.get(key)
        if kept is not None and kept[0] == generation and kept[1] > self._clock():
            return _copy(kept[2])
        # Only a read that started after the last write may be shared: one from before could miss it.
        running = self._running.get((generation, key))
        if running is None:
            running = asyncio.create_task(self._fill(key, generation, filters, options))
            running.add_done_callback(_retrieve)
            self._running[(generation, key)] = running
        # shield: a viewer who gives up must not cancel the read the others wait for
        return _copy(await asyncio.shield(running))

    async def _fill(
        self, key: str, generation: int, filters: list[dict[str, Any]], options: dict[str, Any]
    ) -> PageResult:
        try:
            found = await self._read_page(filters, **options)
        finally:
            self._running.pop((generation, key), None)
        if generation != self._generation():
            return found  # a ticket was written meanwhile: good for the viewers who asked before, not after
        now = self._clock()
        if len(self._entries) >= self._max_entries:
            self._entries = {k: v for k, v in self._entries.items() if v[0] == generation and v[1] > now}
            if len(self._entries) >= self._max_entries:
                self._entries.clear()
        self._entries[key] = (generation, now + self.ttl, found)
        return found


def _copy(result: PageResult) -> PageResult:
    # Each viewer gets rows of their own, so whatever a caller does to them never reaches the next viewer.
    docs, cursor = result
    return [dict(doc) for doc in docs], cursor


def _retrieve(task: asyncio.Task[PageResult]) -> None:
    # A failed read whose viewers all gave up is still looked at, so asyncio does not log it as lost;
    # the viewers who waited got the error themselves.
    if not task.cancelled():
        task.exception()


__all__ = ["ListCache"]
