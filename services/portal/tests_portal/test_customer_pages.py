"""The customer portal: my requests (mine and my organisation's), a request, answering, a new request."""

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from portal.ingest_client import Download
from portal.security import Passwords
from portal.service_client import ServiceRefused
from portal.settings import Settings

from .conftest import ADMIN_EMAIL, ADMIN_PASSWORD, csrf_of, hidden_fields, sign_in
from .customer_kit import ALICE, CAROL, a_customer, customer_client, customer_tickets, sign_in_customer
from .fakes import CustomerTickets, FakeIngest, FakeUsers, ticket


@pytest.fixture
def tickets() -> CustomerTickets:
    return customer_tickets()


@pytest.fixture
def ingest() -> FakeIngest:
    return FakeIngest()


@pytest.fixture
def app(
    settings: Settings, users: FakeUsers, tickets: CustomerTickets, passwords: Passwords, ingest: FakeIngest
) -> Iterator[TestClient]:
    with customer_client(settings, users, tickets, passwords, ingest=ingest) as client:
        yield client


@pytest.fixture
def alice(app: TestClient, users: FakeUsers, passwords: Passwords) -> TestClient:
    a_customer(users, passwords, ALICE, organisation="acme")
    sign_in_customer(app)
    return app


def test_my_requests_lists_the_customers_own_requests_asked_as_the_customer(
    alice: TestClient, tickets: CustomerTickets
) -> None:
    page = alice.get("/my/tickets")

    assert page.status_code == 200
    assert 'id="request-1"' in page.text and "Printer on floor 2 is jammed" in page.text
    assert "Bob&#39;s salary question" not in page.text and "Acme VPN is down" not in page.text
    assert tickets.lists[-1]["filters"] == {"requester": ALICE}
    actor = tickets.actors[-1]
    assert (actor.role, actor.email, actor.organisation) == ("customer", ALICE, "acme")


def test_the_organisation_filter_shows_colleagues_requests_when_the_tickets_service_allows(
    alice: TestClient, tickets: CustomerTickets
) -> None:
    tickets.customers_see_organisation = True

    page = alice.get("/my/tickets", params={"scope": "organisation"})

    assert page.status_code == 200
    assert 'id="request-1"' in page.text and 'id="request-3"' in page.text
    assert "Carol Carlsson" in page.text
    assert 'id="request-2"' not in page.text
    assert tickets.lists[-1]["filters"] == {"organisation": "acme"}


def test_a_customer_without_an_organisation_has_no_organisation_filter(
    app: TestClient, users: FakeUsers, passwords: Passwords
) -> None:
    a_customer(users, passwords, ALICE)
    sign_in_customer(app)

    assert 'id="scope-organisation"' not in app.get("/my/tickets").text
    response = app.get("/my/tickets", params={"scope": "organisation"})
    assert (response.status_code, response.headers["location"]) == (303, "/my/tickets")


@pytest.mark.parametrize(
    ("category", "label"),
    [
        ("new", "Open"),
        ("waiting_for_agent", "Open"),
        ("waiting_for_customer", "Awaiting your reply"),
        ("resolved", "Solved"),
        ("closed", "Closed"),
    ],
)
def test_the_status_reads_as_a_customer_understands_it(
    alice: TestClient, tickets: CustomerTickets, category: str, label: str
) -> None:
    tickets.tickets[1].update(status=category, status_category=category)

    listed = alice.get("/my/tickets").text
    shown = alice.get("/my/tickets/1").text

    assert f">{label}</span>" in listed
    assert f'id="ticket-status">{label}</span>' in shown


def test_requests_come_newest_first_with_a_link_to_older_ones(alice: TestClient, tickets: CustomerTickets) -> None:
    tickets.tickets[4] = ticket(4, title="Newer one", updated_at="2025-04-01T10:00:00+00:00")
    tickets.next_cursor = "c-2"

    page = alice.get("/my/tickets").text
    older = alice.get("/my/tickets", params={"cursor": "c-2"})

    assert page.index('id="request-4"') < page.index('id="request-1"')
    assert 'href="/my/tickets?scope=mine&amp;cursor=c-2"' in page
    assert older.status_code == 200 and tickets.lists[-1]["cursor"] == "c-2"
    assert 'id="first-page"' in older.text


