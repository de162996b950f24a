"""The statistics page: charts as server-rendered SVG with the numbers as tables, for staff only."""

import re
from typing import Any

from fastapi.testclient import TestClient
from portal.security import Passwords

from .conftest import add_user, sign_in
from .fakes import FakeTickets, FakeUsers

CHART_IDS = ("stats-created-resolved", "stats-backlog", "stats-times", "stats-sla", "stats-channels")


def duration(count: int, median: float | None, p90: float | None) -> dict[str, Any]:
    return {"count": count, "median": median, "p90": p90}


def answer(**overrides: Any) -> dict[str, Any]:
    """Return `GET /api/stats` as the tickets service sends it: three days, two groups."""
    data: dict[str, Any] = {
        "as_of": "2025-03-10T12:05:00+00:00",
        "days": 30,
        "tz": "Europe/Stockholm",
        "group": None,
        "start": "2025-03-07T23:00:00+00:00",
        "groups": ["billing", "support", None],
        "per_day": [
            {"date": "2025-03-08", "created": 17, "resolved": 4},
            {"date": "2025-03-09", "created": 0, "resolved": 9},
            {"date": "2025-03-10", "created": 23, "resolved": 11},
        ],
        "created": 40,
        "resolved": 24,
        "backlog": {
            "total": 31,
            "by_status": {"new": 5, "open": 12, "waiting_for_customer": 6, "waiting_for_agent": 8, "dormant": 2},
            "by_group": [
                {"group": "billing", "open": 13},
                {"group": "support", "open": 14},
                {"group": None, "open": 3},
            ],
            "other_groups": 1,
        },
        "times": {
            "resolved": 24,
            "sampled": 24,
            "first_response": duration(20, 5400.0, 30000.0),
            "resolution": duration(24, 90000.0, 400000.0),
            "by_group": [
                {
                    "group": "billing",
                    "first_response": duration(9, 1800.0, 7200.0),
                    "resolution": duration(10, 3600.0, 7260.0),
                },
                {"group": None, "first_response": duration(0, None, None), "resolution": duration(1, 45.0, 45.0)},
            ],
        },
        "sla": {
            "first_response": {"met": 18, "breached": 2, "overdue_now": 1, "share_met": 0.9},
            "resolution": {"met": 7, "breached": 3, "overdue_now": 0, "share_met": 0.7},
        },
        "channels": {
            "email": 30,
            "portal": 6,
            "web_form": 4,
            "api": 0,
            "kafka": 0,
            "import": 0,
            "agent": 0,
            "system": 0,
        },
    }
    data.update(overrides)
    return data


