"""Queue counts shared by every viewer for a few seconds: at a million tickets a count is the dearest read.

A viewer's count of a view is a sum over disjoint store filters, one per group the viewer works in
(`access.scopes`), and the agents of a group ask the very same filters. So the tab counts of every open
workspace, reloaded with each list and polled every few seconds, cost the store one count per filter and
period instead of one per agent and page. Counts may lag a change by up to `ttl` seconds (as Zendesk's and
Zammad's view counts do); the lists themselves are never cached.
"""

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

CountOne = Callable[[dict[str, Any]], Awaitable[int]]


def _key(query: dict[str, Any]) -> str:
    # repr() for values JSON cannot hold (datetimes) keeps them apart from a string of the same text.
    return json.dumps(query, sort_keys=True, default=lambda value: {"$repr": repr(value)})


class CountCache:
    """Counts of single store filters, kept for `ttl` seconds and asked of the store once at a time."""

    def __init__(
        self,
        count_one: CountOne,
        *,
        ttl: float,
        max_entries: int = 20_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._count_one = count_one
        self.ttl = ttl
        self._max_entries = max_entries
        self._clock = clock
        self._entries: dict[str, tuple[float, int]] = {}
        self._running: dict[str, asyncio.Task[int]] = {}

    async def count(self, filters: list[dict[str, Any]]) -> int:
        """Return the number of tickets matching any of `filters` (disjoint by construction)."""
        return sum(await asyncio.gather(*(self._one(query) for query in filters)))

    async def _one(self, query: dict[str, Any]) -> int:
        if self.ttl <= 0:
            return await self._count_one(query)
        key = _key(query)
        kept = self._entries.get(key)
        if kept is not None and kept[0] > self._clock():
            return kept[1]
        # Viewers asking while a count is under way wait for that one instead of asking the store again.
        running = self._running.get(key)
        if running is None:
            running = asyncio.create_task(self._fill(key, query))
            running.add_done_callback(_retrieve)
            self._running[key] = running
        # shield: a viewer who gives up must not cancel the count the others wait for
        return await asyncio.shield(running)

    async def _fill(self, key: str, query: dict[str, Any]) -> int:
        try:
            found = await self._count_one(query)
        finally:
            self._running.pop(key, None)
        now = self._clock()
        if len(self._entries) >= self._max_entries:
            self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
            if len(self._entries) >= self._max_entries:
                self._entries.clear()
        self._entries[key] = (now + self.ttl, found)
        return found


def _retrieve(task: asyncio.Task[int]) -> None:
    # A failed count whose viewers all gave up is still looked at, so asyncio does not log it as lost;
    # the viewers who waited got the error themselves.
    if not task.cancelled():
        task.exception()


__all__ = ["CountCache"]
