"""The agent's ticket lists: tabs and counts, filters, sort, search, bulk actions."""

import html
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from portal.app import create_app
from portal.saved_views import MemorySavedViews
from portal.security import Passwords, SignInLimiter
from portal.service_client import ServiceRefused
from portal.settings import Settings

from .conftest import ADMIN_EMAIL, PHRASE, add_user, csrf_of, hidden_fields, sign_in
from .fakes import FakeIngest, FakeService, FakeTickets, FakeTriggers, FakeUsers, ticket

CONFIG = {
    "version": 3,
    "config": {
        "types": [
            {
                "key": "fault",
                "name": "Fault",
                "statuses": [
                    {"key": "new", "name": "New", "category": "new"},
                    {"key": "in_repair", "name": "In repair", "category": "open"},
                ],
            },
            {"key": "question", "name": "Question", "statuses": []},
        ],
        "priorities": [{"key": "low", "name": "Low"}, {"key": "urgent", "name": "Urgent"}],
    },
}


@pytest.fixture
def saved_views() -> MemorySavedViews:
    return MemorySavedViews()


@pytest.fixture
def notify() -> FakeService:
    return FakeService("notify")


@pytest.fixture
def app_client(
    settings: Settings,
    users: FakeUsers,
    tickets: FakeTickets,
    passwords: Passwords,
    saved_views: MemorySavedViews,
    notify: FakeService,
) -> Iterator[TestClient]:
    app = create_app(
        settings,
        users=users,
        tickets=tickets,
        ingest=FakeIngest(),
        triggers=FakeTriggers(),
        passwords=passwords,
        limiter=SignInLimiter(),
        services={"saved_views": saved_views, "notify": notify},
    )
    yield TestClient(app, follow_redirects=False)


@pytest.fixture
def admin(app_client: TestClient) -> TestClient:
    assert sign_in(app_client).status_code == 303
    return app_client


def staff_member(users: FakeUsers, passwords: Passwords, email: str, role: Any = "agent", **kw: Any) -> Any:
    return add_user(users, passwords, email, PHRASE, role, **kw)


def test_the_list_shows_every_view_as_a_tab_with_its_count(admin: TestClient) -> None:
    page = admin.get("/tickets").text

    for key, label in (("unassigned", "Unassigned"), ("mine", "Mine"), ("all-open", "All open")):
        assert re.search(rf'id="view-{key}"[^>]*>\s*{label} <span class="count">\d+</span>', page)
    assert re.search(r'class="tab current"[^>]*>\s*All open', page)


def test_a_view_page_takes_its_tabs_counts_with_its_rows_in_one_request(
    admin: TestClient, tickets: FakeTickets
) -> None:
    tickets.tickets[2] = ticket(2)

    page = admin.get("/tickets", params={"view": "mine"}).text

    assert [(asked["view"], asked["counts"]) for asked in tickets.lists] == [("mine", True)]
    assert tickets.count_requests == 0
    assert 'All open <span class="count">2</span>' in page


def test_a_search_page_asks_for_the_counts_beside_the_search(admin: TestClient, tickets: FakeTickets) -> None:
    tickets.api.route("GET", "/api/tickets/search", {"items": [ticket(7)], "next_cursor": None})

    page = admin.get("/tickets", params={"q": "printer"}).text

    assert tickets.count_requests == 1
    assert re.search(r'All open <span class="count">\d+</span>', page)


def test_the_counts_fragment_returns_the_tab_bar_that_polls_itself(admin: TestClient, tickets: FakeTickets) -> None:
    tickets.tickets[2] = ticket(2)

    fragment = admin.get("/views/counts", params={"view": "mine"}, headers={"HX-Request": "true"})

    assert fragment.status_code == 200
    assert fragment.text.lstrip().startswith('<nav class="tabs view-tabs" id="view-tabs"')
    assert "<html" not in fragment.text
    assert 'hx-trigger="every 15s"' in fragment.text
    assert 'All open <span class="count">2</span>' in fragment.text
    assert re.search(r'class="tab current"[^>]*>\s*Mine', fragment.text)


def test_the_counts_fragment_of_a_signed_out_visitor_swaps_nothing(app_client: TestClient) -> None:
    response = app_client.get("/views/counts", headers={"HX-Request": "true"})

    assert response.status_code == 204
    assert response.text == ""


