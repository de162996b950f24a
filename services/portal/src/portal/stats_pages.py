"""Statistics: created and resolved per day, backlog, response and resolution times, SLA attainment, channels.

One page, `/stats`, for staff (light agents read it too). The tickets service counts (`GET /api/stats`,
limited to what the viewer may see); this module only turns its numbers into server-rendered SVG charts
(no script, no inline style: bars and labels carry classes from stats.css) with the same numbers as
tables under each chart.
"""

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse

from portal.domain import CHANNEL_LABELS, STATUS_LABELS, Actor
from portal.i18n import Translate, translator
from portal.pagekit import Portal, StaffUser, language_for, page_router, render
from portal.settings import Settings

PERIODS = (7, 30, 90)
DEFAULT_DAYS = 30
DEFAULT_TZ = "Europe/Stockholm"
GROUP_KEY = re.compile(r"[A-Za-z0-9_.@+-]{1,100}")
BACKLOG_STATUSES = ("new", "open", "waiting_for_customer", "waiting_for_agent", "dormant")

# Chart geometry in SVG user units; the SVG scales to the page's width (stats.css).
WIDTH = 720
PLOT_LEFT = 40
PLOT_TOP = 10
PLOT_HEIGHT = 180
ROW = 26
BAR = 16
LABEL_WIDTH = 130
BAR_CHART_WIDTH = 480
VALUE_WIDTH = 160


@dataclass(frozen=True)
class Bar:
    """A rectangle of a chart with its tooltip."""

    x: float
    y: float
    width: float
    height: float
    css: str
    title: str


@dataclass(frozen=True)
class Label:
    """A text of a chart."""

    x: float
    y: float
    text: str
    anchor: str = "start"
    css: str = "chart-label"


@dataclass
class Chart:
    """An SVG chart: its size, bars, texts and guide lines (x1, y1, x2, y2)."""

    height: float
    title: str
    bars: list[Bar] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)
    lines: list[tuple[float, float, float, float]] = field(default_factory=list)
    width: float = WIDTH


@dataclass(frozen=True)
class Row:
    """One row of a horizontal bar chart: a label and one or more (value, css, tooltip) bars."""

    label: str
    values: list[tuple[float, str, str]]
    shown: str


