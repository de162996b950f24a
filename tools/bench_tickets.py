"""Seed N tickets (default 1,000,000) with a bulk loader, then measure the tickets service at that size.

Prints: queue pages of 50 (every default view, as an admin and as an agent in two groups) p50/p95,
counts of all views together, look-up by number, search, and commands through Kafka per second.
It starts its own Kafka, store and tickets process on free ports in a temporary folder (or --dir, kept
with --keep so a second run can skip the seeding) and stops them afterwards.
"""

import argparse
import asyncio
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "infra"))

import stack  # noqa: E402
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # noqa: E402
from benchkit import BIN, TOKEN, kafka_and_store, start_service  # noqa: E402
from contracts.commands import UpdateTicket  # noqa: E402
from contracts.models import Actor  # noqa: E402
from pymongo import AsyncMongoClient  # noqa: E402
from tickets.access import VIEWS  # noqa: E402
from tickets.config import default_config  # noqa: E402
from tickets.domain import new_document  # noqa: E402
from tickets.search import SearchIndex, ticket_texts  # noqa: E402
from tickets.store import Store  # noqa: E402

from contracts import Envelope, topics  # noqa: E402

GROUPS = ["support", "billing", "it", "sales", "field"]
HANDLERS = [f"agent{i}" for i in range(1, 21)]
WORDS = (
    "skrivare trasig faktura leverans lösenord inloggning nätverk skärm tangentbord beställning retur "
    "garanti kvitto konto uppdatering installation licens server backup e-post kalender telefon mobil "
    "printer invoice delivery password login network screen keyboard order refund warranty account "
    "update install licence backup mail calendar phone skjerm bestilling faktura levering kode adgang"
).split()


def pct(values: list[float], q: float) -> float:
    """Return the q-th percentile (0-100) of values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def make_ticket(n: int, total: int, rnd: random.Random, now: datetime) -> dict[str, Any]:
    """Return the n-th synthetic ticket: most closed, some open, a few dormant, spread over three years."""
    ticket_type = CONFIG.types[n % len(CONFIG.types)]
    created = now - timedelta(minutes=(total - n) * 1.5)
    roll = rnd.random()
    status = (
        "closed"
        if roll < 0.85
        else rnd.choice(["new", "open", "open", "waiting_for_customer", "waiting_for_agent", "resolved"])
        if roll < 0.98
        else "dormant"
    )
    handler = None if status == "new" or rnd.random() < 0.1 else rnd.choice(HANDLERS)
    words = " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(3, 8)))
    email = f"kund{rnd.randint(1, 100_000)}@example.se"
    actor_doc = {"role": "customer", "id": None, "email": email, "name": ""}
    doc = new_document(
        ticket_id=f"bench-{n}",
        number=n,
        title=f"{words.capitalize()} #{n}",
        ticket_type=ticket_type,
        requester={"email": email, "name": f"Kund {n}"},
        channel="email",
        actor=ACTOR,
        now=created,
        values={
            "status": status,
            "description": f"Hej! {words}. Mvh",
            "group": rnd.choice(GROUPS),
            "handler": handler,
            "priority": rnd.choice(["low", "medium", "medium", "high"]),
            "organisation": f"Org {rnd.randint(1, 5000)}" if rnd.random() < 0.5 else None,
        },
    )
    updated = created + timedelta(minutes=rnd.randint(0, 60 * 24 * 10))
    doc["updated_at"] = min(updated, now)
    doc["last_updated_by"] = actor_doc
    if rnd.random() < 0.6:
        doc["last_customer_comment_at"] = doc["updated_at"]
    if status == "dormant":
        doc["wake_at"] = now + timedelta(days=rnd.randint(1, 30))
    doc["comments"] = [
        {
            "comment_id": f"c{n}",
            "visibility": "public",
            "author": actor_doc,
            "channel": "email",
            "text": f"Hej! {words}. Mvh",
            "created_at": created,
            "kind": "customer_comment",
        }
    ]
    return doc


CONFIG = default_config()
ACTOR = Actor(role="customer", email="bench@example.se")


async def seed(url: str, db_name: str, total: int, batch: int = 2000) -> float:
    """Bulk-load `total` tickets; return the seconds it took."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url)
    store = Store(client[db_name])
    already = await store.tickets.estimated_document_count()
    if already >= total:
        print(f"· {already:,} tickets already seeded", flush=True)
        await client.close()
        return 0.0
    await store.tickets.delete_many({})
    rnd = random.Random(42)  # noqa: S311 - synthetic data
    now = datetime.now(UTC)
    t0 = time.perf_counter()
    docs: list[dict[str, Any]] = []
    for n in range(1, total + 1):
        docs.append(make_ticket(n, total, rnd, now))
        if len(docs) == batch:
            await store.tickets.insert_many(docs, ordered=False)
            docs = []
            if n % 100_000 == 0:
                print(f"· seeded {n:,} ({n / (time.perf_counter() - t0):,.0f}/s)", flush=True)
    if docs:
        await store.tickets.insert_many(docs, ordered=False)
    await store.counters.update_one({"_id": "ticket_number"}, {"$set": {"value": total}}, upsert=True)
    elapsed = time.perf_counter() - t0
    await client.close()
    return elapsed


