"""Signing in by magic link: the same answer for every address, one use, 15 minutes, rate limits, notify's mail."""

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from portal.customer_pages import LOOKUP_ACTOR
from portal.magic_links import LinkRequestLimiter, MemorySignInLinks, token_hash
from portal.security import Passwords
from portal.settings import Settings

from .conftest import ADMIN_EMAIL, PHRASE, add_user, csrf_of
from .customer_kit import ALICE, CAROL, a_customer, customer_client, customer_tickets, notify_service
from .fakes import CustomerTickets, FakeService, FakeUsers

PUBLIC = "http://127.0.0.1:8000/login/link/"


@pytest.fixture
def tickets() -> CustomerTickets:
    return customer_tickets()


@pytest.fixture
def notify() -> FakeService:
    return notify_service()


@pytest.fixture
def links() -> MemorySignInLinks:
    return MemorySignInLinks()


@pytest.fixture
def clock() -> list[float]:
    return [1000.0]


@pytest.fixture
def app(
    settings: Settings,
    users: FakeUsers,
    tickets: CustomerTickets,
    passwords: Passwords,
    notify: FakeService,
    links: MemorySignInLinks,
    clock: list[float],
) -> Iterator[TestClient]:
    limiter = LinkRequestLimiter(clock=lambda: clock[0])
    with customer_client(settings, users, tickets, passwords, notify=notify, links=links, limiter=limiter) as client:
        yield client


def ask_for_link(client: TestClient, email: str, **headers: str) -> Any:
    form = client.get("/login/link", headers=headers)
    assert form.status_code == 200
    return client.post("/login/link", data={"email": email, "csrf_token": csrf_of(form.text)}, headers=headers)


def sent_links(notify: FakeService) -> list[dict[str, Any]]:
    return [json for method, path, _, json in notify.calls if (method, path) == ("POST", "/sign-in-links")]


def use_link(client: TestClient, link: str) -> Any:
    path = link.removeprefix("http://127.0.0.1:8000")
    page = client.get(path)
    assert page.status_code == 200, page.text
    return client.post(path, data={"csrf_token": csrf_of(page.text)})


def test_the_sign_in_page_offers_a_link_by_email(app: TestClient) -> None:
    assert 'href="/login/link"' in app.get("/login").text


def test_the_answer_is_the_same_for_a_known_and_an_unknown_address(
    app: TestClient, users: FakeUsers, passwords: Passwords, notify: FakeService
) -> None:
    a_customer(users, passwords, ALICE)

    known = ask_for_link(app, ALICE)
    unknown = ask_for_link(app, "nobody@example.com")

    assert (known.status_code, known.headers["location"]) == (303, "/login/link?sent=1")
    assert (unknown.status_code, unknown.headers["location"]) == (303, "/login/link?sent=1")
    assert "If the address is known to us, a sign-in link is on its way" in app.get("/login/link?sent=1").text
    assert [m["to"] for m in sent_links(notify)] == [ALICE]


def test_a_requester_without_an_account_gets_a_link_and_becomes_a_customer_on_first_use(
    app: TestClient, users: FakeUsers, tickets: CustomerTickets, notify: FakeService
) -> None:
    ask_for_link(app, "  Carol@Example.com ")

    assert tickets.actors[-1] == LOOKUP_ACTOR and tickets.lists[-1]["filters"] == {"requester": CAROL}
    [mail] = sent_links(notify)
    assert mail["to"] == CAROL and mail["link"].startswith(PUBLIC) and mail["language"] == "en"

    signed_in = use_link(app, mail["link"])

    assert (signed_in.status_code, signed_in.headers["location"]) == (303, "/my/tickets")
    carol = next(u for u in users.by_id_.values() if u.email == CAROL)
    assert (carol.role, carol.name) == ("customer", "Carol Carlsson")
    assert 'id="request-3"' in app.get("/my/tickets").text


def test_opening_the_link_does_not_use_it_up_so_mail_scanners_cannot(
    app: TestClient, users: FakeUsers, passwords: Passwords, notify: FakeService
) -> None:
    a_customer(users, passwords, ALICE)
    ask_for_link(app, ALICE)
    path = sent_links(notify)[0]["link"].removeprefix("http://127.0.0.1:8000")

    for _ in range(3):
        page = TestClient(app.app).get(path)
        assert page.status_code == 200 and 'id="sign-in-link-use"' in page.text

    assert use_link(app, path).headers["location"] == "/my/tickets"


def test_a_used_link_does_not_sign_in_again(
    app: TestClient, users: FakeUsers, passwords: Passwords, notify: FakeService
) -> None:
    a_customer(users, passwords, ALICE)
    ask_for_link(app, ALICE)
    path = sent_links(notify)[0]["link"].removeprefix("http://127.0.0.1:8000")
    use_link(app, path)

    other = TestClient(app.app, follow_redirects=False)
    page = other.get(path)
    again = other.post(path, data={"csrf_token": csrf_of(other.get("/login/link").text)})

    assert page.status_code == 410 and 'id="sign-in-link-used"' in page.text
    assert again.status_code == 410 and "set-cookie" not in {k.lower() for k in again.headers}
    assert other.get("/my/tickets").headers["location"].startswith("/login")


