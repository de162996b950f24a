"""The agents' queue page (/tickets?view=...) at a million tickets with 50 agents at once.

`python tools/bench_portal.py --dir D` starts Kafka, the store (on D, seeded with the tickets of
`bench_tickets.py` unless it already holds them: about 25 minutes for a million; then read once into the
page cache, as a database server holds its working set in memory), the tickets service,
notify (the page's bell asks it for the unread count) and the portal, adds 50 agents (each in two of the
five groups; `agent1`..`agent20` are the seeded tickets' handlers) and 3 admins to the portal, then runs
the load from a second process on loopback (`python tools/bench_portal.py load ...`): every agent signs
in and requests queue pages one after the other, rotating over Unassigned, Mine, Waiting for agent and
All open, a quarter of them followed by the next page (cursor). Like a browser running the page's htmx,
an agent also asks for what the page loads after itself (the bell) and polls what it polls (the tab
counts, the bell) at the page's intervals. Scenarios (`--scenarios`):

- `closed`: each agent asks for its next page as soon as the last one came back (no think time), so
  50 requests are always in flight; the harshest reading of "50 agents at once".
- `think`: each agent waits 1-3 s (uniform) between pages, as people working a queue do.

`--writes-per-second N` changes tickets meanwhile (N a second, the priority of a ticket, through the
tickets API's PATCH as an admin), as a working team does; a write makes the tickets service drop the
shared list pages it may change, so this shows the queue page under changes rather than a read-only load. Which tickets
(`--write-to`): `working` (default) the 1,000 open tickets with the latest activity, the ones a team has in
hand, so every write lands on the first pages the agents are looking at; `any` a random one of all the tickets,
mostly closed ones years old (on a machine whose memory manager pages out file pages not touched for a
while, such as the one of the README's figures, these writes wait for the disk).

For each scenario it prints the portal's own time (`Server-Timing: app;dur=`, from the request reaching
the app to the answer's start), the time the load generator saw, requests/s and errors.
"""

import argparse
import asyncio
import json
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "infra"))

import stack  # noqa: E402
from bench_tickets import GROUPS, pct, seed, seed_search  # noqa: E402
from benchkit import BIN, TOKEN, kafka_and_store, start_service  # noqa: E402
from hdkit.service import settle_heap  # noqa: E402
from portal.domain import User  # noqa: E402
from portal.security import Passwords  # noqa: E402
from portal.store import UserStore  # noqa: E402
from pymongo import AsyncMongoClient  # noqa: E402

PASSWORD = "bench-portal-password-0123456789"  # noqa: S105 - a throw-away stack of its own
SESSION_SECRET = "bench-portal-session-secret-0123456789abcdef"  # noqa: S105
VIEWS = ("unassigned", "mine", "waiting_for_agent", "all_open")
SCENARIOS = {"closed": (0.0, 0.0), "think": (1.0, 3.0)}
WRITE_TO = {"working": "the 1,000 latest open tickets", "any": "random tickets of all"}
SERVER_TIMING = re.compile(r"app;dur=([0-9.]+)")
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
NEXT_LINK = re.compile(r'href="(/tickets\?[^"]*cursor=[^"]+)"')
HTMX_TAG = re.compile(r"<[^>]*\bhx-get=[^>]*>")
HX_GET = re.compile(r'\bhx-get="([^"]+)"')
HX_TRIGGER = re.compile(r'\bhx-trigger="([^"]+)"')
EVERY = re.compile(r"every ([0-9.]+)s")


class LoadFailed(Exception):
    """The load process could not sign its agents in or gave no result."""


def warm(folder: Path) -> tuple[int, float]:
    """Read every file of the store once, so the figures are of a server holding its data in memory.

    Right after a restart (or after other work pushed the files out of the page cache) the first minutes of
    a run wait on the disk instead: every page read then costs seconds.
    """
    started, total = time.monotonic(), 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        with open(path, "rb") as f:
            while chunk := f.read(8 << 20):
                total += len(chunk)
    return total, time.monotonic() - started


def accounts(agents: int, admins: int) -> list[dict[str, Any]]:
    """Return the bench's staff: agents in two groups each (ids as the seeded handlers'), then admins."""
    people = [
        {
            "id": f"agent{i}",
            "email": f"agent{i}@bench.example",
            "name": f"Agent {i}",
            "role": "agent",
            "groups": [GROUPS[i % len(GROUPS)], GROUPS[(i + 1) % len(GROUPS)]],
        }
        for i in range(1, agents + 1)
    ]
    people += [
        {"id": f"admin{i}", "email": f"admin{i}@bench.example", "name": f"Admin {i}", "role": "admin", "groups": []}
        for i in range(1, admins + 1)
    ]
    return people