async def seed_search(url: str, db_name: str, total: int) -> float:
    """Bulk-load the search index of the seeded tickets (the same texts, regenerated); return the seconds."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url)
    index = SearchIndex(client[db_name])
    await index.ensure_indexes()
    if await client[db_name]["search_tickets"].estimated_document_count() >= total:
        print(f"· search index of {total:,} tickets already seeded", flush=True)
        await client.close()
        return 0.0
    rnd = random.Random(42)  # noqa: S311 - the same sequence as seed()
    now = datetime.now(UTC)
    t0 = time.perf_counter()
    await index.bulk_load((n, ticket_texts(make_ticket(n, total, rnd, now))) for n in range(1, total + 1))
    await client.close()
    return time.perf_counter() - t0


def timed(client: httpx.Client, path: str, headers: dict[str, str], reps: int) -> list[float]:
    """Return the latencies in ms of `reps` GETs of `path`."""
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        response = client.get(path, headers=headers)
        out.append((time.perf_counter() - t0) * 1000)
        response.raise_for_status()
    return out


def measure_queries(base: str, total: int, reps: int) -> dict[str, Any]:
    """Measure pages, counts and look-ups through the tickets HTTP API."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    admin = {**auth, "X-Actor-Id": "admin", "X-Actor-Role": "admin"}
    agent = {**auth, "X-Actor-Id": "agent3", "X-Actor-Role": "agent", "X-Actor-Groups": "support,billing"}
    views = list(VIEWS)
    results: dict[str, Any] = {}
    with httpx.Client(base_url=base, timeout=60) as client:
        for who, headers in (("admin", admin), ("agent", agent)):
            for view in views:
                timed(client, f"/api/tickets?view={view}&limit=50", headers, 2)  # warm
                lat = timed(client, f"/api/tickets?view={view}&limit=50", headers, reps)
                items = client.get(f"/api/tickets?view={view}&limit=50", headers=headers).json()["items"]
                results[f"page {who} {view}"] = (statistics.median(lat), pct(lat, 95), len(items))
            cursor = client.get("/api/tickets?view=all_open&limit=50", headers=headers).json()["next_cursor"]
            lat = timed(client, f"/api/tickets?view=all_open&limit=50&cursor={cursor}", headers, reps)
            results[f"page {who} all_open (page 2)"] = (statistics.median(lat), pct(lat, 95), 50)
            lat = timed(client, "/api/tickets/counts", headers, reps)
            counts = client.get("/api/tickets/counts", headers=headers).json()["views"]
            results[f"counts {who}"] = (statistics.median(lat), pct(lat, 95), counts)
        for q in ("skrivare", "faktura leverans", "printer invoice delivery", "kund4711@example.se", "zyxwvu"):
            for who, headers in (("admin", admin), ("agent", agent)):
                timed(client, f"/api/tickets/search?q={q}", headers, 2)
                lat = timed(client, f"/api/tickets/search?q={q}", headers, reps)
                items = client.get(f"/api/tickets/search?q={q}", headers=headers).json()["items"]
                results[f"search {who} '{q}'"] = (statistics.median(lat), pct(lat, 95), len(items))
        rnd = random.Random(7)  # noqa: S311
        lat = []
        for _ in range(reps * 3):
            n = rnd.randint(1, total)
            t0 = time.perf_counter()
            client.get(f"/api/tickets/{n}", headers=admin).raise_for_status()
            lat.append((time.perf_counter() - t0) * 1000)
        results["look-up by number"] = (statistics.median(lat), pct(lat, 95), None)
    return results


