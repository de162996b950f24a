"""Parse and publish: how many 5 KB emails one ingest process accepts per second.

It starts Kafka, the store, the tickets service (which owns the mailbox list) and one ingest process on
free ports in a temporary folder. Once ingest has read the mailbox list, the tickets service is stopped,
so nothing but ingest, Kafka and the store runs while the load generator sends `--emails` messages of
about 5 KB (text and HTML, Swedish letters) over `--connections` SMTP connections. An email counts when
ingest answered 250, which it does only after Kafka acknowledged the event; afterwards every event is
read back from Kafka and counted, so nothing accepted can be missing or doubled unnoticed.

    python tools/bench_ingest.py --emails 6000 --connections 48
"""

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
from aiokafka import AIOKafkaConsumer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "infra"))
sys.path.insert(0, str(ROOT / "tools"))

import stack  # noqa: E402
from bench import cpu_seconds, pct  # noqa: E402
from benchkit import BIN, kafka_and_store, start_service  # noqa: E402

from contracts import topics  # noqa: E402

PARAGRAPH = (
    "Hej! Skrivaren på plan 3 skriver ut blanka sidor sedan i morse, och kön växer. Vi har startat om den "
    "två gånger utan att det hjälpte. Kan ni titta på det så snart som möjligt? Tack på förhand. "
)


def make_mail(n: int, run: str) -> bytes:
    """Return the n-th message: about 5 KB, text and HTML alternatives."""
    msg = EmailMessage()
    msg["From"] = f"Kund {n} <kund{n}.{run}@example.se>"
    msg["To"] = "support@localhost"
    msg["Subject"] = f"Ingest {run} #{n}: skrivaren är trasig"
    msg["Message-ID"] = f"<ingest-{run}-{n}@example.se>"
    text = PARAGRAPH * 9
    msg.set_content(text)
    msg.add_alternative(f"<html><body><p>{text}</p></body></html>", subtype="html")
    return msg.as_bytes()


async def send_all(port: int, mails: list[bytes], connections: int) -> tuple[float, list[float], list[str]]:
    """Send the mails over `connections` connections; return (seconds, latencies in ms, errors)."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for raw in mails:
        queue.put_nowait(raw)
    latencies: list[float] = []
    errors: list[str] = []

    async def connection() -> None:
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=60)
        await smtp.connect()
        try:
            while not queue.empty():
                raw = queue.get_nowait()
                t0 = time.perf_counter()
                try:
                    await smtp.sendmail("bench@example.se", ["support@localhost"], raw)
                    latencies.append((time.perf_counter() - t0) * 1000)
                except aiosmtplib.SMTPException as exc:
                    errors.append(repr(exc))
        finally:
            await smtp.quit()

    t0 = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(connections)))
    return time.perf_counter() - t0, latencies, errors


async def count_events(bootstrap: str, run: str, expected: int, wait: float = 60) -> tuple[int, int]:
    """Read the inbound-email topic from the start; return (distinct messages of this run, events of this run)."""
    consumer = AIOKafkaConsumer(
        topics.INBOUND_EMAIL, bootstrap_servers=bootstrap, group_id=f"bench-ingest-{run}", auto_offset_reset="earliest"
    )
    await consumer.start()
    seen: set[str] = set()
    events = 0
    deadline = time.monotonic() + wait
    try:
        while len(seen) < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            for records in batch.values():
                for record in records:
                    payload = json.loads(record.value)["payload"]
                    if f"ingest-{run}-" in (payload.get("message_id") or ""):
                        seen.add(payload["message_id"])
                        events += 1
        # a little longer, so a doubled event published late would still be counted
        for records in (await consumer.getmany(timeout_ms=2000, max_records=5000)).values():
            for record in records:
                payload = json.loads(record.value)["payload"]
                if f"ingest-{run}-" in (payload.get("message_id") or ""):
                    seen.add(payload["message_id"])
                    events += 1
    finally:
        await consumer.stop()
    return len(seen), events


def main() -> None:
    """Run the ingest benchmark."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--emails", type=int, default=6000)
    parser.add_argument("--connections", type=int, default=48)
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="helpdesk-bench-ingest-"))
    tickets_port, ingest_port, smtp_port = stack.free_port(), stack.free_port(), stack.free_port()
    procs: dict[str, subprocess.Popen[bytes]] = {}
    run = f"{time.time():.0f}"
    try:
        with kafka_and_store(data) as (kafka, store, base_env):
            env = {
                **base_env,
                "HELPDESK_TICKETS_URL": f"http://127.0.0.1:{tickets_port}",
                "HELPDESK_MAILBOX_REFRESH_SECONDS": "3600",
                "HELPDESK_SMTP_PORT": str(smtp_port),
            }
            subprocess.run([str(BIN / "tickets"), "migrate"], env=env, check=True, capture_output=True)  # noqa: S603
            for name, port in (("tickets", tickets_port), ("ingest", ingest_port)):
                procs[name] = start_service(name, env, port, data / f"{name}.log")
            try:
                measure(args, kafka, store, smtp_port, procs, run)
            finally:
                for proc in procs.values():
                    proc.terminate()
                for proc in procs.values():
                    proc.wait(timeout=30)
    finally:
        print(f"· logs in {data}") if os.environ.get("BENCH_KEEP") else shutil.rmtree(data, ignore_errors=True)


def measure(
    args: argparse.Namespace,
    kafka: stack.KafkaServer,
    store: stack.StoreServer,
    smtp_port: int,
    procs: dict[str, subprocess.Popen[bytes]],
    run: str,
) -> None:
    """Warm ingest up, leave it alone, send the emails and print what was measured."""
    # warm up (ingest reads the mailbox list, Kafka producers connect), then leave ingest alone
    warm, _, errors = asyncio.run(send_all(smtp_port, [make_mail(n, f"warm{run}") for n in range(50)], 4))
    if errors:
        raise RuntimeError(f"warm-up failed: {errors[:3]}")
    procs["tickets"].terminate()  # ingest has the mailbox list now
    mails = [make_mail(n, run) for n in range(args.emails)]
    size = sum(len(m) for m in mails) / len(mails)
    pids = {"ingest": procs["ingest"].pid, "kafka": kafka.pid, "store": store.pid}
    before = {name: cpu_seconds(pid) for name, pid in pids.items() if pid}
    print(f"· sending {args.emails:,} emails of {size / 1024:.1f} KB over {args.connections} connections")
    seconds, latencies, errors = asyncio.run(send_all(smtp_port, mails, args.connections))
    cpu = {name: (cpu_seconds(pid) - before[name]) / seconds * 100 for name, pid in pids.items() if pid}
    distinct, events = asyncio.run(count_events(kafka.bootstrap, run, args.emails))
    accepted = len(latencies)
    print(f"\n== ingest: {accepted:,} of {args.emails:,} emails accepted (250) in {seconds:.1f}s ==")
    print(f"accepted and published       {accepted / seconds:7.0f} emails/s")
    print(f"SMTP latency (DATA to 250)   p50 {pct(latencies, 50):.1f} ms  p95 {pct(latencies, 95):.1f} ms")
    print(f"in Kafka                     {distinct:,} distinct, {events:,} events (lost {accepted - distinct}, "
          f"doubled {events - distinct}); errors {len(errors)}")  # fmt: skip
    print("CPU % of one core:           " + ", ".join(f"{k} {v:.0f}" for k, v in cpu.items()))


if __name__ == "__main__":
    main()
