"""Statistics on the real store: every number of a seeded week, access by group, sampling and the API's checks."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from hdkit.mongo import OutboxRelay
from tickets import stats
from tickets.api import install_error_handlers, router
from tickets.handlers import Handlers
from tickets.stats import Statistics, sla_verdicts
from tickets.store import Store
from tickets.workflow import Viewer

TOKEN = "service-token-for-tests-0123456789"
NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
TZ = "Europe/Stockholm"  # UTC+1 in early March: local midnight is 23:00 UTC the day before
ADMIN = Viewer(id="ada", role="admin")
SUPPORT_AGENT = Viewer(id="bo", role="agent", groups=("support",))
PHASES = {
    "new": "active",
    "open": "active",
    "waiting_for_customer": "active",
    "waiting_for_agent": "active",
    "dormant": "dormant",
    "resolved": "resolved",
    "closed": "closed",
}


def at(day: int, hour: int, minute: int = 0, month: int = 3) -> datetime:
    return datetime(2025, month, day, hour, minute, tzinfo=UTC)


def doc(
    number: int,
    *,
    group: str | None,
    channel: str = "email",
    created: datetime,
    category: str = "open",
    first_response: datetime | None = None,
    resolved: datetime | None = None,
    closed: datetime | None = None,
    sla: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "_id": f"t{number}",
        "number": number,
        "title": f"Ticket {number}",
        "group": group,
        "channel": channel,
        "status": category,
        "status_category": category,
        "phase": PHASES[category],
        "handler": None,
        "created_at": created,
        "updated_at": created,
        "first_response_at": first_response,
        "resolved_at": resolved,
        "closed_at": closed,
        "sla": sla or {"first_response_due": None, "resolution_due": None},
        "version": 1,
    }


WEEK = [
    doc(1, group="support", created=at(4, 8), first_response=at(4, 9)),
    doc(
        2,
        group="support",
        created=at(4, 10),
        first_response=at(4, 12),
        category="resolved",
        resolved=at(5, 10),
        sla={"policy": "std", "first_response_due": None, "resolution_due": None, "breached": ["first_response"]},
    ),
    doc(
        3,
        group="billing",
        channel="web_form",
        created=at(6, 8),
        first_response=at(6, 8, 30),
        category="closed",
        closed=at(6, 12),
        sla={"policy": "std", "first_response_due": None, "resolution_due": None},
    ),
    doc(4, group=None, channel="api", created=at(2, 10), category="resolved", resolved=at(7, 10)),
    doc(
        5,
        group="billing",
        created=at(9, 22, 30),  # 23:30 on the 9th in Stockholm
        category="new",
        sla={"policy": "std", "first_response_due": at(10, 6), "resolution_due": at(12, 6)},
    ),
    doc(6, group="support", created=at(3, 22, 30), category="waiting_for_customer"),  # the 3rd in Stockholm
    doc(7, group="support", channel="portal", created=at(3, 23, 30), category="dormant"),  # the 4th in Stockholm
    doc(
        8,
        group="support",
        created=at(8, 10),
        first_response=at(8, 10, 10),
        category="closed",
        resolved=at(8, 11),
        closed=at(9, 9),
        sla={"policy": "std", "first_response_due": None, "resolution_due": at(8, 10, 30)},
    ),
    doc(9, group="billing", created=at(1, 10, month=2), category="waiting_for_agent"),
]


@pytest.fixture
async def store(mongo: Any) -> AsyncIterator[Store]:
    store = Store(mongo)
    await store.ensure_indexes()
    await store.tickets.insert_many([dict(d) for d in WEEK])
    yield store


def numbers(result: stats.Stats) -> dict[str, Any]:
    return {
        "per_day": [(d.date.day, d.created, d.resolved) for d in result.per_day],
        "created": result.created,
        "resolved": result.resolved,
    }


@pytest.mark.asyncio
async def test_an_admin_sees_every_number_of_the_week(store: Store) -> None:
    result = await Statistics(store, now=lambda: NOW).for_viewer(ADMIN, days=7, tz=TZ, groups=["support", "billing"])
    assert result.start == at(3, 23)
    assert numbers(result) == {
        "per_day": [(4, 3, 0), (5, 0, 1), (6, 1, 1), (7, 0, 1), (8, 1, 1), (9, 1, 0), (10, 0, 0)],
        "created": 6,
        "resolved": 4,
    }
    backlog = result.backlog
    assert backlog.total == 4
    assert backlog.by_status == {"new": 1, "open": 1, "waiting_for_customer": 1, "waiting_for_agent": 1, "dormant": 1}
    assert [(g.group, g.open) for g in backlog.by_group] == [("billing", 2), ("support", 2), (None, 0)]
    assert backlog.other_groups == 0
    times = result.times
    assert (times.resolved, times.sampled) == (4, 4)
    assert times.first_response.model_dump() == {"count": 3, "median": 1800.0, "p90": 7200.0}
    assert times.resolution.model_dump() == {"count": 4, "median": 50400.0, "p90": 432000.0}
    by_group = {g.group: g for g in times.by_group}
    assert by_group["support"].first_response.model_dump() == {"count": 2, "median": 3900.0, "p90": 7200.0}
    assert by_group["support"].resolution.model_dump() == {"count": 2, "median": 45000.0, "p90": 86400.0}
    assert by_group["billing"].resolution.model_dump() == {"count": 1, "median": 14400.0, "p90": 14400.0}
    assert by_group[None].first_response.count == 0 and by_group[None].resolution.median == 432000.0
    # first response: #3 and #8 in time, #2 marked breached, #5 overdue now; resolution: #8 resolved late
    assert result.sla.first_response.model_dump() == {"met": 2, "breached": 2, "overdue_now": 1, "share_met": 0.5}
    assert result.sla.resolution.model_dump() == {"met": 2, "breached": 1, "overdue_now": 0, "share_met": 0.6667}
    assert result.channels == {
        "email": 4,
        "portal": 1,
        "web_form": 1,
        "api": 0,
        "kafka": 0,
        "import": 0,
        "agent": 0,
        "system": 0,
    }


@pytest.mark.asyncio
async def test_an_agent_counts_only_their_groups_and_tickets_without_a_group(store: Store) -> None:
    result = await Statistics(store, now=lambda: NOW).for_viewer(SUPPORT_AGENT, days=7, tz=TZ)
    assert numbers(result) == {
        "per_day": [(4, 3, 0), (5, 0, 1), (6, 0, 0), (7, 0, 1), (8, 1, 1), (9, 0, 0), (10, 0, 0)],
        "created": 4,
        "resolved": 3,
    }
    assert result.backlog.total == 2 and result.backlog.by_status["dormant"] == 1
    assert [(g.group, g.open) for g in result.backlog.by_group] == [("support", 2), (None, 0)]
    assert "billing" not in result.groups
    assert result.channels["email"] == 3 and result.channels["web_form"] == 0
    assert result.sla.first_response.model_dump() == {"met": 1, "breached": 1, "overdue_now": 0, "share_met": 0.5}


@pytest.mark.asyncio
async def test_an_agent_of_every_group_counts_what_an_admin_counts(store: Store) -> None:
    both = Viewer(id="cy", role="agent", groups=("billing", "support"))
    statistics = Statistics(store, now=lambda: NOW)
    agent = await statistics.for_viewer(both, days=7, tz=TZ)
    admin = await statistics.for_viewer(ADMIN, days=7, tz=TZ, groups=["billing", "support"])
    assert agent.model_dump(exclude={"as_of"}) == admin.model_dump(exclude={"as_of"})


@pytest.mark.asyncio
async def test_a_group_filter_limits_every_number_and_an_agent_gets_nothing_of_another_group(store: Store) -> None:
    statistics = Statistics(store, now=lambda: NOW)
    billing = await statistics.for_viewer(ADMIN, days=7, tz=TZ, group="billing")
    assert (billing.created, billing.resolved, billing.backlog.total) == (2, 1, 2)
    assert billing.groups == ["billing"]
    assert billing.sla.first_response.overdue_now == 1
    other = await statistics.for_viewer(SUPPORT_AGENT, days=7, tz=TZ, group="billing")
    assert (other.created, other.resolved, other.backlog.total, other.times.sampled) == (0, 0, 0, 0)


@pytest.mark.asyncio
async def test_days_are_cut_at_midnight_of_the_time_zone_asked_for(store: Store) -> None:
    result = await Statistics(store, now=lambda: NOW).for_viewer(ADMIN, days=7, tz="UTC")
    # in UTC #7 (23:30 on the 3rd) falls before the period and #5 (22:30 on the 9th) stays on the 9th
    assert [(d.date.day, d.created) for d in result.per_day][:1] == [(4, 2)]
    assert result.created == 5


@pytest.mark.asyncio
async def test_a_capped_sample_is_weighted_by_the_exact_counts(mongo: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(mongo)
    await store.ensure_indexes()
    met = {"policy": "std", "first_response_due": None, "resolution_due": None}
    docs = [
        doc(n, group=None, created=at(9, 8), first_response=at(9, 9), category="resolved", resolved=at(9, 10), sla=met)
        for n in range(1, 7)
    ]
    await store.tickets.insert_many(docs)
    monkeypatch.setattr(stats, "SAMPLE_SIZE", 1)
    monkeypatch.setattr(stats, "MIN_SAMPLE_PER_QUERY", 1)
    result = await Statistics(store, now=lambda: NOW).for_viewer(ADMIN, days=7, tz=TZ)
    assert (result.times.resolved, result.times.sampled) == (6, 1)
    assert result.sla.resolution.met == 6 and result.sla.first_response.met == 6


@pytest.mark.asyncio
async def test_answers_are_kept_a_minute_per_viewer_scope(store: Store) -> None:
    ticks = [0.0]
    statistics = Statistics(store, now=lambda: NOW, monotonic=lambda: ticks[0])
    first = await statistics.for_viewer(ADMIN, days=7, tz=TZ)
    await store.tickets.insert_one(doc(10, group="support", created=at(10, 9)))
    assert (await statistics.for_viewer(ADMIN, days=7, tz=TZ)).created == first.created
    assert (await statistics.for_viewer(SUPPORT_AGENT, days=7, tz=TZ)).created == 5
    ticks[0] = 61.0
    assert (await statistics.for_viewer(ADMIN, days=7, tz=TZ)).created == first.created + 1


@pytest.fixture
async def client(store: Store) -> AsyncIterator[httpx.AsyncClient]:
    handlers = Handlers(store, OutboxRelay(store.tickets, publisher=None), message_id_secret="s" * 32)  # type: ignore[arg-type]
    app = FastAPI()
    app.include_router(router(store, handlers, TOKEN))
    install_error_handlers(app)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tickets") as http:
        yield http


async def get(client: httpx.AsyncClient, who: dict[str, str], **params: Any) -> httpx.Response:
    return await client.get("/api/stats", params=params, headers={"Authorization": f"Bearer {TOKEN}", **who})


@pytest.mark.asyncio
async def test_the_api_answers_staff_and_refuses_customers_and_bad_input(client: httpx.AsyncClient) -> None:
    light = {"X-Actor-Id": "li", "X-Actor-Role": "light_agent", "X-Actor-Groups": "billing"}
    response = await get(client, light, days=400)
    assert response.status_code == 422
    response = await get(client, light, days=3650 // 10, tz=TZ)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["groups"][:2] == ["billing", None] and body["tz"] == TZ and len(body["per_day"]) == 365
    assert body["backlog"]["by_group"][0] == {"group": "billing", "open": 2}
    customer = {"X-Actor-Id": "kund", "X-Actor-Role": "customer", "X-Actor-Email": "kund@example.se"}
    assert (await get(client, customer)).status_code == 403
    assert (await get(client, light, tz="Mars/Olympus")).status_code == 422
    assert (await get(client, light, groups="ok,<x>")).status_code == 422
    admin = {"X-Actor-Id": "ada", "X-Actor-Role": "admin"}
    named = (await get(client, admin, groups="support,billing", days=1)).json()
    assert named["groups"][:3] == ["billing", "support", None]


def test_percentiles_are_nearest_rank_and_the_median_is_the_middle() -> None:
    assert stats.percentile([], 0.9) is None
    assert stats.percentile([5.0, 1.0, 3.0], 0.9) == 5.0
    assert stats.duration([1.0, 2.0, 3.0, 10.0]).model_dump() == {"count": 4, "median": 2.5, "p90": 10.0}
    assert stats.day_windows(NOW, 1, stats.zone(TZ))[0][1].start == NOW.replace(hour=0) - timedelta(hours=1)


def test_a_target_tickets_recorded_as_missed_counts_as_missed_after_triggers_cleared_its_due_time() -> None:
    reached = {"first_response_at": NOW, "resolved_at": NOW + timedelta(hours=1)}
    cleared = {"policy": "standard", "first_response_due": None, "resolution_due": None}

    assert sla_verdicts({**reached, "sla": cleared, "sla_missed": ["first_response"]}) == {
        "first_response": False,
        "resolution": True,
    }
    assert sla_verdicts({**reached, "sla": cleared}) == {"first_response": True, "resolution": True}
