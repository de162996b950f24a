"""What a customer must never reach: others' requests (by number, agents' URL, attachment id), forms without
the CSRF token, and script in titles or comments."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from portal.ingest_client import Download
from portal.magic_links import MemorySignInLinks
from portal.security import Passwords
from portal.settings import Settings

from .conftest import csrf_of, hidden_fields
from .customer_kit import ALICE, a_customer, customer_client, customer_tickets, notify_service, sign_in_customer
from .fakes import CustomerTickets, FakeIngest, FakeService, FakeUsers, ticket


@pytest.fixture
def tickets() -> CustomerTickets:
    found = customer_tickets()
    found.tickets[2]["attachments"] = [{"attachment_id": "raw2:a1", "filename": "payslip.pdf", "size": 10}]
    return found


@pytest.fixture
def ingest() -> FakeIngest:
    found = FakeIngest()
    found.files["raw2:a1"] = Download(b"%PDF-1.7 salary", {"content-type": "application/pdf"})
    return found


@pytest.fixture
def notify() -> FakeService:
    return notify_service()


@pytest.fixture
def links() -> MemorySignInLinks:
    return MemorySignInLinks()


@pytest.fixture
def app(
    settings: Settings,
    users: FakeUsers,
    tickets: CustomerTickets,
    passwords: Passwords,
    ingest: FakeIngest,
    notify: FakeService,
    links: MemorySignInLinks,
) -> Iterator[TestClient]:
    with customer_client(settings, users, tickets, passwords, ingest=ingest, notify=notify, links=links) as client:
        yield client


@pytest.fixture
def alice(app: TestClient, users: FakeUsers, passwords: Passwords) -> TestClient:
    a_customer(users, passwords, ALICE, organisation="acme")
    sign_in_customer(app)
    return app


def test_a_customer_cannot_open_another_customers_request_by_number(
    alice: TestClient, tickets: CustomerTickets
) -> None:
    response = alice.get("/my/tickets/2")
    missing = alice.get("/my/tickets/99")

    assert response.status_code == 404
    assert "salary" not in response.text.lower()
    # The tickets service decided, asked as Alice: the portal did not look as anyone else.
    actor = tickets.actors[-2]
    assert (actor.role, actor.email) == ("customer", ALICE)
    # Someone else's request and no request look the same: nothing tells that #2 exists.
    assert response.text == missing.text


def test_a_colleagues_request_stays_hidden_while_the_organisation_setting_is_off(
    alice: TestClient, tickets: CustomerTickets
) -> None:
    assert alice.get("/my/tickets/3").status_code == 404
    assert "Acme VPN" not in alice.get("/my/tickets", params={"scope": "organisation"}).text


def test_a_customer_cannot_answer_another_customers_request(alice: TestClient, tickets: CustomerTickets) -> None:
    csrf = csrf_of(alice.get("/my/tickets/1").text)

    response = alice.post("/my/tickets/2/comments", data={"csrf_token": csrf, "command_id": "c-other-1", "text": "x"})

    assert response.status_code == 404
    assert tickets.commands == []


@pytest.mark.parametrize("path", ["/tickets/2", "/tickets/2/attachments/raw2%3Aa1", "/tickets"])
def test_a_customer_opening_the_agents_pages_is_sent_to_their_requests_with_no_ticket_data(
    alice: TestClient, tickets: CustomerTickets, ingest: FakeIngest, path: str
) -> None:
    asked = len(tickets.actors)

    response = alice.get(path)

    assert (response.status_code, response.headers["location"]) == (303, "/my/tickets")
    assert "salary" not in response.text.lower()
    assert len(tickets.actors) == asked and ingest.calls == []


def test_another_tickets_attachment_id_on_the_customers_own_ticket_url_is_not_served(
    alice: TestClient, ingest: FakeIngest
) -> None:
    response = alice.get("/my/tickets/1/attachments/raw2%3Aa1")

    assert response.status_code == 404
    assert b"salary" not in response.content
    assert ingest.calls == []


def test_an_attachment_of_another_customers_request_is_not_served(alice: TestClient, ingest: FakeIngest) -> None:
    assert alice.get("/my/tickets/2/attachments/raw2%3Aa1").status_code == 404
    assert ingest.calls == []


def test_an_answer_without_the_csrf_token_is_refused(alice: TestClient, tickets: CustomerTickets) -> None:
    form = hidden_fields(alice.get("/my/tickets/1").text, "/my/tickets/1/comments")

    response = alice.post("/my/tickets/1/comments", data={"command_id": form["command_id"], "text": "Hi"})
    forged = alice.post("/my/tickets/1/comments", data={**form, "csrf_token": "0" * 64, "text": "Hi"})

    assert (response.status_code, forged.status_code) == (403, 403)
    assert tickets.commands == []


def test_a_new_request_without_the_csrf_token_is_refused(alice: TestClient, tickets: CustomerTickets) -> None:
    form = hidden_fields(alice.get("/my/tickets/new").text, "/my/tickets/new")

    response = alice.post("/my/tickets/new", data={"command_id": form["command_id"], "title": "T", "description": "D"})

    assert response.status_code == 403
    assert tickets.api.calls == []


def test_asking_for_a_sign_in_link_without_the_csrf_token_is_refused(
    app: TestClient, users: FakeUsers, passwords: Passwords, notify: FakeService
) -> None:
    a_customer(users, passwords, ALICE)
    app.get("/login/link")

    response = app.post("/login/link", data={"email": ALICE})

    assert response.status_code == 403
    assert notify.calls == []


def test_using_a_sign_in_link_without_the_csrf_token_is_refused_and_leaves_the_link_usable(
    app: TestClient, users: FakeUsers, passwords: Passwords, notify: FakeService
) -> None:
    a_customer(users, passwords, ALICE)
    form = app.get("/login/link")
    app.post("/login/link", data={"email": ALICE, "csrf_token": csrf_of(form.text)})
    path = notify.calls[0][3]["link"].removeprefix("http://127.0.0.1:8000")
    page = app.get(path)

    refused = app.post(path, data={})

    assert refused.status_code == 403 and "set-cookie" not in {k.lower() for k in refused.headers}
    assert app.get("/my/tickets").headers["location"].startswith("/login")
    assert app.post(path, data={"csrf_token": csrf_of(page.text)}).headers["location"] == "/my/tickets"


SCRIPT = "<script>alert('x')</script>"


def test_script_in_a_title_or_comment_is_shown_as_text_on_the_customer_pages(
    alice: TestClient, tickets: CustomerTickets
) -> None:
    tickets.tickets[1] = ticket(
        1,
        title=f"Help {SCRIPT}",
        description=f"Desc {SCRIPT}",
        comments=[
            {
                "comment_id": "c-1",
                "visibility": "public",
                "author": {"role": "customer", "email": ALICE, "name": f"Eve {SCRIPT}"},
                "text": f"Text {SCRIPT}",
                "html": f'<p onclick="steal()">Hi</p>{SCRIPT}<img src="https://tracker.example/x.png">',
                "created_at": "2025-03-04T10:00:00+00:00",
            }
        ],
    )

    for page in (alice.get("/my/tickets").text, alice.get("/my/tickets/1").text):
        assert SCRIPT not in page and "onclick" not in page and "tracker.example" not in page
    assert "Help &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in alice.get("/my/tickets/1").text
