"""The ticket page's tools: the fields panel, the contact panel, merge, link, split, follow, @mentions."""

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from portal.domain import User
from portal.security import Passwords
from portal.service_client import ServiceRefused
from portal.tickets_client import CommandRefused

from .conftest import PHRASE, add_user, hidden_fields, sign_in
from .fakes import FakeTickets, FakeUsers, ticket

FIELDS = "/tickets/1/fields"
CONFIG: dict[str, Any] = {
    "version": 3,
    "config": {
        "types": [
            {
                "key": "fault",
                "name": "Fault",
                "statuses": [
                    {"key": "new", "name": "New", "category": "new"},
                    {"key": "open", "name": "Open", "category": "open"},
                    {"key": "pending", "name": "Pending", "category": "waiting_for_customer"},
                    {"key": "closed", "name": "Closed", "category": "closed"},
                ],
                "transitions": {"new": ["open"], "open": ["pending", "closed"]},
            }
        ],
        "priorities": [
            {"key": "low", "name": "Low"},
            {"key": "medium", "name": "Medium"},
            {"key": "high", "name": "High"},
        ],
        "categories": [{"key": "billing", "name": "Billing"}],
        "fields": {"category": {"used": True, "required": True}},
        "custom_fields": [
            {"key": "serial", "name": "Serial number", "kind": "text", "required": True},
            {"key": "floor", "name": "Floor", "kind": "number"},
        ],
    },
}


@pytest.fixture
def bea(users: FakeUsers, passwords: Passwords) -> User:
    return add_user(users, passwords, "bea@localhost", PHRASE, "agent", name="Bea Berg", groups=("first-line",))


@pytest.fixture
def cai(users: FakeUsers, passwords: Passwords) -> User:
    return add_user(users, passwords, "cai@localhost", PHRASE, "agent", name="Cai Carlsson", groups=("second-line",))


@pytest.fixture
def configured(tickets: FakeTickets) -> FakeTickets:
    tickets.api.route("GET", "/api/config", CONFIG)
    return tickets


@pytest.fixture
def agent(client: TestClient, bea: User, cai: User, configured: FakeTickets) -> TestClient:
    assert sign_in(client, email="bea@localhost", password=PHRASE).status_code == 303
    return client


def fields_form(client: TestClient, number: int = 1) -> dict[str, str]:
    """Return the fields form as a browser would send it unchanged: hidden fields and every shown value."""
    page = client.get(f"/tickets/{number}").text
    form = hidden_fields(page, f"/tickets/{number}/fields")
    shown = {k[4:]: v for k, v in form.items() if k.startswith("was.")}
    return {**form, **shown}


def test_the_fields_panel_offers_only_the_statuses_the_workflow_allows(agent: TestClient) -> None:
    page = agent.get("/tickets/1").text

    status = page[page.index('id="field-status"') : page.index("</select>", page.index('id="field-status"'))]
    assert re.findall(r'<option value="([^"]+)"', status) == ["new", "open"]
    assert 'id="fields-form"' in page and 'id="fields-save"' in page
    assert "Serial number" in page and 'class="required"' in page


def test_a_field_edit_sends_only_the_changed_fields_with_the_version(
    agent: TestClient, configured: FakeTickets, cai: User
) -> None:
    form = fields_form(agent)

    response = agent.post(FIELDS, data={**form, "priority": "high", "handler": cai.id, "custom.floor": "2"})

    assert response.status_code == 303
    [sent] = configured.commands
    assert sent.body["fields"] == {"priority": "high", "handler": cai.id, "custom.floor": 2}
    assert sent.body["expected_version"] == 1
    assert sent.body["command_id"] == form["command_id"]


def test_an_unchanged_form_sends_nothing(agent: TestClient, configured: FakeTickets) -> None:
    assert agent.post(FIELDS, data=fields_form(agent)).status_code == 303
    assert configured.commands == []


def test_a_conflict_shows_what_changed_and_by_whom_and_keeps_the_agents_values(
    agent: TestClient, configured: FakeTickets, cai: User
) -> None:
    form = fields_form(agent)
    # Cai changes the status meanwhile; the tickets service refuses Bea's stale change.
    configured.tickets[1].update(status="open", handler=cai.id, version=2)
    configured.tickets[1]["activity"].append(
        {
            "at": None,
            "actor": {"role": "agent", "id": cai.id, "name": "Cai Carlsson"},
            "action": "field",
            "detail": "status: new → open",
        }
    )
    configured.refusal = CommandRefused(409, "status changed since version 1; reload and try again")

    response = agent.post(FIELDS, data={**form, "priority": "high", "tags": "printer, floor2"})

    assert response.status_code == 409
    page = response.text
    conflict = page[page.index('id="fields-conflict"') : page.index("</div>", page.index('id="fields-conflict"'))]
    assert "Status: open" in conflict and "by Cai Carlsson" in conflict
    assert 'id="fields-reload"' in conflict
    assert '<option value="high" selected>' in page
    assert 'value="printer, floor2"' in page
    assert hidden_fields(page, FIELDS)["version"] == "2"