def test_a_request_shows_its_public_conversation_and_description(alice: TestClient) -> None:
    page = alice.get("/my/tickets/1")

    assert page.status_code == 200
    assert "Printer on floor 2 is jammed" in page.text
    assert "It makes a grinding noise." in page.text
    assert 'id="customer-reply-form"' in page.text


def test_an_internal_note_never_reaches_the_customer_even_if_the_tickets_service_sent_it(
    alice: TestClient, tickets: CustomerTickets
) -> None:
    tickets.tickets[1]["comments"].append(
        {
            "comment_id": "c-secret",
            "visibility": "internal",
            "author": {"role": "agent", "id": "u-bo", "email": "bo@localhost", "name": "Bo"},
            "text": "Customer is difficult, stall them",
            "created_at": "2025-03-04T10:00:00+00:00",
        }
    )

    page = alice.get("/my/tickets/1").text

    assert "stall them" not in page and "c-secret" not in page


def test_a_customer_answers_a_request_as_a_customer_comment_through_the_portal(
    alice: TestClient, tickets: CustomerTickets
) -> None:
    form = hidden_fields(alice.get("/my/tickets/1").text, "/my/tickets/1/comments")

    response = alice.post("/my/tickets/1/comments", data={**form, "text": "Still jammed\r\ntoday"})

    assert (response.status_code, response.headers["location"]) == (303, "/my/tickets/1")
    sent = tickets.commands[-1]
    assert (sent.actor.role, sent.actor.email) == ("customer", ALICE)
    assert sent.body["kind"] == "customer_comment" and sent.body["channel"] == "portal"
    assert sent.body["text"] == "Still jammed\ntoday"
    assert "Still jammed" in alice.get("/my/tickets/1").text


def test_sending_the_same_answer_twice_adds_it_once(alice: TestClient, tickets: CustomerTickets) -> None:
    form = hidden_fields(alice.get("/my/tickets/1").text, "/my/tickets/1/comments")

    alice.post("/my/tickets/1/comments", data={**form, "text": "Once"})
    alice.post("/my/tickets/1/comments", data={**form, "text": "Once"})

    assert [c["text"] for c in tickets.tickets[1]["comments"]].count("Once") == 1


def test_a_closed_request_takes_no_answer_and_points_to_a_new_request(
    alice: TestClient, tickets: CustomerTickets
) -> None:
    tickets.tickets[1].update(status="closed", status_category="closed")
    page = alice.get("/my/tickets/1").text
    assert 'id="customer-reply-form"' not in page and 'href="/my/tickets/new"' in page

    response = alice.post(
        "/my/tickets/1/comments", data={"csrf_token": csrf_of(page), "command_id": "cmd-closed-1", "text": "Hello?"}
    )

    assert response.status_code == 409
    assert "Write a new request instead" in response.text
    assert tickets.commands == []


def test_an_empty_answer_is_not_sent(alice: TestClient, tickets: CustomerTickets) -> None:
    form = hidden_fields(alice.get("/my/tickets/1").text, "/my/tickets/1/comments")

    response = alice.post("/my/tickets/1/comments", data={**form, "text": "   "})

    assert response.status_code == 422
    assert "write your answer first" in response.text
    assert tickets.commands == []


def new_ticket_route(tickets: CustomerTickets) -> list[tuple[Any, Any]]:
    """Answer `POST /api/tickets` like the tickets service: a new request #4 of the acting customer."""
    made: list[tuple[Any, Any]] = []

    def create(params: Any, json: Any, actor: Any) -> dict[str, Any]:
        made.append((actor, json))
        tickets.tickets[4] = ticket(
            4,
            title=json["fields"]["title"],
            description=json["fields"]["description"],
            requester={"email": actor.email, "name": actor.name},
            comments=[],
        )
        return tickets.tickets[4]

    tickets.api.route("POST", "/api/tickets", create)
    return made


