import re

import pytest
from fastapi.testclient import TestClient
from portal.security import Passwords

from .conftest import PHRASE, add_user, sign_in
from .fakes import FakeTickets, FakeUsers, ticket

SCRIPT = "<script>alert('owned')</script>"


@pytest.fixture
def signed_in(client: TestClient) -> TestClient:
    assert sign_in(client).status_code == 303
    return client


def test_the_ticket_list_has_all_view_tabs_with_counts(signed_in: TestClient) -> None:
    page = signed_in.get("/tickets").text

    for label in ("Unassigned", "Mine", "Waiting for agent", "Waiting for customer", "All open", "All"):
        assert f'{label} <span class="count">' in page
    assert 'Mine <span class="count">0</span>' in page
    assert 'All open <span class="count">1</span>' in page


@pytest.mark.parametrize(
    ("view", "element_id", "label"),
    [
        ("unassigned", "view-unassigned", "Unassigned"),
        ("mine", "view-mine", "Mine"),
        ("waiting_for_agent", "view-waiting-for-agent", "Waiting for agent"),
        ("waiting_for_customer", "view-waiting-for-customer", "Waiting for customer"),
        ("all_open", "view-all-open", "All open"),
    ],
)
def test_every_view_is_a_link_with_a_stable_id_and_its_count(
    signed_in: TestClient, tickets: FakeTickets, view: str, element_id: str, label: str
) -> None:
    page = signed_in.get("/tickets").text

    link = re.search(rf'<a href="([^"]+)" id="{element_id}"[^>]*>\s*{label} <span class="count">(\d+)</span>', page)
    assert link, element_id
    assert link.group(2) == ("0" if view == "mine" else "1")
    assert signed_in.get(link.group(1)).status_code == 200
    assert tickets.views[-1] == (view, None)


def test_each_row_of_the_list_links_to_its_ticket(signed_in: TestClient, tickets: FakeTickets) -> None:
    tickets.tickets[7] = ticket(7, title="Coffee machine")

    page = signed_in.get("/tickets").text

    row = page[page.index('<tr id="ticket-row-7">') :]
    assert '<a href="/tickets/7">Coffee machine</a>' in row[: row.index("</tr>")]


def test_the_ticket_list_shows_the_columns_with_human_labels(signed_in: TestClient) -> None:
    page = signed_in.get("/tickets").text

    for column in ("#", "Title", "Requester", "Status", "Priority", "Handler", "Updated"):
        assert '<th scope="col"' in page and f">{column}</th>" in page
    assert ">New<" in page
    assert ">Medium<" in page
    assert "Alice Andersson" in page
    assert "2025-03-04 09:30 UTC" in page


def test_the_ticket_list_shows_the_handler_by_name(
    signed_in: TestClient, users: FakeUsers, tickets: FakeTickets, passwords: Passwords
) -> None:
    bea = add_user(users, passwords, "bea@localhost", PHRASE, "agent", name="Bea Berg")
    tickets.tickets[1] = ticket(1, handler=bea.id, status="waiting_for_customer")

    page = signed_in.get("/tickets").text

    assert "Bea Berg" in page
    assert "Waiting for customer" in page


def test_the_chosen_view_is_asked_of_the_tickets_service(signed_in: TestClient, tickets: FakeTickets) -> None:
    page = signed_in.get("/tickets", params={"view": "waiting_for_agent"})

    assert page.status_code == 200
    assert tickets.views[-1] == ("waiting_for_agent", None)
    assert re.search(r'class="tab current"[^>]*>\s*Waiting for agent', page.text)


def test_an_unknown_view_is_a_404_page(signed_in: TestClient) -> None:
    response = signed_in.get("/tickets", params={"view": "$where"})
    assert response.status_code == 404
    assert "No such view" in response.text


def test_the_next_page_link_carries_the_cursor(signed_in: TestClient, tickets: FakeTickets) -> None:
    tickets.next_cursor = "abc/+=&x"

    page = signed_in.get("/tickets", params={"view": "all"}).text

    assert 'href="/tickets?view=all&amp;cursor=abc%2F%2B%3D%26x"' in page
    signed_in.get("/tickets", params={"view": "all", "cursor": "abc/+=&x"})
    assert tickets.views[-1] == ("all", "abc/+=&x")


def test_the_portal_tells_the_tickets_service_who_is_acting(
    client: TestClient, users: FakeUsers, tickets: FakeTickets, passwords: Passwords
) -> None:
    add_user(users, passwords, "bea@localhost", PHRASE, "agent", groups=("first-line", "billing"))
    sign_in(client, email="bea@localhost", password=PHRASE)

    client.get("/tickets")

    actor = tickets.actors[-1]
    assert (actor.role, actor.email, actor.groups) == ("agent", "bea@localhost", ("first-line", "billing"))
    assert actor.id == next(u.id for u in users.by_id_.values() if u.email == "bea@localhost")


@pytest.mark.parametrize("path", ["/tickets", "/tickets/1"])
def test_a_customer_is_sent_to_their_own_portal_from_agent_pages(
    client: TestClient, users: FakeUsers, tickets: FakeTickets, passwords: Passwords, path: str
) -> None:
    add_user(users, passwords, "alice@example.com", PHRASE, "customer")
    sign_in(client, email="alice@example.com", password=PHRASE)

    response = client.get(path)

    assert response.status_code == 303
    assert response.headers["location"] == "/my/tickets"
    assert "Printer on floor 2" not in response.text
    assert tickets.actors == []


