"""The FerretDB launcher keeps SQLite's write-ahead log bounded while readers never pause.

SQLite's own checkpoints cannot empty the log while some connection is always reading, and FerretDB's
pool keeps readers busy under load: the log grew by gigabytes in the tickets benchmark. The launcher
empties it once it passes a limit (HELPDESK_STORE_WAL_LIMIT, -wal-limit).
"""

import asyncio
import sys
import time
from pathlib import Path

import pytest
from pymongo import AsyncMongoClient

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "infra"))
import stack  # noqa: E402


@pytest.fixture
def small_wal_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    command = stack.ensure_store(stack.CACHE)
    if Path(command[0]).name.startswith("mongod"):
        pytest.skip("a real mongod has no SQLite log")
    monkeypatch.setenv("HELPDESK_STORE_WAL_LIMIT", str(1 << 20))
    store = stack.StoreServer(stack.free_port(), tmp_path / "store", command=command)
    store.start()
    try:
        store.wait_ready()
        yield store
    finally:
        store.stop()


async def test_the_write_ahead_log_is_emptied_past_its_limit_while_readers_keep_reading(small_wal_store) -> None:
    client = AsyncMongoClient(small_wal_store.url)
    coll = client.walcheck.docs
    wal = small_wal_store.db_dir / "walcheck.sqlite-wal"
    stop = asyncio.Event()

    async def reader() -> None:
        while not stop.is_set():
            await coll.find_one({"_id": 1})

    try:
        await coll.insert_one({"_id": 1, "body": "x"})
        readers = [asyncio.create_task(reader()) for _ in range(4)]
        largest = 0
        for i in range(600):  # about 6 MB through the log
            await coll.insert_one({"_id": f"d{i}", "body": "y" * 10_000})
            largest = max(largest, wal.stat().st_size)
        assert largest > 2 << 20  # the log really grew past its limit
        deadline = time.monotonic() + 10
        while wal.exists() and wal.stat().st_size > 1 << 20 and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.2)  # polling a file's size: there is nothing to wait on
        size = wal.stat().st_size if wal.exists() else 0
        stop.set()
        await asyncio.gather(*readers)
        assert size <= 1 << 20, f"the log stayed at {size:,} bytes"
        assert await coll.count_documents({}) == 601  # and nothing was lost by emptying it
    finally:
        stop.set()
        await client.drop_database("walcheck")
        await client.close()
