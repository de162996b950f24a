"""Statistics of the tickets a staff member may see: created and resolved per day, backlog, times, SLA, channels.

Built for a million tickets on FerretDB, where aggregation pipelines and scans are slow and a count that
one index answers takes a few milliseconds: every number is such a count (per day, per status, per
channel, per group, each asked for every access scope of the viewer and added up), except the response
and resolution times and the SLA shares of resolved tickets, which come from a bounded sample: at most
`SAMPLE_SIZE` tickets resolved in the period, spread over up to `SAMPLE_SLICES` stretches of days, read
with an index-ordered, limited query each and weighted by the exact count of their stretch. Below the
cap every resolved ticket is read and the numbers are exact. Answers are kept `CACHE_SECONDS` per
(viewer scope, period, group, time zone, groups asked for).

Resolved means the ticket reached a status of category resolved or closed: `resolved_at`, or for a ticket
closed without being resolved first, `closed_at` (a reopened ticket has neither and counts again when it
is resolved again). Times are calendar time from `created_at` to `first_response_at` and to that moment.
"""

import asyncio
import math
import statistics
import time as clock
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from contracts.models import Channel
from pydantic import BaseModel, Field

from tickets.access import scopes
from tickets.store import Store
from tickets.workflow import Viewer

ACTIVE_CATEGORIES = ("new", "open", "waiting_for_customer", "waiting_for_agent")
CHANNELS: tuple[str, ...] = get_args(Channel)
SAMPLE_SIZE = 1000
SAMPLE_SLICES = 10
MIN_SAMPLE_PER_QUERY = 20
CACHE_SECONDS = 60.0
CACHE_ENTRIES = 256
CONCURRENT_QUERIES = 16
SAMPLE_FIELDS = {
    "number": 1,
    "group": 1,
    "created_at": 1,
    "first_response_at": 1,
    "resolved_at": 1,
    "closed_at": 1,
    "sla": 1,
    "sla_missed": 1,
}


class UnknownTimeZone(ValueError):
    """The time zone asked for is not an IANA name this system knows."""


class Day(BaseModel):
    """One calendar day of the period, in the asked time zone."""

    date: date
    created: int = Field(description="Tickets created that day.")
    resolved: int = Field(description="Tickets that reached a resolved or closed status that day (and are still so).")


class GroupBacklog(BaseModel):
    """Open tickets of one group."""

    group: str | None = Field(description="Group key; null: tickets without a group.")
    open: int = Field(description="Tickets of an active status (new, open, waiting).")


class Backlog(BaseModel):
    """The open tickets now."""

    total: int = Field(description="Tickets of an active status (new, open, waiting for customer or agent).")
    by_status: dict[str, int] = Field(description="By status category, dormant tickets included separately.")
    by_group: list[GroupBacklog] = Field(description="By group (the groups asked for, or the viewer's).")
    other_groups: int = Field(description="Open tickets of groups not listed in `by_group`.")


class Duration(BaseModel):
    """How long something took over the sampled tickets, in seconds."""

    count: int = Field(description="Tickets measured (in the sample).")
    median: float | None = Field(description="Median in seconds; null when none.")
    p90: float | None = Field(description="90th percentile (nearest rank) in seconds; null when none.")


class GroupTimes(BaseModel):
    """Response and resolution times of one group."""

    group: str | None
    first_response: Duration
    resolution: Duration


class Times(BaseModel):
    """First-response and resolution times of the tickets resolved in the period."""

    resolved: int = Field(description="Tickets resolved in the period (exact).")
    sampled: int = Field(description="How many of them were read to measure the times.")
    first_response: Duration
    resolution: Duration
    by_group: list[GroupTimes]


class Attainment(BaseModel):
    """One SLA target: how often it was met."""

    met: int = Field(description="Targets met (resolved tickets of the period, weighted when sampled).")
    breached: int = Field(description="Targets missed: marked breached, reached late, or overdue now.")
    overdue_now: int = Field(description="Of `breached`: due in the period, not reached yet (exact).")
    share_met: float | None = Field(description="met / (met + breached); null when there is nothing to judge.")


class Sla(BaseModel):
    """SLA attainment of the period for first response and resolution."""

    first_response: Attainment
    resolution: Attainment


class Stats(BaseModel):
    """Statistics of the tickets the viewer may see."""

    as_of: datetime = Field(description="When these numbers were counted (they are kept a minute).")
    days: int
    tz: str
    group: str | None = Field(description="The group the numbers are limited to; null: every visible group.")
    start: datetime = Field(description="Start of the period: midnight of its first day in `tz` (UTC).")
    groups: list[str | None] = Field(description="The groups broken down (null: tickets without a group).")
    per_day: list[Day]
    created: int
    resolved: int
    backlog: Backlog
    times: Times
    sla: Sla
    channels: dict[str, int] = Field(description="Tickets created in the period per channel.")