async def measure_commands(bootstrap: str, total: int, count: int) -> tuple[float, float]:
    """Produce `count` UpdateTicket commands to Kafka; return (commands/s, seconds until all were applied)."""
    rnd = random.Random(11)  # noqa: S311
    run = f"{time.time():.0f}"
    numbers = rnd.sample(range(1, total + 1), count)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=262144)
    consumer = AIOKafkaConsumer(
        topics.TICKET_EVENTS, bootstrap_servers=bootstrap, group_id=f"bench-{run}", auto_offset_reset="latest"
    )
    await consumer.start()
    await producer.start()
    while not consumer.assignment():  # noqa: ASYNC110 - aiokafka offers no event for the first assignment
        await asyncio.sleep(0.1)
    await consumer.seek_to_end()
    expected = set()
    t0 = time.perf_counter()
    for i, n in enumerate(numbers):
        cmd = UpdateTicket(
            command_id=f"bench-{run}-{i:07d}",
            actor=Actor(role="agent", id="agent1"),
            number=n,
            fields={"tags": ["bench", f"run{run}"]},
        )
        envelope = Envelope.wrap(cmd, event_id=cmd.command_id, key=f"bench-{n}")
        expected.add(cmd.command_id)
        await producer.send(topics.TICKET_COMMANDS, envelope.model_dump_json().encode(), key=f"bench-{n}".encode())
    await producer.flush()
    sent = time.perf_counter() - t0
    seen: set[str] = set()
    deadline = time.perf_counter() + 600
    while seen != expected and time.perf_counter() < deadline:
        batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
        for records in batch.values():
            for record in records:
                data = json.loads(record.value)
                if data["type"] == "TicketUpdated" and data.get("causation_id") in expected:
                    seen.add(data["causation_id"])
    elapsed = time.perf_counter() - t0
    await producer.stop()
    await consumer.stop()
    print(f"· {count:,} commands produced in {sent:.1f}s; {len(seen):,} applied", flush=True)
    return len(seen) / elapsed, elapsed


def main() -> None:
    """Run the tickets benchmark."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--commands", type=int, default=20_000)
    parser.add_argument("--reps", type=int, default=40)
    parser.add_argument("--dir", type=Path, default=None, help="data folder (kept with --keep; reused when seeded)")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--only", choices=("queries", "commands"), help="measure only queries or only commands")
    args = parser.parse_args()
    data = args.dir or Path(tempfile.mkdtemp(prefix="helpdesk-bench-tickets-"))
    data.mkdir(parents=True, exist_ok=True)
    http_port = stack.free_port()
    try:
        with kafka_and_store(data) as (kafka, store, env):
            subprocess.run([str(BIN / "tickets"), "migrate"], env=env, check=True, capture_output=True)  # noqa: S603
            print(f"· store: {store.backend}; seeding {args.tickets:,} tickets ...", flush=True)
            seconds = asyncio.run(seed(store.url, "helpdesk_tickets", args.tickets))
            if seconds:
                print(
                    f"· seeded {args.tickets:,} tickets in {seconds:.0f}s ({args.tickets / seconds:,.0f}/s)", flush=True
                )
            seconds = asyncio.run(seed_search(store.url, "helpdesk_tickets", args.tickets))
            if seconds:
                print(f"· search index of {args.tickets:,} tickets bulk-loaded in {seconds:.0f}s", flush=True)
            proc = start_service("tickets", env, http_port, data / "tickets.log")
            try:
                report(args, f"http://127.0.0.1:{http_port}", kafka.bootstrap, store.backend)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
    finally:
        if not args.keep and args.dir is None:
            shutil.rmtree(data, ignore_errors=True)


def report(args: argparse.Namespace, base: str, bootstrap: str, backend: str) -> None:
    """Measure queries and commands against the running tickets service and print the figures."""
    results = measure_queries(base, args.tickets, args.reps) if args.only != "commands" else {}
    rate, elapsed = (
        asyncio.run(measure_commands(bootstrap, args.tickets, args.commands)) if args.only != "queries" else (0.0, 0.0)
    )
    print(f"\n== tickets at {args.tickets:,} (store: {backend}) ==")
    for name, (p50, p95, extra) in results.items():
        suffix = f"  ({extra} rows)" if isinstance(extra, int) else ""
        print(f"{name:<48} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms{suffix}")
        if name.startswith("counts") and isinstance(extra, dict):
            print(f"{'':<48} {', '.join(f'{k} {v:,}' for k, v in extra.items())}")
    if args.only != "queries":
        print(f"{'commands through Kafka':<48} {rate:7.0f} /s  ({args.commands:,} in {elapsed:.1f}s)")


if __name__ == "__main__":
    main()