def test_a_workflow_refusal_is_shown_next_to_the_form_with_the_agents_values(
    agent: TestClient, configured: FakeTickets
) -> None:
    form = fields_form(agent)
    configured.refusal = CommandRefused(409, "a ticket needs a handler before it can leave New")

    response = agent.post(FIELDS, data={**form, "status": "open"})

    assert response.status_code == 409
    assert "Not saved: A ticket needs a handler before it can leave New." in response.text
    assert 'id="fields-conflict"' not in response.text
    assert '<option value="open" selected>' in response.text


def test_a_light_agent_sees_the_fields_read_only_and_cannot_save_them(
    client: TestClient, users: FakeUsers, passwords: Passwords, configured: FakeTickets, bea: User
) -> None:
    add_user(users, passwords, "lee@localhost", PHRASE, "light_agent", name="Lee Light")
    sign_in(client, email="lee@localhost", password=PHRASE)
    page = client.get("/tickets/1").text
    assert 'id="fields-form"' not in page and "fields-read" in page

    response = client.post(
        FIELDS,
        data={
            "csrf_token": hidden_fields(page, "/tickets/1/comments")["csrf_token"],
            "command_id": "x" * 22,
            "version": "1",
            "was.priority": "medium",
            "priority": "high",
        },
    )

    assert response.status_code == 403
    assert configured.commands == []


def test_the_fields_form_needs_the_csrf_token(agent: TestClient, configured: FakeTickets) -> None:
    form = fields_form(agent)
    del form["csrf_token"]

    assert agent.post(FIELDS, data={**form, "priority": "high"}).status_code == 403
    assert configured.commands == []


def test_the_contact_panel_lists_the_requesters_other_tickets_from_the_tickets_service(
    agent: TestClient, configured: FakeTickets
) -> None:
    asked: list[dict[str, Any]] = []

    def requester_tickets(params: dict[str, Any], **_: Any) -> dict[str, Any]:
        asked.append(params)
        return {"items": [ticket(1), ticket(7, title="Toner is empty")], "next_cursor": None}

    configured.api.route("GET", "/api/tickets", requester_tickets)
    configured.api.route(
        "GET",
        "/api/contacts/alice@example.com",
        {"email": "alice@example.com", "undeliverable": {"since": "2025-03-01T00:00:00Z", "status": "5.1.1"}},
    )
    configured.tickets[1]["organisation"] = "Acme AB"

    page = agent.get("/tickets/1").text

    assert asked == [{"view": "all", "requester": "alice@example.com", "limit": 11}]
    panel = page[page.index('id="contact-panel"') :]
    assert '<a href="/tickets/7">#7 Toner is empty</a>' in panel
    assert 'href="/tickets/1"' not in panel  # the ticket itself is not "another" ticket
    assert "Acme AB" in panel and 'id="contact-undeliverable"' in panel and "5.1.1" in panel


def test_the_contact_panel_shows_no_tickets_the_tickets_service_does_not_return(
    agent: TestClient, configured: FakeTickets
) -> None:
    configured.tickets[9] = ticket(9, title="Secret board matter")
    configured.api.route("GET", "/api/tickets", {"items": [], "next_cursor": None})

    page = agent.get("/tickets/1").text

    assert "Secret board matter" not in page
    assert 'id="other-tickets-none"' in page


def test_merge_asks_for_confirmation_and_then_sends_the_merge(agent: TestClient, configured: FakeTickets) -> None:
    configured.tickets[2] = ticket(2, title="Printer jam again")
    sent: list[Any] = []
    configured.api.route("POST", "/api/tickets/1/merge", lambda json, **_: sent.append(json) or ticket(2))

    confirm = agent.get("/tickets/1", params={"merge_into": "2"}).text
    assert "Printer jam again" in confirm and 'id="merge-confirm"' in confirm
    form = hidden_fields(confirm, "/tickets/1/merge")
    response = agent.post("/tickets/1/merge", data=form)

    assert response.status_code == 303 and response.headers["location"] == "/tickets/2"
    assert sent == [{"command_id": form["command_id"], "into": 2, "expected_version": 1}]


def test_merging_into_a_ticket_one_may_not_see_is_not_offered(agent: TestClient) -> None:
    page = agent.get("/tickets/1", params={"merge_into": "99"}).text

    assert "There is no ticket #99 you may see." in page and 'id="merge-confirm"' not in page