@dataclass(frozen=True)
class Window:
    """A stretch of time, [start, end)."""

    start: datetime
    end: datetime

    def of(self, field: str) -> dict[str, Any]:
        """Return the filter of `field` within the window."""
        return {field: {"$gte": self.start, "$lt": self.end}}


def zone(name: str) -> ZoneInfo:
    """Return a time zone by IANA name; raise `UnknownTimeZone` for anything else."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise UnknownTimeZone(f"unknown time zone {name!r}") from exc


def day_windows(now: datetime, days: int, tz: ZoneInfo) -> list[tuple[date, Window]]:
    """Return the period's days, oldest first, ending today in `tz`, each as a UTC window."""
    today = now.astimezone(tz).date()
    first = today - timedelta(days=days - 1)
    out = []
    for i in range(days):
        day = first + timedelta(days=i)
        start = datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)
        end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz).astimezone(UTC)
        out.append((day, Window(start, end)))
    return out


def percentile(values: list[float], share: float) -> float | None:
    """Return the nearest-rank percentile (`share` 0–1) of values; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def duration(values: list[float]) -> Duration:
    """Return count, median and 90th percentile of durations in seconds."""
    return Duration(
        count=len(values),
        median=round(statistics.median(values), 1) if values else None,
        p90=round(p, 1) if (p := percentile(values, 0.9)) is not None else None,
    )


def _aware(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def resolved_moment(doc: dict[str, Any]) -> datetime | None:
    """Return when a ticket was resolved: `resolved_at`, or `closed_at` when it was closed straight away."""
    return _aware(doc.get("resolved_at")) or _aware(doc.get("closed_at"))


def sla_verdicts(doc: dict[str, Any]) -> dict[str, bool]:
    """Return, for a resolved ticket under an SLA policy, whether each target it reached was met.

    A target counts as missed when triggers marked it in `sla.breached`, when tickets recorded it in
    `sla_missed` (reached after its due time), or when it was reached after the due time the ticket still
    shows. A ticket resolved without any public reply is not judged on first
    response. Tickets without a policy are not judged at all.
    """
    sla = doc.get("sla") or {}
    if not sla.get("policy"):
        return {}
    breached = set(sla.get("breached") or ()) | set(doc.get("sla_missed") or ())
    out: dict[str, bool] = {}
    reached = {"first_response": _aware(doc.get("first_response_at")), "resolution": resolved_moment(doc)}
    for metric, at in reached.items():
        if at is None:
            continue
        due = _aware(sla.get(f"{metric}_due"))
        out[metric] = metric not in breached and (due is None or at <= due)
    return out


def narrowed(filters: list[dict[str, Any]], group: str | None) -> list[dict[str, Any]]:
    """Return the viewer's filters limited to one group (none left when the viewer may not see it)."""
    return [{**f, "group": group} for f in filters if f.get("group", group) == group]


