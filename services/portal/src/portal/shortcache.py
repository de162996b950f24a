"""One value kept for a few seconds per process: what every list page asks and hardly ever changes.

The staff list and the ticket configuration are the same for every agent's page; asking the user store and
the tickets service for them with every page load and poll cost each page two more round trips under load.
A change shows on pages after at most `ttl` seconds, as with the tickets service's shared counts.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

K = TypeVar("K")
T = TypeVar("T")


class Kept(Generic[T]):
    """A value loaded at most once per `ttl` seconds, by one caller at a time; failures are not kept."""

    def __init__(
        self,
        *,
        ttl: float,
        keep: Callable[[T], bool] = lambda _: True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self._keep = keep
        self._clock = clock
        self._value: tuple[float, T] | None = None
        self._running: asyncio.Task[T] | None = None

    async def get(self, load: Callable[[], Awaitable[T]]) -> T:
        """Return the kept value, or `load()` it (callers asking meanwhile wait for the same load)."""
        if self.ttl <= 0:
            return await load()
        if self._value is not None and self._value[0] > self._clock():
            return self._value[1]
        if self._running is None:
            self._running = asyncio.create_task(self._fill(load))
            self._running.add_done_callback(_retrieve)
        # shield: a caller who gives up must not cancel the load the others wait for
        return await asyncio.shield(self._running)

    def forget(self) -> None:
        """Drop the kept value: the next caller loads it again."""
        self._value = None

    async def _fill(self, load: Callable[[], Awaitable[T]]) -> T:
        try:
            value = await load()
        finally:
            self._running = None
        if self._keep(value):
            self._value = (self._clock() + self.ttl, value)
        return value


class KeptByKey(Generic[K, T]):
    """One `Kept` value per key (e.g. per user), at most `max_keys` at once (all dropped when full)."""

    def __init__(self, *, ttl: float, max_keys: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.max_keys = max_keys
        self._clock = clock
        self._kept: dict[K, Kept[T]] = {}

    async def get(self, key: K, load: Callable[[], Awaitable[T]]) -> T:
        """Return the value kept for `key`, or `load()` it (callers of the same key meanwhile share the load)."""
        kept = self._kept.get(key)
        if kept is None:
            if len(self._kept) >= self.max_keys:
                self._kept.clear()
            kept = self._kept[key] = Kept(ttl=self.ttl, clock=self._clock)
        return await kept.get(load)

    def forget(self, key: K) -> None:
        """Drop what is kept for `key` (a load running meanwhile is not kept either)."""
        self._kept.pop(key, None)


def _retrieve(task: "asyncio.Task[object]") -> None:
    # A failed load whose callers all gave up is still looked at, so asyncio does not log it as lost.
    if not task.cancelled():
        task.exception()


__all__ = ["Kept", "KeptByKey"]