def human_duration(seconds: float | None, t: Translate) -> str:
    """Return a duration as people read it: `45 s`, `12 min`, `3 h 5 min`, `2 d 4 h`; a dash for none."""
    if seconds is None:
        return "–"
    s = int(round(seconds))
    if s < 60:
        return t("{n} s", n=s)
    if s < 3600:
        return t("{n} min", n=s // 60)
    if s < 86400:
        return t("{h} h {m} min", h=s // 3600, m=s % 3600 // 60)
    return t("{d} d {h} h", d=s // 86400, h=s % 86400 // 3600)


def percent(share: float | None) -> str:
    """Return a share as a whole percentage, or a dash when there is none."""
    return "–" if share is None else f"{round(share * 100)} %"


def group_name(group: str | None, t: Translate) -> str:
    """Return how a group key is shown (tickets without a group have a name too)."""
    return t("No group") if group is None else group


def day_chart(per_day: list[dict[str, Any]], t: Translate) -> Chart:
    """Return the created-versus-resolved chart: two bars a day, the day's date under every few."""
    chart = Chart(height=PLOT_TOP + PLOT_HEIGHT + 30, title=t("Created and resolved per day"))
    top = max([1, *(max(d["created"], d["resolved"]) for d in per_day)])
    plot_width = WIDTH - PLOT_LEFT - 10
    slot = plot_width / max(1, len(per_day))
    bar = max(1.0, slot * 0.4)
    base = PLOT_TOP + PLOT_HEIGHT
    chart.lines.append((PLOT_LEFT, base, WIDTH - 10, base))
    chart.lines.append((PLOT_LEFT, PLOT_TOP, WIDTH - 10, PLOT_TOP))
    chart.labels.append(Label(PLOT_LEFT - 6, PLOT_TOP + 4, str(top), "end"))
    chart.labels.append(Label(PLOT_LEFT - 6, base + 4, "0", "end"))
    every = max(1, len(per_day) // 8)
    for i, day in enumerate(per_day):
        x = PLOT_LEFT + i * slot + (slot - 2 * bar) / 2
        when = day["date"]
        for k, (key, css, text) in enumerate(
            (("created", "bar-created", "{date}: {n} created"), ("resolved", "bar-resolved", "{date}: {n} resolved"))
        ):
            height = PLOT_HEIGHT * day[key] / top
            title = t(text, date=when, n=day[key])
            chart.bars.append(
                Bar(round(x + k * bar, 2), round(base - height, 2), round(bar, 2), round(height, 2), css, title)
            )
        if i % every == 0 or i == len(per_day) - 1:
            chart.labels.append(Label(round(PLOT_LEFT + (i + 0.5) * slot, 2), base + 16, _short(when), "middle"))
    return chart


def _short(value: str) -> str:
    try:
        return date.fromisoformat(value).strftime("%d/%m")
    except ValueError:
        return value


def bar_chart(rows: list[Row], title: str, *, top: float | None = None) -> Chart:
    """Return a horizontal bar chart: a label, its bars side by side in one row band, the value at the end."""
    lanes = max([1, *(len(r.values) for r in rows)])
    band = max(ROW, lanes * (BAR // lanes + 6) + 8)
    chart = Chart(height=max(band, len(rows) * band) + 8, title=title, width=BAR_CHART_WIDTH)
    scale_top = top if top is not None else max([1.0, *(v for r in rows for v, _, _ in r.values)])
    plot = BAR_CHART_WIDTH - LABEL_WIDTH - VALUE_WIDTH
    for i, row in enumerate(rows):
        y = 4 + i * band
        chart.labels.append(Label(LABEL_WIDTH - 8, y + band / 2 + 4, row.label, "end"))
        lane = (band - 8) / lanes
        for k, (value, css, tooltip) in enumerate(row.values):
            width = plot * min(value, scale_top) / scale_top if scale_top else 0
            chart.bars.append(
                Bar(
                    LABEL_WIDTH, round(y + 4 + k * lane, 2), round(max(width, 0.5), 2), round(lane - 2, 2), css, tooltip
                )
            )
        chart.labels.append(Label(LABEL_WIDTH + plot + 8, y + band / 2 + 4, row.shown, "start", "chart-value"))
    return chart


@dataclass
class StatsPage:
    """Everything the template shows, charts built."""

    numbers: dict[str, Any]
    charts: dict[str, Chart]
    as_of: str
    tz: str


def build(numbers: dict[str, Any], t: Translate, tz: ZoneInfo) -> StatsPage:
    """Return the page's charts from the tickets service's answer."""
    backlog = numbers["backlog"]
    charts: dict[str, Chart] = {"days": day_chart(numbers["per_day"], t)}
    charts["status"] = bar_chart(
        [
            Row(t(STATUS_LABELS[s]), [(n, f"bar-status-{s}", f"{t(STATUS_LABELS[s])}: {n}")], str(n))
            for s in BACKLOG_STATUSES
            for n in [backlog["by_status"].get(s, 0)]
        ],
        t("Open tickets per status"),
    )
    groups = [(group_name(g["group"], t), g["open"]) for g in backlog["by_group"]]
    if backlog["other_groups"]:
        groups.append((t("Other groups"), backlog["other_groups"]))
    charts["group"] = bar_chart(
        [Row(name, [(n, "bar-group", f"{name}: {n}")], str(n)) for name, n in groups], t("Open tickets per group")
    )
    times = numbers["times"]
    for key, title in (("first_response", t("First response time")), ("resolution", t("Resolution time"))):
        rows = []
        for g in [{"group": "*", **times}, *times["by_group"]]:
            name = t("All") if g["group"] == "*" else group_name(g["group"], t)
            d = g[key]
            median, p90 = d["median"] or 0, d["p90"] or 0
            rows.append(
                Row(
                    name,
                    [
                        (
                            median,
                            "bar-median",
                            t("{name}: median {value}", name=name, value=human_duration(d["median"], t)),
                        ),
                        (
                            p90,
                            "bar-p90",
                            t("{name}: 90th percentile {value}", name=name, value=human_duration(d["p90"], t)),
                        ),
                    ],
                    f"{human_duration(d['median'], t)} / {human_duration(d['p90'], t)}",
                )
            )
        charts[key] = bar_chart(rows, title)
    sla_rows = []
    for key, name in (("first_response", t("First response")), ("resolution", t("Resolution"))):
        a = numbers["sla"][key]
        share = a["share_met"]
        tooltip = t("{name}: {met} met, {breached} breached", name=name, met=a["met"], breached=a["breached"])
        sla_rows.append(Row(name, [((share or 0) * 100, "bar-sla", tooltip)], percent(share)))
    charts["sla"] = bar_chart(sla_rows, t("SLA attainment"), top=100)
    channel_rows = [
        Row(t(CHANNEL_LABELS.get(c, c)), [(n, "bar-channel", f"{t(CHANNEL_LABELS.get(c, c))}: {n}")], str(n))
        for c, n in sorted(numbers["channels"].items(), key=lambda item: -item[1])
        if n
    ]
    charts["channels"] = bar_chart(channel_rows, t("Created per channel"))
    as_of = datetime.fromisoformat(numbers["as_of"]).astimezone(tz).strftime("%H:%M")
    return StatsPage(numbers=numbers, charts=charts, as_of=as_of, tz=str(tz))


async def visible_groups(portal: Portal, user: StaffUser) -> list[str]:
    """Return the groups the person may filter by: an admin's are every staff member's, others their own."""
    if user.role == "admin":
        staff = await portal.accounts.users.staff()
        return sorted({g for u in staff for g in u.groups})
    return sorted(user.groups)


def setup(app: FastAPI, portal: Portal, settings: Settings) -> None:
    """Add this area's pages to the app and its clients to `portal.services` (unless tests put fakes there)."""
    router = page_router()

    @router.get("/stats", response_class=HTMLResponse)
    async def stats_page(
        request: Request,
        user: StaffUser,
        days: Annotated[str, Query()] = str(DEFAULT_DAYS),
        group: Annotated[str, Query()] = "",
        tz: Annotated[str, Query()] = DEFAULT_TZ,
    ) -> HTMLResponse:
        t = translator(language_for(request))
        # Anything odd in the address falls back to the defaults: the page never answers with a bare 422.
        period = int(days) if days in {str(p) for p in PERIODS} else DEFAULT_DAYS
        groups = await visible_groups(portal, user)
        chosen = group if GROUP_KEY.fullmatch(group) and group in groups else None
        try:
            zone = ZoneInfo(tz[:64])
        except (ZoneInfoNotFoundError, ValueError):
            zone = ZoneInfo(DEFAULT_TZ)
        params: dict[str, Any] = {"days": period, "tz": str(zone)}
        if chosen is not None:
            params["group"] = chosen
        if user.role == "admin" and groups:
            params["groups"] = ",".join(groups)
        numbers = await portal.tickets.call("GET", "/api/stats", Actor.of(user), params=params)
        page = build(numbers, t, zone)
        return render(
            request,
            "stats.html",
            page=page,
            days=period,
            periods=PERIODS,
            group=chosen,
            groups=groups,
            human_duration=lambda s: human_duration(s, t),
            percent=percent,
            group_name=lambda g: group_name(g, t),
            status_labels=STATUS_LABELS,
            channel_labels=CHANNEL_LABELS,
        )

    app.include_router(router)