def test_a_refused_merge_shows_the_reason_next_to_the_merge_form(agent: TestClient, configured: FakeTickets) -> None:
    configured.tickets[2] = ticket(2)

    def refuse(**_: Any) -> None:
        raise ServiceRefused(409, "a merged ticket cannot be merged again")

    configured.api.route("POST", "/api/tickets/1/merge", refuse)
    form = hidden_fields(agent.get("/tickets/1", params={"merge_into": "2"}).text, "/tickets/1/merge")

    response = agent.post("/tickets/1/merge", data=form)

    assert response.status_code == 409
    assert "Not done: A merged ticket cannot be merged again." in response.text
    assert 'id="merge-error"' in response.text


def test_link_and_unlink_send_the_parent(agent: TestClient, configured: FakeTickets) -> None:
    sent: list[Any] = []
    configured.api.route("POST", "/api/tickets/1/link", lambda json, **_: sent.append(json) or ticket(1))

    form = hidden_fields(agent.get("/tickets/1").text, "/tickets/1/link")
    assert agent.post("/tickets/1/link", data={**form, "parent": "#5"}).status_code == 303
    configured.tickets[1]["parent"] = 5
    page = agent.get("/tickets/1").text
    assert 'id="parent-link"' in page
    unlink = hidden_fields(page, "/tickets/1/link")
    assert agent.post("/tickets/1/link", data=unlink).status_code == 303

    assert sent == [
        {"command_id": form["command_id"], "parent": 5},
        {"command_id": unlink["command_id"], "parent": None},
    ]


def test_split_sends_the_chosen_comments_and_opens_the_new_ticket(agent: TestClient, configured: FakeTickets) -> None:
    sent: list[Any] = []
    configured.api.route("POST", "/api/tickets/1/split", lambda json, **_: sent.append(json) or ticket(8))
    form = hidden_fields(agent.get("/tickets/1").text, "/tickets/1/split")

    response = agent.post("/tickets/1/split", data={**form, "comment_ids": ["c-1"], "title": "Grinding noise"})

    assert response.status_code == 303 and response.headers["location"] == "/tickets/8"
    assert sent == [{"command_id": form["command_id"], "comment_ids": ["c-1"], "title": "Grinding noise"}]


def test_follow_sends_follow_and_the_page_then_offers_unfollow(
    agent: TestClient, configured: FakeTickets, bea: User
) -> None:
    sent: list[Any] = []
    configured.api.route("POST", "/api/tickets/1/follow", lambda json, **_: sent.append(json) or ticket(1))
    form = hidden_fields(agent.get("/tickets/1").text, "/tickets/1/follow")

    assert agent.post("/tickets/1/follow", data=form).status_code == 303
    configured.tickets[1]["followers"] = [bea.id]

    assert sent == [{"command_id": form["command_id"], "follow": True}]
    assert re.search(r'id="follow"[^>]*>Unfollow<', agent.get("/tickets/1").text)


@pytest.mark.parametrize("action", ["merge", "link", "split", "follow"])
def test_the_tools_need_the_csrf_token(agent: TestClient, configured: FakeTickets, action: str) -> None:
    data = {"command_id": "x" * 22, "into": "2", "parent": "2", "comment_ids": "c-1", "follow": "true"}

    assert agent.post(f"/tickets/1/{action}", data=data).status_code == 403
    assert [c for c in configured.api.calls if c[0] == "POST"] == []


def test_mentions_complete_staff_handles_for_staff(agent: TestClient) -> None:
    response = agent.get("/tickets/mentions", params={"q": "ca"})

    assert response.status_code == 200
    assert response.json() == [{"handle": "cai", "name": "Cai Carlsson"}]
    assert len(agent.get("/tickets/mentions").json()) <= 10


def test_mentions_are_not_for_customers_or_anonymous_visitors(
    client: TestClient, users: FakeUsers, passwords: Passwords
) -> None:
    anonymous = client.get("/tickets/mentions", params={"q": "a"})
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")

    add_user(users, passwords, "kim@example.com", PHRASE, "customer", name="Kim Kund")
    sign_in(client, email="kim@example.com", password=PHRASE)
    customer = client.get("/tickets/mentions", params={"q": "a"})
    assert customer.status_code == 303 and customer.headers["location"] == "/my/tickets"


def test_a_handler_change_in_the_activity_log_shows_names(
    agent: TestClient, configured: FakeTickets, cai: User
) -> None:
    configured.tickets[1]["activity"].append(
        {
            "at": None,
            "actor": {"role": "agent", "name": "Bea Berg"},
            "action": "field",
            "detail": f"handler: — → {cai.id}",
        }
    )

    page = agent.get("/tickets/1").text

    log = page[page.index('class="activity-log"') : page.index("</ol>", page.index('class="activity-log"'))]
    assert "handler: — → Cai Carlsson" in log and cai.id not in log