async def add_staff(url: str, people: list[dict[str, Any]]) -> int:
    """Add the staff who are not in the portal's user store yet (one argon2 hash for all); return how many."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url)
    users = UserStore(client["helpdesk_portal"])
    await users.ensure_indexes()
    password_hash = Passwords().hash(PASSWORD)
    added = 0
    for person in people:
        if await users.by_id(person["id"]) is None:
            await users.add(
                User(
                    id=person["id"],
                    email=person["email"],
                    name=person["name"],
                    role=person["role"],
                    groups=tuple(person["groups"]),
                    password_hash=password_hash,
                    created_at=datetime.now(UTC),
                )
            )
            added += 1
    await client.close()
    return added


# --- the load process ---------------------------------------------------------------------------------


@dataclass
class Sample:
    """One request the load generator made."""

    kind: str
    client_ms: float
    server_ms: float | None
    status: int


@dataclass
class Agent:
    """One signed-in person of the load: their own connection and cookies."""

    index: int
    http: httpx.AsyncClient
    samples: list[Sample] = field(default_factory=list)
    view: str = VIEWS[0]


@dataclass
class Extras:
    """What the queue page makes the browser ask for besides itself, in the version of the portal measured."""

    on_load: str = ""
    polls: list[tuple[str, float]] = field(default_factory=list)


async def sign_in(base: str, person: dict[str, Any], index: int) -> Agent:
    """Sign a person in as a browser does: the form's CSRF token from GET /login, then POST /login."""
    http = httpx.AsyncClient(base_url=base, timeout=60, follow_redirects=False)
    form = await http.get("/login")
    token = CSRF_FIELD.search(form.text)
    if form.status_code != 200 or token is None:
        raise LoadFailed(f"GET /login answered {form.status_code} without a CSRF token")
    answer = await http.post(
        "/login", data={"email": person["email"], "password": PASSWORD, "next": "/tickets", "csrf_token": token[1]}
    )
    if answer.status_code != 303:
        raise LoadFailed(f"signing in {person['email']} answered {answer.status_code}")
    return Agent(index, http)


async def fetch(agent: Agent, path: str, kind: str, *, keep: bool) -> str:
    """GET a page, keep its timings when `keep`, and return its body ('' when it failed)."""
    started = time.perf_counter()
    try:
        response = await agent.http.get(path)
    except httpx.HTTPError:
        if keep:
            agent.samples.append(Sample(kind, (time.perf_counter() - started) * 1000, None, 0))
        return ""
    client_ms = (time.perf_counter() - started) * 1000
    timing = SERVER_TIMING.search(response.headers.get("server-timing", ""))
    if keep:
        agent.samples.append(Sample(kind, client_ms, float(timing[1]) if timing else None, response.status_code))
    return response.text if response.status_code == 200 else ""


async def work(agent: Agent, deadline: float, think: tuple[float, float], keep_after: float, extras: Extras) -> None:
    """Ask for queue pages until the deadline: the views in turn, a quarter of them with the next page."""
    rnd = random.Random(agent.index)  # noqa: S311 - a load pattern, not a secret
    turn = agent.index
    while time.perf_counter() < deadline:
        view = VIEWS[turn % len(VIEWS)]
        turn += 1
        keep = time.perf_counter() >= keep_after
        body = await fetch(agent, f"/tickets?view={view}", f"page {view}", keep=keep)
        agent.view = view
        if extras.on_load:
            await fetch(agent, extras.on_load, f"on load {extras.on_load}", keep=keep)
        following = NEXT_LINK.search(body)
        if following and rnd.random() < 0.25 and time.perf_counter() < deadline:
            await pause(rnd, think)
            await fetch(agent, following[1].replace("&amp;", "&"), "next page (cursor)", keep=keep)
        await pause(rnd, think)


async def poll(agent: Agent, path: str, every: float, deadline: float, keep_after: float) -> None:
    """Ask for a fragment the open page polls (htmx `every Ns`), as each agent's browser does."""
    await asyncio.sleep(random.Random(agent.index).uniform(0, every))  # noqa: S311 - pages were opened at random
    while time.perf_counter() + every < deadline:
        await asyncio.sleep(every)
        target = path.format(view=agent.view)
        await fetch(
            agent, target, f"poll {path.split('?')[0]} every {every:g}s", keep=time.perf_counter() >= keep_after
        )


