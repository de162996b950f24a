"""Automatic-mail counts on the real store: one atomic count per key and window, old windows dropped."""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from notify.store import Store


async def test_concurrent_counts_in_one_window_are_all_counted(mongo: Any) -> None:
    store = Store(mongo)
    await store.ensure_indexes()
    now = datetime(2026, 11, 23, 10, 5, tzinfo=UTC)
    counts = await asyncio.gather(
        *(store.count_automatic("to:a@example.com", timedelta(hours=1), now) for _ in range(8))
    )
    assert sorted(counts) == list(range(1, 9))
    assert await store.count_automatic("to:a@example.com", timedelta(hours=1), now + timedelta(hours=1)) == 1
    assert await store.count_automatic("to:a@example.com", timedelta(days=1), now) == 1


async def test_windows_that_have_ended_are_forgotten(mongo: Any) -> None:
    store = Store(mongo)
    now = datetime(2026, 11, 23, 10, 5, tzinfo=UTC)
    await store.count_automatic("ticket:t1", timedelta(hours=1), now)
    await store.count_automatic("ticket:t1", timedelta(days=1), now)
    assert await store.forget_counts(now + timedelta(hours=2)) == 1
    assert await store.count_automatic("ticket:t1", timedelta(days=1), now) == 2
