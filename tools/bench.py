"""Push N emails through the whole journey and print throughput, latency and CPU per process.

Email accepted by SMTP (250) -> ticket -> trigger -> automatic reply received by the mail catcher.
Latency of one email: from the start of its SMTP transaction to the catcher writing the reply.
It starts its own helpdesk on free ports in a temporary folder and stops it afterwards.
"""

import argparse
import email
import email.policy
import os
import shutil
import smtplib
import statistics
import sys
import tempfile
import threading
import time
from email.message import EmailMessage
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "infra"))

from local import LocalHelpdesk, Ports  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """Return user+system CPU seconds of a process and its waited-for children."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return (utime + stime + cutime + cstime) / CLK_TCK


def processes(hd: LocalHelpdesk) -> dict[str, int]:
    """Return the pid of every process of the stack."""
    pids = {name: proc.pid for name, proc in hd.procs.items()}
    if hd.kafka and hd.kafka.pid:
        pids["kafka"] = hd.kafka.pid
    if hd.store and hd.store.pid:
        pids["store"] = hd.store.pid
    return pids


def make_mail(n: int, run: str) -> EmailMessage:
    """Return the n-th benchmark email."""
    msg = EmailMessage()
    msg["From"] = f"Kund {n} <kund{n}.{run}@example.se>"
    msg["To"] = "support@localhost"
    msg["Subject"] = f"Benchmark {run} #{n}: skrivaren är trasig"
    msg["Message-ID"] = f"<bench-{run}-{n}@example.se>"
    msg.set_content("Hej!\n\nSkrivaren på plan 3 skriver ut blankt. Kan ni hjälpa?\n\nMvh\nKund\n" * 3)
    return msg


def sender(
    hd: LocalHelpdesk, mails: list[EmailMessage], sent: dict[str, float], errors: list[str], interval: float = 0.0
) -> None:
    """Send mails over one SMTP connection (one every `interval` s, 0: at once), recording when each started."""
    smtp = smtplib.SMTP("127.0.0.1", hd.ports.smtp, timeout=60)
    start = time.time()
    try:
        for n, msg in enumerate(mails):
            if interval:
                time.sleep(max(0.0, start + n * interval - time.time()))
            mid = msg["Message-ID"].strip("<>")
            sent[mid] = time.time()
            try:
                smtp.send_message(msg)
            except smtplib.SMTPException as exc:
                errors.append(f"{mid}: {exc}")
    finally:
        smtp.quit()


def collect(hd: LocalHelpdesk, expected: set[str], received: dict[str, float], timeout: float) -> None:
    """Watch the catcher's folder until every expected reply has arrived (or the timeout)."""
    seen: set[Path] = set()
    deadline = time.time() + timeout
    while time.time() < deadline and not expected <= received.keys():
        for path in sorted(hd.mail_dir.glob("*.eml")):
            if path in seen:
                continue
            seen.add(path)
            msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            mid = str(msg.get("In-Reply-To", "")).strip().strip("<>")
            if mid in expected:
                received[mid] = path.stat().st_mtime
        time.sleep(0.05)


def pct(values: list[float], q: float) -> float:
    """Return the q-th percentile (0..100) of values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def run(hd: LocalHelpdesk, count: int, connections: int, label: str, rate: float = 0.0) -> dict[str, float]:
    """Send `count` mails over `connections` connections (at `rate` per second, 0: flat out); return the figures."""
    mails = [make_mail(n, label) for n in range(count)]
    expected = {m["Message-ID"].strip("<>") for m in mails}
    sent: dict[str, float] = {}
    received: dict[str, float] = {}
    errors: list[str] = []
    watcher = threading.Thread(target=collect, args=(hd, expected, received, 60 + count / 5))
    watcher.start()
    pids = processes(hd)
    cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
    t0 = time.time()
    threads = [
        threading.Thread(
            target=sender, args=(hd, mails[i::connections], sent, errors, connections / rate if rate else 0.0)
        )
        for i in range(connections)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    accepted_at = time.time()
    watcher.join()
    t1 = max(received.values(), default=time.time())
    cpu = {name: cpu_seconds(pid) - cpu0[name] for name, pid in pids.items()}
    latencies = [received[m] - sent[m] for m in received]
    elapsed = t1 - t0
    figures = {
        "emails": count,
        "accepted_per_s": count / (accepted_at - t0),
        "replies": len(received),
        "end_to_end_per_s": len(received) / elapsed if elapsed > 0 else 0.0,
        "p50_ms": pct(latencies, 50) * 1000 if latencies else float("nan"),
        "p95_ms": pct(latencies, 95) * 1000 if latencies else float("nan"),
        "p99_ms": pct(latencies, 99) * 1000 if latencies else float("nan"),
        "mean_ms": statistics.fmean(latencies) * 1000 if latencies else float("nan"),
        "elapsed_s": elapsed,
        "errors": len(errors),
    }
    figures.update({f"cpu_{name}": cpu[name] / elapsed * 100 for name in cpu})
    if errors:
        print("first errors:", *errors[:5], sep="\n  ")
    return figures


def main() -> None:
    """Start a helpdesk, warm it up, run the benchmark, print the figures, stop it."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--emails", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--rate", type=float, default=0.0, help="offered emails per second (0: as fast as accepted)")
    parser.add_argument("--keep", action="store_true", help="keep the data folder (logs, mail) afterwards")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="helpdesk-bench-")
    try:
        hd = LocalHelpdesk(
            Path(tmp),
            Ports.free(),
            partitions=args.partitions,
            quiet=True,
            extra_env={"HELPDESK_LOG_LEVEL": "WARNING"},
        )
        print(f"starting a helpdesk in {tmp} …", flush=True)
        hd.start()
        try:
            run(hd, 50, 4, "warmup")
            label = f"r{int(time.time())}"
            pace = f" at {args.rate:g}/s" if args.rate else " as fast as they are accepted"
            print(f"sending {args.emails} emails over {args.connections} SMTP connections{pace} …", flush=True)
            f = run(hd, args.emails, args.connections, label, args.rate)
        finally:
            hd.stop()
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nemails: {f['emails']}  accepted by SMTP: {f['accepted_per_s']:.0f}/s  errors: {f['errors']:.0f}")
    print(
        f"end to end (accepted -> auto-reply caught): {f['replies']:.0f} replies, {f['end_to_end_per_s']:.1f} emails/s"
    )
    print(f"latency ms: p50 {f['p50_ms']:.0f}  p95 {f['p95_ms']:.0f}  p99 {f['p99_ms']:.0f}  (mean {f['mean_ms']:.0f})")
    print("CPU per process (% of one core over the run):")
    for key in sorted(k for k in f if k.startswith("cpu_")):
        print(f"  {key[4:]:<12} {f[key]:6.1f}%")
    if f["replies"] < f["emails"]:
        sys.exit(f"only {f['replies']:.0f} of {f['emails']} automatic replies arrived")


if __name__ == "__main__":
    main()