def test_the_filters_reach_the_tickets_api_and_stay_in_the_paging_links(
    admin: TestClient, tickets: FakeTickets
) -> None:
    tickets.next_cursor = "next+1"

    page = admin.get(
        "/tickets",
        params={"view": "all", "status": "in_repair", "priority": "urgent", "group": "billing", "type": "fault"},
    ).text

    asked = tickets.lists[-1]
    assert asked["view"] == "all"
    assert asked["filters"] == {"status": "in_repair", "priority": "urgent", "group": "billing", "type": "fault"}
    assert (
        'href="/tickets?view=all&amp;status=in_repair&amp;priority=urgent&amp;group=billing&amp;type=fault'
        '&amp;cursor=next%2B1"' in page
    )


def test_the_handler_filter_me_means_the_signed_in_agent(
    app_client: TestClient, users: FakeUsers, passwords: Passwords, tickets: FakeTickets
) -> None:
    bea = staff_member(users, passwords, "bea@localhost")
    sign_in(app_client, "bea@localhost", PHRASE)

    app_client.get("/tickets", params={"view": "all_open", "handler": "me"})

    assert tickets.lists[-1]["filters"] == {"handler": bea.id}


def test_the_handler_filter_unassigned_asks_for_the_unassigned_view(admin: TestClient, tickets: FakeTickets) -> None:
    admin.get("/tickets", params={"view": "all_open", "handler": "unassigned", "priority": "low"})

    assert tickets.lists[-1]["view"] == "unassigned"
    assert tickets.lists[-1]["filters"] == {"priority": "low"}


def test_the_filter_bar_offers_the_configured_statuses_priorities_types_and_staff(
    admin: TestClient, tickets: FakeTickets, users: FakeUsers, passwords: Passwords
) -> None:
    tickets.api.route("GET", "/api/config", CONFIG)
    staff_member(users, passwords, "bea@localhost", name="Bea Berg", groups=("billing",))

    page = admin.get("/tickets").text

    assert '<option value="in_repair">In repair</option>' in page
    assert '<option value="urgent">Urgent</option>' in page
    assert '<option value="question">Question</option>' in page
    assert '<option value="billing">billing</option>' in page
    assert "Bea Berg</option>" in page


@pytest.mark.parametrize(
    "params",
    [{"status": "{'$ne': 1}"}, {"handler": "a b"}, {"order": "priority"}, {"cursor": "x" * 401}, {"sneaky": "1"}],
)
def test_a_list_link_with_a_bad_filter_is_refused_before_the_tickets_api(
    admin: TestClient, tickets: FakeTickets, params: dict[str, str]
) -> None:
    response = admin.get("/tickets", params=params)

    assert response.status_code == 400
    assert tickets.lists == []


def test_the_list_can_be_sorted_oldest_activity_first(admin: TestClient, tickets: FakeTickets) -> None:
    page = admin.get("/tickets", params={"view": "all", "order": "oldest"}).text

    assert tickets.lists[-1]["order"] == "oldest"
    assert '<option value="oldest" selected>' in page


def test_search_asks_the_search_api_and_shows_the_results_in_the_same_table(
    admin: TestClient, tickets: FakeTickets
) -> None:
    found = ticket(42, title="Invoice <b>missing</b>")
    tickets.api.route("GET", "/api/tickets/search", {"items": [found], "next_cursor": None})

    page = admin.get("/tickets", params={"q": "  invoice   missing "}).text

    searches = [params for method, path, params, _ in tickets.api.calls if path == "/api/tickets/search"]
    assert [s["q"] for s in searches] == ["invoice missing"]
    assert '<tr id="ticket-row-42">' in page
    assert "Invoice &lt;b&gt;missing&lt;/b&gt;" in page
    assert tickets.lists == []
    assert 'class="tab current"' not in page


def test_a_refused_search_says_why_and_shows_no_tickets(admin: TestClient, tickets: FakeTickets) -> None:
    def refuse(**_: Any) -> Any:
        raise ServiceRefused(422, "the query has no words")

    tickets.api.route("GET", "/api/tickets/search", refuse)

    page = admin.get("/tickets", params={"q": "***"}).text

    assert "Search refused: the query has no words" in page
    assert "ticket-row-1" not in page


def bulk_form(page: str) -> dict[str, str]:
    # As a browser sends them: the page's HTML entities decoded.
    return {k: html.unescape(v) for k, v in hidden_fields(page, "/tickets/bulk").items()}