def test_a_light_agent_may_open_the_workspace(client: TestClient, users: FakeUsers, passwords: Passwords) -> None:
    add_user(users, passwords, "lee@localhost", PHRASE, "light_agent")
    sign_in(client, email="lee@localhost", password=PHRASE)

    assert client.get("/tickets").status_code == 200


def test_the_ticket_detail_shows_fields_conversation_and_activity(signed_in: TestClient) -> None:
    page = signed_in.get("/tickets/1")

    assert page.status_code == 200
    text = page.text
    assert "#1</span> Printer on floor 2 is jammed" in text
    for field in (
        "Status",
        "Priority",
        "Type",
        "Group",
        "Handler",
        "Requester",
        "Channel",
        "Created",
        "Updated",
    ):
        assert f"<dt>{field}</dt>" in text
    assert "support@example.com" in text
    assert "It makes a grinding noise.\nAnd then it stops." in text
    assert "via Email" in text
    assert "Ticket created" in text
    assert "channel: email" in text


def test_a_description_repeated_by_the_first_message_is_shown_once(signed_in: TestClient) -> None:
    text = signed_in.get("/tickets/1").text
    assert "<h2>Description</h2>" not in text


def test_a_description_of_its_own_is_shown_above_the_conversation(signed_in: TestClient, tickets: FakeTickets) -> None:
    tickets.tickets[1] = ticket(1, description="Made from the web form.")

    text = signed_in.get("/tickets/1").text

    assert text.index("<h2>Description</h2>") < text.index("Made from the web form.") < text.index("Conversation")


def test_internal_notes_are_set_apart_from_public_messages(signed_in: TestClient, tickets: FakeTickets) -> None:
    data = ticket(1)
    data["comments"].append(
        {
            "comment_id": "c-2",
            "visibility": "internal",
            "author": {"role": "agent", "id": "u-2", "email": "bea@localhost", "name": "Bea Berg"},
            "channel": "portal",
            "text": "Called facilities.",
            "created_at": "2025-03-04T10:00:00Z",
        }
    )
    tickets.tickets[1] = data

    text = signed_in.get("/tickets/1").text

    public = text.index('class="comment public from-customer"')
    internal = text.index('class="comment internal"')
    assert public < internal
    assert "Internal note" in text[internal:]
    assert "Called facilities." in text[internal:]
    assert "Internal note" not in text[public:internal]


def test_script_in_a_ticket_title_and_comment_is_escaped(signed_in: TestClient, tickets: FakeTickets) -> None:
    data = ticket(1, title=SCRIPT, requester={"email": "x@example.com", "name": SCRIPT})
    data["comments"][0]["text"] = SCRIPT
    data["comments"][0]["author"]["name"] = SCRIPT
    data["activity"][0]["detail"] = {"title": SCRIPT}
    tickets.tickets[1] = data

    for page in (signed_in.get("/tickets").text, signed_in.get("/tickets/1").text):
        assert "<script>" not in page
        assert "&lt;script&gt;" in page


def test_html_bodies_are_shown_sanitised(signed_in: TestClient, tickets: FakeTickets) -> None:
    data = ticket(1)
    data["comments"][0]["html"] = (
        '<p onclick="steal()">Hello <b>there</b></p><script>steal()</script>'
        '<a href="javascript:steal()">x</a><img src=x onerror="steal()">'
    )
    tickets.tickets[1] = data

    text = signed_in.get("/tickets/1").text

    assert "<b>there</b>" in text
    assert "steal()" not in text


def test_an_unknown_ticket_is_a_404_page(signed_in: TestClient) -> None:
    for path in ("/tickets/99", "/tickets/abc", "/tickets/0", "/tickets/99999999999999999999"):
        response = signed_in.get(path)
        assert response.status_code == 404, path
        assert "not found" in response.text.lower()


def test_an_unreachable_tickets_service_shows_a_clear_503_page(signed_in: TestClient, tickets: FakeTickets) -> None:
    tickets.down = True

    for path in ("/tickets", "/tickets/1"):
        response = signed_in.get(path)
        assert response.status_code == 503
        assert "Tickets service unavailable" in response.text
        assert "Traceback" not in response.text


def test_pages_are_not_cached(signed_in: TestClient) -> None:
    assert signed_in.get("/tickets").headers["cache-control"] == "no-store"


TOKEN = "k3y-0f-the-customer-link-xyz"


def test_the_secret_ticket_link_shows_the_public_conversation_without_signing_in(
    client: TestClient, tickets: FakeTickets
) -> None:
    internal = {**tickets.tickets[1]["comments"][0], "comment_id": "c-int", "visibility": "internal",
                "text": "Internal: customer is on the VIP list"}  # fmt: skip
    tickets.tickets[1] |= {"link_token": TOKEN, "comments": [*tickets.tickets[1]["comments"], internal]}
    page = client.get(f"/t/{TOKEN}")
    assert page.status_code == 200
    assert "Printer on floor 2 is jammed" in page.text
    assert tickets.tickets[1]["comments"][0]["text"].splitlines()[0] in page.text
    assert "VIP list" not in page.text
    assert page.headers["Referrer-Policy"] == "same-origin"  # the secret link never leaves the site


def test_an_unknown_or_malformed_ticket_link_is_not_found(client: TestClient) -> None:
    assert client.get(f"/t/{TOKEN}").status_code == 404
    assert client.get("/t/short").status_code == 404
    assert client.get("/t/" + "a" * 30 + "%24gt").status_code == 404
