"""Timer scheduler: whether 100,000 pending timers fire on time, each once, with two schedulers on one store.

It starts its own store on a free port in a temporary folder, inserts `--timers` pending timers (a share
`--at-once` already due, the rest due evenly over the coming minutes at `--rate` per second, starting
`--lead` seconds from now so that the insert is over first), then runs two scheduler processes against the
same collection, each with a no-op handler that records the timer's id and its lag (fired_at - due_at).
When the collection is empty it prints timers fired per second, lag percentiles and doubles (must be 0).

    uv run python tools/bench_timers.py --timers 100000 --rate 300
"""

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "infra"))
sys.path.insert(0, str(ROOT / "tools"))

import stack  # noqa: E402
from bench import pct  # noqa: E402
from hdkit.mongo import make_client  # noqa: E402
from triggers.scheduler import FREE, PENDING, Scheduler, Timer  # noqa: E402

DB, COLL = "bench_timers", "timers"


async def worker(url: str, owner: str, batch: int, poll: float) -> list[tuple[str, float, float]]:
    """Run one scheduler until the collection is empty; return (id, lag seconds, fired_at) rows."""
    client = make_client(url)
    coll = client[DB][COLL]
    sched = Scheduler(coll, owner, batch=batch, poll_seconds=poll)
    rows: list[tuple[str, float, float]] = []

    async def handle(timer: Timer) -> None:
        now = datetime.now(UTC)
        rows.append((timer.id, (now - timer.due_at).total_seconds(), now.timestamp()))

    task = asyncio.create_task(sched.run(handle))
    try:
        while True:
            if not await coll.count_documents({}):
                break
            await asyncio.sleep(1)
        await asyncio.sleep(1)  # let a last claimed batch finish
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.close()
    return rows


async def load(url: str, timers: int, at_once: float, rate: float, lead: float) -> tuple[datetime, float]:
    """Insert the pending timers; return the first spread due time and the insert's seconds."""
    client = make_client(url)
    coll = client[DB][COLL]
    await client.drop_database(DB)
    await Scheduler(coll, "loader").ensure_indexes()
    now = datetime.now(UTC)
    start = now + timedelta(seconds=lead)
    n_now = int(timers * at_once)
    docs = []
    for n in range(timers):
        due = now - timedelta(seconds=1) if n < n_now else start + timedelta(seconds=(n - n_now) / rate)
        docs.append(
            {
                "_id": f"bench:{n:06d}",
                "state": PENDING,
                "due_at": due.replace(microsecond=due.microsecond // 1000 * 1000),
                "kind": "bench",
                "payload": {"n": n},
                "owner": "",
                "claim": "",
                "lease_until": FREE,
                "attempts": 0,
            }
        )
    t0 = time.perf_counter()
    for i in range(0, len(docs), 5000):
        await coll.insert_many(docs[i : i + 5000], ordered=False)
    took = time.perf_counter() - t0
    await client.close()
    return start, took


def main() -> None:
    """Run the benchmark, or one scheduler process of it (`--worker`)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--timers", type=int, default=100_000)
    ap.add_argument("--rate", type=float, default=300.0, help="due timers per second after the lead")
    ap.add_argument("--at-once", type=float, default=0.05, help="share of the timers already due at the start")
    ap.add_argument("--lead", type=float, default=60.0, help="seconds from the insert's start to the first spread due")
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--poll", type=float, default=1.0)
    ap.add_argument("--worker", nargs=3, metavar=("URL", "OWNER", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        url, owner, out = args.worker
        Path(out).write_text(json.dumps(asyncio.run(worker(url, owner, args.batch, args.poll))))
        return

    with tempfile.TemporaryDirectory(prefix="bench-timers-") as tmp:
        data = Path(tmp)
        store = stack.StoreServer(stack.free_port(), data / "store", command=stack.ensure_store(stack.CACHE))
        store.start()
        try:
            store.wait_ready()
            start, took = asyncio.run(load(store.url, args.timers, args.at_once, args.rate, args.lead))
            n_now = int(args.timers * args.at_once)
            print(
                f"store: {store.backend}; inserted {args.timers} pending timers in {took:.1f} s "
                f"({args.timers / took:.0f}/s): {n_now} due at once, {args.timers - n_now} due at {args.rate:.0f}/s "
                f"over {(args.timers - n_now) / args.rate:.0f} s starting {args.lead:.0f} s after the insert began"
            )
            if datetime.now(UTC) > start:
                print("warning: the insert outlasted --lead; some spread timers were overdue at the start")
            t0 = time.perf_counter()
            outs = [data / f"w{i}.json" for i in range(2)]
            procs = [
                subprocess.Popen(  # noqa: S603 - this interpreter and this script
                    [
                        sys.executable,
                        __file__,
                        "--worker",
                        store.url,
                        f"w{i}",
                        str(out),
                        "--batch",
                        str(args.batch),
                        "--poll",
                        str(args.poll),
                    ]
                )
                for i, out in enumerate(outs)
            ]
            for proc in procs:
                proc.wait()
            wall = time.perf_counter() - t0
        finally:
            store.stop()
        rows = [row for out in outs for row in json.loads(out.read_text())]
        per_worker = [len(json.loads(out.read_text())) for out in outs]

    counts = Counter(r[0] for r in rows)
    doubles = sum(c - 1 for c in counts.values())
    missing = args.timers - len(counts)
    spread = sorted(r[1] for r in rows if int(r[0].split(":")[1]) >= n_now)
    burst = sorted(r[1] for r in rows if int(r[0].split(":")[1]) < n_now)
    burst_times = [r[2] for r in rows if int(r[0].split(":")[1]) < n_now]
    burst_span = (max(burst_times) - min(burst_times)) if burst_times else 0.0
    print(f"fired {len(rows)} in {wall:.1f} s wall (workers: {per_worker}); doubles {doubles}; missing {missing}")
    print(
        f"burst of {len(burst)} due at once: drained in {burst_span:.1f} s = {len(burst) / max(burst_span, 1e-9):.0f} "
        f"timers/s (two schedulers, batch {args.batch})"
    )
    print(
        f"lag, burst:  p50 {pct(burst, 50):.2f} s  p95 {pct(burst, 95):.2f} s  p99 {pct(burst, 99):.2f} s  "
        f"max {max(burst, default=0):.2f} s"
    )
    print(
        f"lag, spread ({args.rate:.0f}/s due): p50 {pct(spread, 50):.2f} s  p95 {pct(spread, 95):.2f} s  "
        f"p99 {pct(spread, 99):.2f} s  max {max(spread, default=0):.2f} s"
    )
    lags = sorted(r[1] for r in rows)
    print(f"lag, all:    p50 {pct(lags, 50):.2f} s  p95 {pct(lags, 95):.2f} s  p99 {pct(lags, 99):.2f} s")
    ok = doubles == 0 and missing == 0 and pct(lags, 99) < 5
    print("target (100,000 timers, p99 lag < 5 s, no doubles):", "met" if ok else "NOT met")


if __name__ == "__main__":
    main()
