"""A served process keeps its start-up heap out of the collector's full collections.

Run in a child interpreter each: freezing the heap of the test process itself would keep every later test's
garbage cycles of the frozen objects alive.
"""

import subprocess
import sys
import textwrap


def run(code: str) -> str:
    done = subprocess.run(  # noqa: S603 - this interpreter, our own code
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_serve_freezes_what_was_built_before_it_and_collects_young_objects_less_often() -> None:
    out = run(
        """
        import gc
        import uvicorn
        from fastapi import FastAPI
        from hdkit import service
        from types import SimpleNamespace

        seen = {}

        def fake_run(app, **options):
            seen["frozen"] = gc.get_freeze_count()
            seen["threshold"] = gc.get_threshold()[0]

        uvicorn.run = fake_run
        before = gc.get_freeze_count()
        service.serve(FastAPI(), SimpleNamespace(http_host="127.0.0.1", http_port=0))
        print(before, seen["frozen"], seen["threshold"], service.YOUNG_COLLECTION_THRESHOLD)
        """
    )
    before, frozen, threshold, expected = (int(v) for v in out.split())
    assert before == 0
    assert frozen > 50_000  # the imports of FastAPI, pydantic, pymongo, faststream ... at least
    assert threshold == expected


def test_a_full_collection_after_settling_walks_only_what_came_later() -> None:
    out = run(
        """
        import gc
        import time
        import fastapi, pydantic, pymongo, faststream  # what a service has loaded before serving
        from hdkit.service import settle_heap

        def full_collection_ms():
            best = float("inf")
            for _ in range(5):
                started = time.perf_counter()
                gc.collect()
                best = min(best, time.perf_counter() - started)
            return best * 1000

        built = [{"n": i, "inner": {"k": [i]}} for i in range(200_000)]  # a big start-up structure
        unsettled = full_collection_ms()
        settle_heap()
        settled = full_collection_ms()
        print(f"{unsettled} {settled}")
        """
    )
    unsettled, settled = (float(v) for v in out.split())
    assert settled < unsettled / 5, (unsettled, settled)