def merged(filters: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return the filters with an agent's several groups asked as one `$in` (one seek each, one query)."""
    named = [f["group"] for f in filters if set(f) == {"group"} and isinstance(f["group"], str)]
    if len(named) < 2:
        return filters
    rest = [f for f in filters if not (set(f) == {"group"} and isinstance(f["group"], str))]
    return [{"group": {"$in": named}}, *rest]


def _chunks(items: list[Any], parts: int) -> list[list[Any]]:
    size = max(1, math.ceil(len(items) / parts))
    return [items[i : i + size] for i in range(0, len(items), size)]


class Statistics:
    """Counts statistics for a viewer from the store, kept a minute per (scope, period, group, zone)."""

    def __init__(
        self,
        store: Store,
        *,
        ttl: float = CACHE_SECONDS,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = clock.monotonic,
    ) -> None:
        self.store = store
        self.ttl = ttl
        self._now = now
        self._monotonic = monotonic
        self._cache: OrderedDict[tuple[Any, ...], tuple[float, Stats]] = OrderedDict()
        self._limit = asyncio.Semaphore(CONCURRENT_QUERIES)

    async def for_viewer(
        self, v: Viewer, *, days: int, tz: str, group: str | None = None, groups: Iterable[str] = ()
    ) -> Stats:
        """Return the statistics of what the viewer may see (from the cache when counted less than ttl ago)."""
        zone_ = zone(tz)
        filters = scopes(v)
        asked = tuple(sorted(set(groups)))
        key = (repr(filters), days, tz, group, asked)
        hit = self._cache.get(key)
        if hit is not None and self._monotonic() - hit[0] < self.ttl:
            return hit[1]
        result = await self._count(filters, v, days=days, tz=zone_, tz_name=tz, group=group, asked=asked)
        self._cache[key] = (self._monotonic(), result)
        self._cache.move_to_end(key)
        while len(self._cache) > CACHE_ENTRIES:
            self._cache.popitem(last=False)
        return result

    async def _bounded(self, work: Awaitable[Any]) -> Any:
        async with self._limit:
            return await work

    async def _counts(self, queries: list[dict[str, Any]]) -> list[int]:
        return list(await asyncio.gather(*(self._bounded(self.store.count([q])) for q in queries)))

    async def _sample(self, query: dict[str, Any], sort: str, limit: int) -> list[dict[str, Any]]:
        async def read() -> list[dict[str, Any]]:
            # sorted by the indexed field alone, so the store reads only `limit` tickets from the index
            found = self.store.tickets.find(query, SAMPLE_FIELDS).sort(sort, -1).limit(limit)
            return [doc async for doc in found]

        return list(await self._bounded(read()))

    async def _count(
        self,
        base: list[dict[str, Any]],
        v: Viewer,
        *,
        days: int,
        tz: ZoneInfo,
        tz_name: str,
        group: str | None,
        asked: tuple[str, ...],
    ) -> Stats:
        now = self._now()
        scoped = narrowed(base, group) if group is not None else base
        filters = merged(scoped)
        windows = day_windows(now, days, tz)
        period = Window(windows[0][1].start, windows[-1][1].end)
        breakdown = await self._breakdown(v, group, asked)

        # Per day and per filter, so the sample below can be weighted by the exact count of what it read.
        # "resolved" is two disjoint counts: resolved_at in the day, or no resolved_at and closed_at in it.
        parts = {
            "created": lambda w: w.of("created_at"),
            "resolved": lambda w: w.of("resolved_at"),
            "closed": lambda w: {"resolved_at": None, **w.of("closed_at")},
        }
        plan = [(name, i, d) for name in parts for i in range(len(filters)) for d in range(len(windows))]
        found = await self._counts([{**filters[i], **parts[name](windows[d][1])} for name, i, d in plan])
        by_day = dict(zip(plan, found, strict=True))

        def day_total(name: str, d: int) -> int:
            return sum(by_day[(name, i, d)] for i in range(len(filters)))

        per_day = [
            Day(date=day, created=day_total("created", d), resolved=day_total("resolved", d) + day_total("closed", d))
            for d, (day, _) in enumerate(windows)
        ]
        backlog, channels, overdue, (times, sla) = await asyncio.gather(
            self._backlog(filters, scoped, breakdown),
            self._channels(filters, period),
            self._overdue(filters, Window(period.start, now)),
            self._times(filters, windows, by_day, breakdown),
        )
        sla_out = Sla(
            **{
                metric: _attainment(sla.get(metric, (0.0, 0.0)), overdue[metric])
                for metric in ("first_response", "resolution")
            }
        )
        groups_shown = list(dict.fromkeys([*breakdown, *(g.group for g in times.by_group)]))
        return Stats(
            as_of=now,
            days=days,
            tz=tz_name,
            group=group,
            start=period.start,
            groups=groups_shown,
            per_day=per_day,
            created=sum(d.created for d in per_day),
            resolved=sum(d.resolved for d in per_day),
            backlog=backlog,
            times=times,
            sla=sla_out,
            channels=channels,
        )

    async def _breakdown(self, v: Viewer, group: str | None, asked: tuple[str, ...]) -> list[str | None]:
        """Return the groups to break down by: the one asked for, the viewer's own, or (admins) those named."""
        if group is not None:
            return [group]
        if v.role not in ("admin", "system"):
            return [*v.groups, None]
        # The tickets service keeps no list of groups: the portal names them; mailboxes add theirs.
        named = set(asked) | {m["group"] for m in await self.store.list_mailboxes() if m.get("group")}
        return [*sorted(named), None]

    async def _backlog(
        self, filters: list[dict[str, Any]], scoped: list[dict[str, Any]], breakdown: list[str | None]
    ) -> Backlog:
        categories = [*ACTIVE_CATEGORIES, "dormant"]
        status_queries = [
            {**f, "phase": "active", "status_category": c} if c != "dormant" else {**f, "phase": "dormant"}
            for c in categories
            for f in filters
        ]
        group_filters = [(g, narrowed(scoped, g)) for g in breakdown]
        group_queries = [{**f, "phase": "active"} for _, fs in group_filters for f in fs]
        found = await self._counts([*status_queries, *group_queries])
        per_status = found[: len(status_queries)]
        by_status = {c: sum(per_status[k * len(filters) : (k + 1) * len(filters)]) for k, c in enumerate(categories)}
        rest = iter(found[len(status_queries) :])
        by_group = [GroupBacklog(group=g, open=sum(next(rest) for _ in fs)) for g, fs in group_filters]
        total = sum(by_status[c] for c in ACTIVE_CATEGORIES)
        return Backlog(
            total=total,
            by_status=by_status,
            by_group=by_group,
            other_groups=max(0, total - sum(g.open for g in by_group)),
        )

    async def _channels(self, filters: list[dict[str, Any]], period: Window) -> dict[str, int]:
        queries = [{**f, "channel": c, **period.of("created_at")} for c in CHANNELS for f in filters]
        found = await self._counts(queries)
        n = len(filters)
        return {c: sum(found[k * n : (k + 1) * n]) for k, c in enumerate(CHANNELS)}

    async def _overdue(self, filters: list[dict[str, Any]], window: Window) -> dict[str, int]:
        # A due time stays on the ticket while its clock runs: one in the past on a ticket not resolved is a
        # target missed and not reached yet (resolved tickets are judged in the sample, even before triggers
        # has cleared their due time).
        metrics = ("first_response", "resolution")
        phases = ("active", "dormant")  # one equality each: SQLite seeks (phase, due) rather than reading a phase
        found = await self._counts(
            [{**f, "phase": p, **window.of(f"sla.{m}_due")} for m in metrics for p in phases for f in filters]
        )
        n = len(filters) * len(phases)
        return {m: sum(found[k * n : (k + 1) * n]) for k, m in enumerate(metrics)}

    async def _times(
        self,
        filters: list[dict[str, Any]],
        windows: list[tuple[date, Window]],
        by_day: dict[tuple[str, int, int], int],
        breakdown: list[str | None],
    ) -> tuple[Times, dict[str, tuple[float, float]]]:
        """Return the times of a weighted sample of the period's resolved tickets, and SLA (met, missed) sums."""
        slices = _chunks(list(range(len(windows))), SAMPLE_SLICES)
        per_query = max(MIN_SAMPLE_PER_QUERY, math.ceil(SAMPLE_SIZE / (len(slices) * 2 * max(1, len(filters)))))
        reads: list[tuple[dict[str, Any], str, int]] = []
        for days in slices:
            window = Window(windows[days[0]][1].start, windows[days[-1]][1].end)
            for i, f in enumerate(filters):
                for part, query, sort in (
                    ("resolved", {**f, **window.of("resolved_at")}, "resolved_at"),
                    ("closed", {**f, "resolved_at": None, **window.of("closed_at")}, "closed_at"),
                ):
                    exact = sum(by_day[(part, i, d)] for d in days)
                    if exact:
                        reads.append((query, sort, exact))
        samples = await asyncio.gather(*(self._sample(q, sort, per_query) for q, sort, _ in reads))
        first: dict[str | None, list[float]] = {}
        resolution: dict[str | None, list[float]] = {}
        sla: dict[str, list[float]] = {"first_response": [0.0, 0.0], "resolution": [0.0, 0.0]}
        sampled = 0
        for (_, _, exact), docs in zip(reads, samples, strict=True):
            weight = exact / len(docs) if docs else 0.0
            sampled += len(docs)
            for doc in docs:
                created, done = _aware(doc.get("created_at")), resolved_moment(doc)
                answered = _aware(doc.get("first_response_at"))
                g = doc.get("group")
                if created is not None and done is not None:
                    resolution.setdefault(g, []).append((done - created).total_seconds())
                if created is not None and answered is not None:
                    first.setdefault(g, []).append((answered - created).total_seconds())
                for metric, met in sla_verdicts(doc).items():
                    sla[metric][0 if met else 1] += weight
        shown = list(dict.fromkeys([*breakdown, *sorted(set(first) | set(resolution), key=lambda g: (g is None, g))]))
        times = Times(
            resolved=sum(exact for _, _, exact in reads),
            sampled=sampled,
            first_response=duration([x for xs in first.values() for x in xs]),
            resolution=duration([x for xs in resolution.values() for x in xs]),
            by_group=[
                GroupTimes(
                    group=g, first_response=duration(first.get(g, [])), resolution=duration(resolution.get(g, []))
                )
                for g in shown
            ],
        )
        return times, {m: (met, missed) for m, (met, missed) in sla.items()}


def _attainment(sampled: tuple[float, float], overdue: int) -> Attainment:
    met = round(sampled[0])
    breached = round(sampled[1]) + overdue
    judged = met + breached
    return Attainment(
        met=met, breached=breached, overdue_now=overdue, share_met=round(met / judged, 4) if judged else None
    )