def serve(tickets: FakeTickets, data: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Answer the stats route and return the params of every call."""
    asked: list[dict[str, Any]] = []

    def stats(params: dict[str, Any], json: Any, actor: Any) -> dict[str, Any]:
        asked.append(params)
        return data or answer()

    tickets.api.route("GET", "/api/stats", stats)
    return asked


def section(html: str, element_id: str) -> str:
    match = re.search(rf'<section[^>]*id="{element_id}".*?</section>', html, re.S)
    assert match, f"no section {element_id}"
    return match.group(0)


def cells(html: str) -> list[list[str]]:
    rows = re.findall(r"<tr>(.*?)</tr>", html, re.S)
    return [
        [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", r, re.S)] for r in rows
    ]


def test_the_page_draws_every_chart_with_its_numbers_in_a_table(client: TestClient, tickets: FakeTickets) -> None:
    serve(tickets)
    sign_in(client)
    page = client.get("/stats")
    assert page.status_code == 200
    html = page.text
    for element_id in CHART_IDS:
        part = section(html, element_id)
        assert "<svg" in part and "<details>" in part and "<table" in part
    days = section(html, "stats-created-resolved")
    assert ["2025-03-08", "17", "4"] in cells(days) and ["Total", "40", "24"] in cells(days)
    assert "<title>2025-03-10: 23 created</title>" in days and "<title>2025-03-09: 9 resolved</title>" in days
    backlog = section(html, "stats-backlog")
    assert ["Waiting for agent", "8"] in cells(backlog) and ["No group", "3"] in cells(backlog)
    assert ["Other groups", "1"] in cells(backlog) and "<title>billing: 13</title>" in backlog
    times = section(html, "stats-times")
    assert ["All", "20", "1 h 30 min", "8 h 20 min", "24", "1 d 1 h", "4 d 15 h"] in cells(times)
    assert ["billing", "9", "30 min", "2 h 0 min", "10", "1 h 0 min", "2 h 1 min"] in cells(times)
    assert ["No group", "0", "–", "–", "1", "45 s", "45 s"] in cells(times)
    sla = section(html, "stats-sla")
    assert ["First response", "18", "2", "1", "90 %"] in cells(sla) and ["Resolution", "7", "3", "0", "70 %"] in cells(
        sla
    )
    assert "<title>First response: 18 met, 2 breached</title>" in sla
    channels = section(html, "stats-channels")
    assert ["Email", "30"] in cells(channels) and ["Web form", "4"] in cells(channels)
    assert "<title>Email: 30</title>" in channels
    assert 'id="stats-as-of"' in html and "13:05" in html  # 12:05 UTC in Stockholm


def test_the_page_keeps_to_the_content_security_policy(client: TestClient, tickets: FakeTickets) -> None:
    serve(tickets)
    sign_in(client)
    html = client.get("/stats").text
    assert " style=" not in html and "<style" not in html
    assert re.search(r"<script(?![^>]*\bsrc=)", html) is None
    assert re.search(r"\son[a-z]+=", html) is None


def test_the_period_and_the_group_are_passed_to_the_tickets_service(
    client: TestClient, tickets: FakeTickets, users: FakeUsers, passwords: Passwords
) -> None:
    add_user(users, passwords, "bo@example.com", "a good long password", "agent", groups=("billing", "support"))
    asked = serve(tickets)
    sign_in(client)
    client.get("/stats", params={"days": "7", "group": "billing"})
    assert asked[-1] == {"days": 7, "tz": "Europe/Stockholm", "group": "billing", "groups": "billing,support"}
    client.get("/stats", params={"days": "13", "group": "nobody's"})
    assert asked[-1] == {"days": 30, "tz": "Europe/Stockholm", "groups": "billing,support"}
    client.get("/stats", params={"days": "9" * 50, "tz": "../etc/passwd", "group": "x" * 500})
    assert asked[-1] == {"days": 30, "tz": "Europe/Stockholm", "groups": "billing,support"}
    page = client.get("/stats", params={"days": "90", "tz": "UTC"})
    assert asked[-1]["days"] == 90 and asked[-1]["tz"] == "UTC"
    assert re.search(r'<option value="90" selected>', page.text)


def test_a_light_agent_reads_the_statistics_of_their_own_groups(
    client: TestClient, tickets: FakeTickets, users: FakeUsers, passwords: Passwords
) -> None:
    add_user(users, passwords, "ann@example.com", "a good long password", "agent", groups=("billing",))
    add_user(users, passwords, "li@example.com", "a good long password", "light_agent", groups=("support",))
    asked = serve(tickets)
    sign_in(client, "li@example.com", "a good long password")
    page = client.get("/stats", params={"group": "billing"})
    assert page.status_code == 200
    assert asked[-1] == {"days": 30, "tz": "Europe/Stockholm"}  # billing is not theirs: not asked for
    assert tickets.actors[-1].role == "light_agent" and tickets.actors[-1].groups == ("support",)
    options = re.search(r'<select name="group" id="stats-group">(.*?)</select>', page.text, re.S)
    assert options and 'value="support"' in options.group(1) and "billing" not in options.group(1)
    assert re.findall(r'<form method="post" action="([^"]+)"', page.text) == ["/logout"]


def test_a_customer_is_sent_to_their_portal_and_a_visitor_to_sign_in(
    client: TestClient, tickets: FakeTickets, users: FakeUsers, passwords: Passwords
) -> None:
    asked = serve(tickets)
    assert client.get("/stats").headers["location"].startswith("/login")
    add_user(users, passwords, "kund@example.com", "a good long password", "customer")
    sign_in(client, "kund@example.com", "a good long password")
    response = client.get("/stats")
    assert response.status_code == 303 and response.headers["location"] == "/my/tickets"
    assert asked == []


def test_group_names_are_escaped_in_the_charts_and_tables(client: TestClient, tickets: FakeTickets) -> None:
    data = answer()
    data["backlog"]["by_group"] = [{"group": "<x>", "open": 2}]
    data["times"]["by_group"] = [
        {"group": "<x>", "first_response": duration(1, 60.0, 60.0), "resolution": duration(0, None, None)}
    ]
    serve(tickets, data)
    sign_in(client)
    html = client.get("/stats").text
    assert "<x>" not in html
    assert ">&lt;x&gt;</text>" in html and "<title>&lt;x&gt;: 2</title>" in html


def test_the_page_says_so_when_the_tickets_service_is_down(client: TestClient, tickets: FakeTickets) -> None:
    serve(tickets)
    tickets.api.down = True
    sign_in(client)
    assert client.get("/stats").status_code == 503


def test_the_page_is_in_swedish_for_a_swedish_browser(client: TestClient, tickets: FakeTickets) -> None:
    serve(tickets)
    sign_in(client)
    html = client.get("/stats", headers={"Accept-Language": "sv-SE"}).text
    assert "Skapade och lösta per dag" in html and "1 tim 30 min" in html