def test_a_customer_files_a_new_request_and_sees_it(alice: TestClient, tickets: CustomerTickets) -> None:
    made = new_ticket_route(tickets)
    form = hidden_fields(alice.get("/my/tickets/new").text, "/my/tickets/new")

    response = alice.post(
        "/my/tickets/new", data={**form, "title": "  Need a  new mouse ", "description": "Mine broke.\r\nThanks"}
    )

    assert (response.status_code, response.headers["location"]) == (303, "/my/tickets/4?created=1")
    actor, body = made[0]
    assert (actor.role, actor.email) == ("customer", ALICE)
    assert body == {
        "command_id": form["command_id"],
        "channel": "portal",
        "requester": {"email": ALICE, "name": "Alice Andersson"},
        "fields": {"title": "Need a new mouse", "description": "Mine broke.\nThanks"},
    }
    page = alice.get(response.headers["location"]).text
    assert 'id="request-created"' in page and "Mine broke." in page


def test_a_request_the_tickets_service_refuses_keeps_what_the_customer_wrote(
    alice: TestClient, tickets: CustomerTickets
) -> None:
    def refuse(**_: Any) -> None:
        raise ServiceRefused(422, "required: category")

    tickets.api.route("POST", "/api/tickets", refuse)
    form = hidden_fields(alice.get("/my/tickets/new").text, "/my/tickets/new")

    response = alice.post("/my/tickets/new", data={**form, "title": "Broken", "description": "Details here"})

    assert response.status_code == 422
    assert "Required: category." in response.text
    assert 'value="Broken"' in response.text and "Details here" in response.text
    assert hidden_fields(response.text, "/my/tickets/new")["command_id"] == form["command_id"]


def test_a_request_without_a_subject_is_not_sent(alice: TestClient, tickets: CustomerTickets) -> None:
    made = new_ticket_route(tickets)
    form = hidden_fields(alice.get("/my/tickets/new").text, "/my/tickets/new")

    response = alice.post("/my/tickets/new", data={**form, "title": " ", "description": "Details"})

    assert response.status_code == 422
    assert made == []


def test_a_customer_downloads_a_file_of_their_own_request(
    alice: TestClient, tickets: CustomerTickets, ingest: FakeIngest
) -> None:
    tickets.tickets[1]["attachments"] = [{"attachment_id": "raw1:a1", "filename": "photo.png", "size": 2048}]
    ingest.files["raw1:a1"] = Download(b"\x89PNG jam", {"content-type": "image/png"})

    page = alice.get("/my/tickets/1").text
    response = alice.get("/my/tickets/1/attachments/raw1%3Aa1")

    assert 'href="/my/tickets/1/attachments/raw1%3Aa1"' in page and "photo.png" in page
    assert response.status_code == 200 and response.content == b"\x89PNG jam"
    assert response.headers["content-security-policy"] == "default-src 'none'; sandbox"


def test_the_customer_pages_speak_swedish_to_a_swedish_customer(
    app: TestClient, users: FakeUsers, passwords: Passwords, tickets: CustomerTickets
) -> None:
    a_customer(users, passwords, ALICE, language="sv")
    sign_in_customer(app)
    tickets.tickets[1].update(status="waiting_for_customer", status_category="waiting_for_customer")

    listed = app.get("/my/tickets").text
    shown = app.get("/my/tickets/1").text

    assert ">Mina ärenden<" in listed and "Väntar på ditt svar" in listed
    assert "Ditt svar" in shown


def test_staff_opening_the_customer_portal_are_sent_to_their_workspace(app: TestClient) -> None:
    sign_in(app, ADMIN_EMAIL, ADMIN_PASSWORD)

    for path in ("/my/tickets", "/my/tickets/1", "/my/tickets/new"):
        response = app.get(path)
        assert (response.status_code, response.headers["location"]) == (303, "/tickets"), path


def test_a_visitor_who_is_not_signed_in_is_sent_to_sign_in(app: TestClient, tickets: CustomerTickets) -> None:
    response = app.get("/my/tickets/1")

    assert response.status_code == 303 and response.headers["location"].startswith("/login?next=%2Fmy%2Ftickets%2F1")
    assert tickets.actors == []


def test_a_customer_signing_in_with_a_next_page_goes_there(
    app: TestClient, users: FakeUsers, passwords: Passwords
) -> None:
    a_customer(users, passwords, CAROL, name="Carol")

    response = sign_in(app, CAROL, "a good long password", next="/my/tickets/3")

    assert response.headers["location"] == "/my/tickets/3"