def test_an_expired_link_does_not_sign_in_and_makes_no_account(
    app: TestClient, users: FakeUsers, notify: FakeService, links: MemorySignInLinks
) -> None:
    ask_for_link(app, CAROL)
    path = sent_links(notify)[0]["link"].removeprefix("http://127.0.0.1:8000")
    page = app.get(path)
    for key, link in links.links.items():
        links.links[key] = replace(link, expires_at=datetime.now(UTC) - timedelta(seconds=1))

    response = app.post(path, data={"csrf_token": csrf_of(page.text)})

    assert response.status_code == 410
    assert app.get(path).status_code == 410
    assert all(u.email != CAROL for u in users.by_id_.values())
    assert app.get("/my/tickets").headers["location"].startswith("/login")


def test_a_link_lasts_fifteen_minutes(
    app: TestClient, users: FakeUsers, passwords: Passwords, notify: FakeService, links: MemorySignInLinks
) -> None:
    a_customer(users, passwords, ALICE)
    before = datetime.now(UTC)

    ask_for_link(app, ALICE)

    [link] = links.links.values()
    assert timedelta(minutes=14, seconds=59) < link.expires_at - before <= timedelta(minutes=15, seconds=5)


def test_the_store_keeps_only_the_hash_of_the_token(
    app: TestClient, users: FakeUsers, passwords: Passwords, notify: FakeService, links: MemorySignInLinks
) -> None:
    a_customer(users, passwords, ALICE)
    ask_for_link(app, ALICE)
    token = sent_links(notify)[0]["link"].removeprefix(PUBLIC)

    assert len(token) == 43
    assert list(links.links) == [token_hash(token)]
    assert token not in repr(links.links)


@pytest.mark.parametrize("role", ["admin", "agent", "light_agent"])
def test_staff_get_no_link_they_sign_in_with_their_password(
    app: TestClient, users: FakeUsers, passwords: Passwords, notify: FakeService, role: Any
) -> None:
    add_user(users, passwords, "staff@example.com", PHRASE, role)

    response = ask_for_link(app, "staff@example.com")

    assert response.headers["location"] == "/login/link?sent=1"
    assert sent_links(notify) == []


def test_a_disabled_customer_gets_no_link(
    app: TestClient, users: FakeUsers, passwords: Passwords, notify: FakeService
) -> None:
    a_customer(users, passwords, ALICE, disabled=True)

    assert ask_for_link(app, ALICE).headers["location"] == "/login/link?sent=1"
    assert sent_links(notify) == []


def test_a_link_for_an_address_that_became_staff_meanwhile_does_not_sign_in(
    app: TestClient, users: FakeUsers, passwords: Passwords, notify: FakeService
) -> None:
    alice = a_customer(users, passwords, ALICE)
    ask_for_link(app, ALICE)
    users.by_id_[alice.id] = replace(alice, role="agent")

    response = use_link(app, sent_links(notify)[0]["link"])

    assert response.status_code == 403
    assert app.get("/tickets").headers["location"].startswith("/login")


def test_at_most_three_links_an_address_in_fifteen_minutes(
    app: TestClient, users: FakeUsers, passwords: Passwords, notify: FakeService, clock: list[float]
) -> None:
    a_customer(users, passwords, ALICE)
    for _ in range(3):
        assert ask_for_link(app, ALICE).status_code == 303

    refused = ask_for_link(app, ALICE)
    clock[0] += 15 * 60
    later = ask_for_link(app, ALICE)

    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert "Too many sign-in links" in refused.text
    assert later.status_code == 303
    assert len(sent_links(notify)) == 4


def test_unknown_addresses_count_against_the_limit_too_so_it_tells_nothing(app: TestClient) -> None:
    for _ in range(3):
        ask_for_link(app, "nobody@example.com")

    assert ask_for_link(app, "nobody@example.com").status_code == 429


def test_one_client_may_ask_for_ten_links_in_fifteen_minutes_whatever_the_addresses(app: TestClient) -> None:
    for n in range(10):
        assert ask_for_link(app, f"guess{n}@example.com").status_code == 303

    assert ask_for_link(app, "guess10@example.com").status_code == 429


def test_when_notify_cannot_send_the_customer_is_told_to_try_again(
    app: TestClient, users: FakeUsers, passwords: Passwords, notify: FakeService
) -> None:
    a_customer(users, passwords, ALICE)
    notify.down = True

    response = ask_for_link(app, ALICE)

    assert response.status_code == 503
    assert "We could not send the link just now" in response.text
    assert f'value="{ALICE}"' in response.text


def test_the_mail_goes_out_in_the_language_of_the_page_or_the_customers_choice(
    app: TestClient, users: FakeUsers, passwords: Passwords, notify: FakeService
) -> None:
    a_customer(users, passwords, ALICE, language="sv")

    ask_for_link(app, ALICE)
    ask_for_link(app, CAROL, **{"Accept-Language": "sv-SE,sv;q=0.9"})

    assert [m["language"] for m in sent_links(notify)] == ["sv", "sv"]
    assert "Logga in med en länk" in app.get("/login/link", headers={"Accept-Language": "sv"}).text


def test_a_malformed_link_shows_the_used_link_page(app: TestClient) -> None:
    assert app.get("/login/link/short").status_code == 410
    assert app.get("/login/link/" + "x" * 43).status_code == 410


def test_a_signed_in_visitor_asking_for_a_link_goes_to_their_requests(
    app: TestClient, users: FakeUsers, passwords: Passwords, notify: FakeService
) -> None:
    a_customer(users, passwords, ALICE)
    ask_for_link(app, ALICE)
    use_link(app, sent_links(notify)[0]["link"])

    assert app.get("/login/link").headers["location"] == "/my/tickets"
    assert ADMIN_EMAIL not in app.get("/my/tickets").text