async def working_set(http: httpx.AsyncClient, size: int) -> list[int]:
    """Return the numbers of the `size` open tickets with the latest activity (what the team has in hand)."""
    numbers: list[int] = []
    cursor = None
    while len(numbers) < size:
        params: dict[str, Any] = {"view": "all_open", "limit": min(200, size - len(numbers))}
        if cursor:
            params["cursor"] = cursor
        answer = await http.get("/api/tickets", params=params)
        answer.raise_for_status()
        page = answer.json()
        numbers += [item["number"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    return numbers


async def write_tickets(
    url: str, per_second: float, tickets: int, deadline: float, keep_after: float, *, write_to: str
) -> list[Sample]:
    """Change the priority of tickets (`write_to`) `per_second` times a second as an admin, until the deadline."""
    headers = {
        "Authorization": f"Bearer {TOKEN}",
        "X-Actor-Id": "admin1",
        "X-Actor-Role": "admin",
        "X-Actor-Email": "admin1@bench.example",
    }
    samples: list[Sample] = []
    rnd = random.Random(7)  # noqa: S311 - a load pattern, not a secret
    gate = asyncio.Semaphore(20)  # a slow store must not pile up writes without end

    async def one(number: int, priority: str) -> None:
        async with gate:
            started = time.perf_counter()
            body = {"command_id": uuid.uuid4().hex, "fields": {"priority": priority}}
            try:
                answer = await http.patch(f"/api/tickets/{number}", json=body)
                code = answer.status_code
            except httpx.HTTPError:
                code = 0
            if started >= keep_after:
                samples.append(Sample("write (PATCH as admin)", (time.perf_counter() - started) * 1000, None, code))

    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http:
        targets = await working_set(http, 1_000) if write_to == "working" else range(1, tickets + 1)
        if not targets:
            raise LoadFailed("no open tickets to write to")
        running: set[asyncio.Task[None]] = set()
        next_at = time.perf_counter()
        while next_at < deadline:
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
            task = asyncio.create_task(one(rnd.choice(targets), rnd.choice(["low", "medium", "high"])))
            running.add(task)
            task.add_done_callback(running.discard)
            next_at += 1 / per_second
        await asyncio.gather(*running)
    return samples


async def pause(rnd: random.Random, think: tuple[float, float]) -> None:
    """Wait like a person reading the page (not at all in the closed loop)."""
    if think[1] > 0:
        await asyncio.sleep(rnd.uniform(*think))


def summary(samples: list[Sample], seconds: float) -> dict[str, Any]:
    """Return p50/p95/p99 of the client's and the portal's times, requests/s and errors of some samples."""
    ok = [s for s in samples if s.status == 200]
    server = [s.server_ms for s in ok if s.server_ms is not None]
    client = [s.client_ms for s in ok]

    def spread(values: list[float]) -> list[float]:
        return [pct(values, q) for q in (50, 95, 99)] if values else []

    return {
        "requests": len(samples),
        "per_second": len(samples) / seconds,
        "errors": len(samples) - len(ok),
        "error_statuses": sorted({s.status for s in samples if s.status != 200}),
        "server": spread(server),
        "client": spread(client),
    }


async def load(args: argparse.Namespace, people: list[dict[str, Any]]) -> dict[str, Any]:
    """Sign the agents in, run the scenario, and return its figures, overall and per kind of request."""
    people = [p for p in people if p["role"] == "agent"][: args.agents]
    gate = asyncio.Semaphore(4)  # argon2 takes a while; the sign-ins are not what is measured

    async def one(index: int, person: dict[str, Any]) -> Agent:
        async with gate:
            return await sign_in(args.url, person, index)

    agents = await asyncio.gather(*(one(i, p) for i, p in enumerate(people)))
    extras = await extras_of(agents[0])
    think = (args.think_min, args.think_max)
    started = time.perf_counter()
    keep_after = started + args.warmup
    deadline = keep_after + args.duration
    writes: list[Sample] = []
    writer = (
        asyncio.create_task(
            write_tickets(
                args.tickets_url, args.writes_per_second, args.tickets, deadline, keep_after, write_to=args.write_to
            )
        )
        if args.writes_per_second > 0
        else None
    )
    await asyncio.gather(
        *(work(a, deadline, think, keep_after, extras) for a in agents),
        *(poll(a, path, every, deadline, keep_after) for a in agents for path, every in extras.polls),
    )
    if writer is not None:
        writes = await writer
    measured = time.perf_counter() - keep_after
    for agent in agents:
        await agent.http.aclose()
    samples = [s for a in agents for s in a.samples]
    kinds = sorted({s.kind for s in samples})
    return {
        "agents": len(agents),
        "think": think,
        "seconds": measured,
        "all": summary(samples, measured),
        # the figure the target is about: every queue page, first pages of the views and next pages alike
        "queue pages": summary([s for s in samples if s.kind.startswith(("page ", "next page"))], measured),
        # the writes are not page loads: shown on their own, left out of "all"
        "kinds": {k: summary([s for s in samples if s.kind == k], measured) for k in kinds}
        | ({"write (PATCH as admin)": summary(writes, measured)} if writer is not None else {}),
        "extras": {"on_load": extras.on_load, "polls": extras.polls},
        "writes_per_second": args.writes_per_second,
        "write_to": args.write_to,
    }


async def extras_of(agent: Agent) -> Extras:
    """Find what the page asks for besides itself: the bell on load and every 30 s, the tab counts every 15 s."""
    page = (await agent.http.get(f"/tickets?view={VIEWS[0]}")).text
    extras = Extras()
    for tag in HTMX_TAG.findall(page):
        found, trigger = HX_GET.search(tag), HX_TRIGGER.search(tag)
        if found is None or trigger is None:
            continue
        path, every = found[1].replace("&amp;", "&"), EVERY.search(trigger[1])
        if "load" in trigger[1]:
            extras.on_load = path
        if every:
            # the tabs ask for the counts of the view shown
            path = re.sub(r"view=[a-z_]+", "view={view}", path) if "view=" in path else path
            extras.polls.append((path, float(every[1])))
    return extras


def load_main(argv: list[str]) -> None:
    """Run the load process (`bench_portal.py load ...`) and write its figures as JSON."""
    parser = argparse.ArgumentParser(prog="bench_portal.py load")
    parser.add_argument("--url", required=True)
    parser.add_argument("--accounts", required=True, help="JSON file of the staff (from the main process)")
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--warmup", type=float, default=5)
    parser.add_argument("--think-min", type=float, default=0)
    parser.add_argument("--think-max", type=float, default=0)
    parser.add_argument("--writes-per-second", type=float, default=0)
    parser.add_argument("--write-to", choices=WRITE_TO, default="working")
    parser.add_argument("--tickets-url", default="")
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    people = json.loads(Path(args.accounts).read_text())
    settle_heap()  # as the services do: the load process's own collector pauses are not the portal's time
    Path(args.out).write_text(json.dumps(asyncio.run(load(args, people))))


# --- the main process ---------------------------------------------------------------------------------


def run_scenario(
    base: str, tickets_url: str, accounts_file: Path, name: str, args: argparse.Namespace, out: Path
) -> dict[str, Any]:
    """Run one scenario in a separate load process and return its figures."""
    think_min, think_max = SCENARIOS[name]
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "load",
        f"--url={base}",
        f"--accounts={accounts_file}",
        f"--agents={args.agents}",
        f"--duration={args.duration}",
        f"--warmup={args.warmup}",
        f"--think-min={think_min}",
        f"--think-max={think_max}",
        f"--writes-per-second={args.writes_per_second}",
        f"--write-to={args.write_to}",
        f"--tickets-url={tickets_url}",
        f"--tickets={args.tickets}",
        f"--out={out}",
    ]
    subprocess.run(command, check=True)  # noqa: S603 - this very script
    if not out.exists():
        raise LoadFailed(f"the load process of {name} wrote no figures")
    return json.loads(out.read_text())


def print_figures(name: str, figures: dict[str, Any], tickets: int) -> None:
    """Print one scenario's figures."""
    think = figures["think"]
    how = "no think time (closed loop)" if not think[1] else f"think time {think[0]:g}-{think[1]:g} s"
    if figures.get("writes_per_second"):
        how += f", {figures['writes_per_second']:g} ticket writes/s to {WRITE_TO[figures['write_to']]}"
    print(f"\n== queue page, {tickets:,} tickets, {figures['agents']} agents, {how}, {figures['seconds']:.0f} s ==")
    extras = figures["extras"]
    if extras["on_load"] or extras["polls"]:
        polls = ", ".join(f"{path} every {every:g} s" for path, every in extras["polls"])
        print(f"(as the page's htmx does: {extras['on_load'] or 'nothing'} after each page; {polls or 'no polls'})")
    print(f"{'request':<32} {'n':>6} {'req/s':>7} {'err':>4}   portal p50/p95/p99 ms      client p50/p95/p99 ms")
    for kind, f in [("all", figures["all"]), ("queue pages", figures["queue pages"]), *figures["kinds"].items()]:
        server = " / ".join(f"{v:6.1f}" for v in f["server"]) or "-"
        client = " / ".join(f"{v:6.1f}" for v in f["client"]) or "-"
        print(f"{kind:<32} {f['requests']:>6} {f['per_second']:>7.1f} {f['errors']:>4}   {server:<26} {client}")
        if f["errors"]:
            print(f"{'':<32} error statuses: {f['error_statuses']}")


def main() -> None:
    """Run the portal benchmark."""
    if sys.argv[1:2] == ["load"]:
        load_main(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--admins", type=int, default=3)
    parser.add_argument("--duration", type=float, default=60, help="seconds measured per scenario")
    parser.add_argument("--warmup", type=float, default=5, help="seconds of load before measuring")
    parser.add_argument("--scenarios", default="closed,think", help="comma-separated: closed, think")
    parser.add_argument("--dir", type=Path, default=None, help="data folder (kept with --keep; reused when seeded)")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument(
        "--writes-per-second", type=float, default=0, help="ticket changes a second meanwhile (PATCH as an admin)"
    )
    parser.add_argument("--write-to", choices=WRITE_TO, default="working", help="which tickets the writes change")
    args = parser.parse_args()
    scenarios = [s for s in args.scenarios.split(",") if s]
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    data = args.dir or Path(tempfile.mkdtemp(prefix="helpdesk-bench-portal-"))
    data.mkdir(parents=True, exist_ok=True)
    work_dir = Path(tempfile.mkdtemp(prefix="helpdesk-bench-portal-run-"))
    try:
        with kafka_and_store(data) as (_, store, env):
            subprocess.run([str(BIN / "tickets"), "migrate"], env=env, check=True, capture_output=True)  # noqa: S603
            print(f"· store: {store.backend}; {args.tickets:,} tickets (seeded unless there) ...", flush=True)
            seconds = asyncio.run(seed(store.url, "helpdesk_tickets", args.tickets))
            if seconds:
                print(f"· seeded {args.tickets:,} tickets in {seconds:.0f}s", flush=True)
            asyncio.run(seed_search(store.url, "helpdesk_tickets", args.tickets))
            warmed, seconds = warm(data / "store")
            print(f"· read the store's {warmed / 2**30:.1f} GiB once into the page cache in {seconds:.0f}s", flush=True)
            people = accounts(args.agents, args.admins)
            print(f"· {asyncio.run(add_staff(store.url, people))} staff added to the portal", flush=True)
            accounts_file = work_dir / "accounts.json"
            accounts_file.write_text(json.dumps(people))
            tickets_port, notify_port, portal_port = stack.free_port(), stack.free_port(), stack.free_port()
            nowhere = f"http://127.0.0.1:{stack.free_port()}"  # the queue page calls neither ingest nor triggers
            portal_env = {
                **env,
                "HELPDESK_SESSION_SECRET": SESSION_SECRET,
                "HELPDESK_TICKETS_URL": f"http://127.0.0.1:{tickets_port}",
                "HELPDESK_NOTIFY_URL": f"http://127.0.0.1:{notify_port}",  # the bell's unread count
                "HELPDESK_INGEST_URL": nowhere,
                "HELPDESK_TRIGGERS_URL": nowhere,
            }
            env = {
                **env,
                "HELPDESK_PORTAL_URL": f"http://127.0.0.1:{portal_port}",
                "HELPDESK_TICKETS_URL": f"http://127.0.0.1:{tickets_port}",
            }
            procs = [start_service("tickets", env, tickets_port, data / "tickets.log")]
            try:
                procs.append(start_service("notify", env, notify_port, data / "notify.log"))
                procs.append(start_service("portal", portal_env, portal_port, data / "portal.log"))
                base = f"http://127.0.0.1:{portal_port}"
                for name in scenarios:
                    figures = run_scenario(
                        base,
                        f"http://127.0.0.1:{tickets_port}",
                        accounts_file,
                        name,
                        args,
                        work_dir / f"{name}-{uuid.uuid4().hex}.json",
                    )
                    print_figures(name, figures, args.tickets)
            finally:
                for proc in reversed(procs):
                    proc.terminate()
                    proc.wait(timeout=30)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
        if not args.keep and args.dir is None:
            shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