def test_a_bulk_change_sends_one_bulk_command_and_shows_what_was_updated_and_refused(
    admin: TestClient, tickets: FakeTickets, users: FakeUsers
) -> None:
    tickets.tickets[12] = ticket(12)
    tickets.api.route("POST", "/api/tickets/bulk", {"updated": [1], "refused": {"12": "ticket #12 is closed"}})
    page = admin.get("/tickets", params={"view": "all", "priority": "low"}).text
    form = bulk_form(page)

    response = admin.post(
        "/tickets/bulk",
        data={**form, "number": ["1", "12"], "bulk_status": "open", "bulk_handler": "me", "bulk_priority": ""},
    )

    assert response.status_code == 200
    (body,) = [body for method, path, _, body in tickets.api.calls if (method, path) == ("POST", "/api/tickets/bulk")]
    admin_id = next(u.id for u in users.by_id_.values() if u.email == ADMIN_EMAIL)
    assert body == {
        "command_id": form["command_id"],
        "numbers": [1, 12],
        "fields": {"status": "open", "handler": admin_id},
    }
    assert re.search(r"1 updated, 1 refused", response.text)
    assert '<a href="/tickets/12">#12</a>: ticket #12 is closed' in response.text
    assert tickets.lists[-1]["filters"] == {"priority": "low"}  # the list comes back as it was


def test_a_bulk_change_without_tickets_or_fields_sends_nothing(admin: TestClient, tickets: FakeTickets) -> None:
    form = bulk_form(admin.get("/tickets").text)

    no_tickets = admin.post("/tickets/bulk", data={**form, "bulk_status": "open"})
    no_fields = admin.post("/tickets/bulk", data={**form, "number": "1"})

    assert (no_tickets.status_code, no_fields.status_code) == (422, 422)
    assert "select tickets first" in no_tickets.text
    assert "choose what to change" in no_fields.text
    assert tickets.api.calls == [c for c in tickets.api.calls if c[1] != "/api/tickets/bulk"]


def test_a_bulk_assignment_to_someone_who_is_not_staff_is_refused(
    admin: TestClient, tickets: FakeTickets, users: FakeUsers, passwords: Passwords
) -> None:
    alice = add_user(users, passwords, "alice@example.com", PHRASE, "customer")
    form = bulk_form(admin.get("/tickets").text)

    response = admin.post("/tickets/bulk", data={**form, "number": "1", "bulk_handler": alice.id})

    assert response.status_code == 422
    assert not [c for c in tickets.api.calls if c[1] == "/api/tickets/bulk"]


def test_a_bulk_change_without_the_csrf_token_is_refused(admin: TestClient, tickets: FakeTickets) -> None:
    form = bulk_form(admin.get("/tickets").text)
    del form["csrf_token"]

    response = admin.post("/tickets/bulk", data={**form, "number": "1", "bulk_status": "open"})

    assert response.status_code == 403
    assert not [c for c in tickets.api.calls if c[1] == "/api/tickets/bulk"]


def test_a_light_agent_gets_no_bulk_actions_and_the_route_refuses_them(
    app_client: TestClient, users: FakeUsers, passwords: Passwords, tickets: FakeTickets
) -> None:
    staff_member(users, passwords, "lee@localhost", role="light_agent")
    sign_in(app_client, "lee@localhost", PHRASE)
    page = app_client.get("/tickets").text

    assert 'id="bulk-bar"' not in page
    assert 'name="number"' not in page
    response = app_client.post(
        "/tickets/bulk",
        data={"csrf_token": csrf_of(page), "command_id": "c" * 16, "number": "1", "bulk_status": "open"},
    )
    assert response.status_code == 403
    assert not [c for c in tickets.api.calls if c[1] == "/api/tickets/bulk"]


def test_the_table_shows_requester_status_priority_group_handler_and_updated(
    admin: TestClient, tickets: FakeTickets, users: FakeUsers, passwords: Passwords
) -> None:
    bea = staff_member(users, passwords, "bea@localhost", name="Bea Berg")
    tickets.tickets[1] = ticket(1, handler=bea.id, group="billing", priority="high", status="waiting_for_agent")

    row = admin.get("/tickets").text.split('<tr id="ticket-row-1">')[1].split("</tr>")[0]

    for shown in ("Alice Andersson", "Waiting for agent", "High", "billing", "Bea Berg", "2025-03-04 09:30 UTC"):
        assert shown in row
    assert '<a href="/tickets/1">Printer on floor 2 is jammed</a>' in row
