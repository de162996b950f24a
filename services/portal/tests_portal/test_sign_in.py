import asyncio
from http.cookies import SimpleCookie
from typing import Literal

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from portal.app import create_app
from portal.security import Passwords, SignInLimiter
from portal.settings import Settings
from pydantic import SecretStr

from .conftest import ADMIN_EMAIL, ADMIN_PASSWORD, GUESS, PHRASE, add_user, csrf_of, sign_in
from .fakes import FakeTickets, FakeUsers


def test_signing_in_with_the_right_password_shows_the_ticket_list_with_ticket_1(client: TestClient) -> None:
    response = sign_in(client)
    assert response.status_code == 303
    assert response.headers["location"] == "/tickets"

    page = client.get("/tickets")

    assert page.status_code == 200
    assert 'href="/tickets/1"' in page.text
    assert "Printer on floor 2 is jammed" in page.text
    assert "Ada Admin" in page.text


def test_the_home_page_leads_to_the_ticket_list(client: TestClient) -> None:
    sign_in(client)
    response = client.get("/")
    assert response.status_code == 303
    assert response.headers["location"] == "/tickets"


def test_a_wrong_password_is_refused_with_the_same_message_as_an_unknown_user(client: TestClient) -> None:
    wrong = sign_in(client, password=GUESS)
    unknown = sign_in(client, email="nobody@localhost")

    assert wrong.status_code == unknown.status_code == 401
    assert "Wrong email or password." in wrong.text
    assert "Wrong email or password." in unknown.text
    assert client.get("/tickets").status_code == 303


def test_a_disabled_user_cannot_sign_in(client: TestClient, users: FakeUsers, passwords: Passwords) -> None:
    add_user(users, passwords, "gone@localhost", PHRASE, "agent", disabled=True)

    response = sign_in(client, email="gone@localhost", password=PHRASE)

    assert response.status_code == 401
    assert "Wrong email or password." in response.text


def test_the_email_is_matched_whatever_its_case(client: TestClient) -> None:
    assert sign_in(client, email="  Admin@LOCALHOST ").status_code == 303


def test_a_post_without_csrf_token_is_refused_with_403(client: TestClient) -> None:
    client.get("/login")

    response = client.post("/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})

    assert response.status_code == 403
    assert client.get("/tickets").status_code == 303


def test_signing_out_without_csrf_token_is_refused_and_keeps_the_session(client: TestClient) -> None:
    sign_in(client)

    assert client.post("/logout").status_code == 403
    assert client.get("/tickets").status_code == 200


def test_a_csrf_token_from_another_session_is_refused(settings: Settings, client: TestClient) -> None:
    other = TestClient(client.app, follow_redirects=False)
    foreign_token = csrf_of(other.get("/login").text)
    client.get("/login")

    response = client.post(
        "/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "csrf_token": foreign_token}
    )

    assert response.status_code == 403


def test_signing_out_ends_the_session(client: TestClient) -> None:
    sign_in(client)
    token = csrf_of(client.get("/tickets").text)

    response = client.post("/logout", data={"csrf_token": token})

    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    assert client.get("/tickets").status_code == 303


def test_the_sixth_failed_attempt_gets_429_even_with_the_right_password(client: TestClient) -> None:
    for _ in range(5):
        assert sign_in(client, password=GUESS).status_code == 401

    response = sign_in(client)

    assert response.status_code == 429
    assert "Too many failed sign-in attempts" in response.text
    assert int(response.headers["retry-after"]) > 0
    assert client.get("/tickets").status_code == 303


def test_failed_attempts_from_one_address_are_limited_across_emails(client: TestClient) -> None:
    for i in range(5):
        assert sign_in(client, email=f"user{i}@localhost", password=GUESS).status_code == 401

    assert sign_in(client, email="user9@localhost", password=GUESS).status_code == 429


def test_the_sign_in_limit_lifts_after_15_minutes() -> None:
    now = [1000.0]
    limiter = SignInLimiter(clock=lambda: now[0])
    for _ in range(5):
        limiter.failed("a@localhost", "10.0.0.1")
    assert not limiter.check("a@localhost", "10.0.0.2").allowed
    assert not limiter.check("b@localhost", "10.0.0.1").allowed

    now[0] += 15 * 60

    assert limiter.check("a@localhost", "10.0.0.1").allowed


def test_a_successful_sign_in_forgets_the_failures_of_that_email() -> None:
    limiter = SignInLimiter()
    for _ in range(4):
        limiter.failed("a@localhost", "10.0.0.1")
    limiter.succeeded("a@localhost")
    limiter.failed("a@localhost", "10.0.0.2")

    assert limiter.check("a@localhost", "10.0.0.2").allowed


def test_the_session_cookie_is_httponly_samesite_lax_and_not_secure_for_local_http(
    client: TestClient,
) -> None:
    response = sign_in(client)

    cookie = SimpleCookie(response.headers["set-cookie"])["portal_session"]
    assert cookie["httponly"]
    assert cookie["samesite"].lower() == "lax"
    assert not cookie["secure"]
    assert int(cookie["max-age"]) == 12 * 60 * 60


def test_with_cookie_secure_the_session_cookie_is_secure_and_host_only(
    settings: Settings, users: FakeUsers, tickets: FakeTickets, passwords: Passwords
) -> None:
    secure = settings.model_copy(update={"cookie_secure": True})
    app = create_app(secure, users=users, tickets=tickets, passwords=passwords)
    client = TestClient(app, base_url="https://testserver", follow_redirects=False)

    response = client.get("/login")

    cookie = SimpleCookie(response.headers["set-cookie"])["__Host-portal_session"]
    assert cookie["secure"]
    assert cookie["path"] == "/"
    assert sign_in(client).status_code == 303
    assert client.get("/tickets").status_code == 200


def test_a_tampered_session_cookie_counts_as_signed_out(client: TestClient) -> None:
    sign_in(client)
    value = client.cookies["portal_session"]
    client.cookies.set("portal_session", value[:-2] + ("AA" if value[-2:] != "AA" else "BB"))

    assert client.get("/tickets").status_code == 303


def test_a_session_cookie_signed_with_another_secret_counts_as_signed_out(
    client: TestClient, settings: Settings, users: FakeUsers, tickets: FakeTickets, passwords: Passwords
) -> None:
    other = create_app(
        settings.model_copy(update={"session_secret": SecretStr("y" * 48)}),
        users=users,
        tickets=tickets,
        passwords=passwords,
    )
    other_client = TestClient(other, follow_redirects=False)
    sign_in(other_client)
    client.cookies.set("portal_session", other_client.cookies["portal_session"])

    assert client.get("/tickets").status_code == 303


def test_setting_a_new_password_ends_the_sessions_signed_in_with_the_old_one(
    client: TestClient, users: FakeUsers
) -> None:
    sign_in(client)
    admin = next(iter(users.by_id_.values()))
    asyncio.run(users.set_password_hash(admin.id, "new-hash", end_sessions=True))

    assert client.get("/tickets").status_code == 303


def test_signing_in_gives_a_new_session_so_a_planted_cookie_is_useless(client: TestClient) -> None:
    client.get("/login")
    before = client.cookies["portal_session"]

    sign_in(client)

    assert client.cookies["portal_session"] != before


def test_a_signed_in_user_on_the_login_page_goes_on_to_the_tickets(client: TestClient) -> None:
    sign_in(client)
    response = client.get("/login")
    assert response.status_code == 303
    assert response.headers["location"] == "/tickets"


@pytest.mark.parametrize("path", ["/tickets", "/tickets/1", "/tickets?view=mine", "/"])
def test_pages_without_a_session_redirect_to_login(client: TestClient, path: str) -> None:
    response = client.get(path)

    assert response.status_code == 303
    if path != "/":
        assert response.headers["location"].startswith("/login?next=")


def test_signing_in_returns_to_the_page_asked_for(client: TestClient) -> None:
    first = client.get("/tickets/1?x=1")
    assert first.headers["location"] == "/login?next=%2Ftickets%2F1%3Fx%3D1"

    response = sign_in(client, next="/tickets/1?x=1")

    assert response.headers["location"] == "/tickets/1?x=1"


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example/",
        "\\\\evil.example",
        "javascript:alert(1)",
        "/\t/evil.example",
        "http:evil.example",
    ],
)
def test_next_pointing_anywhere_but_this_site_is_ignored(client: TestClient, target: str) -> None:
    response = sign_in(client, next=target)

    assert response.status_code == 303
    assert response.headers["location"] == "/tickets"


def test_every_response_carries_the_security_headers(client: TestClient) -> None:
    for response in (
        client.get("/login"),
        client.get("/health"),
        client.get("/static/portal.css"),
        client.get("/x"),
    ):
        csp = response.headers["content-security-policy"]
        assert "default-src 'self'" in csp
        assert "script-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "same-origin"


def test_sign_in_attempts_are_counted_in_the_metrics(client: TestClient) -> None:
    sign_in(client, password=GUESS)
    sign_in(client)

    metrics = client.get("/metrics").text

    assert 'helpdesk_portal_sign_ins_total{outcome="failed"} 1.0' in metrics
    assert 'helpdesk_portal_sign_ins_total{outcome="succeeded"} 1.0' in metrics


def test_unknown_users_are_checked_against_a_dummy_hash_like_known_ones(
    settings: Settings, users: FakeUsers, tickets: FakeTickets
) -> None:
    checked: list[str] = []

    class SpyHasher(PasswordHasher):
        def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:  # noqa: A002
            checked.append(str(hash))
            return super().verify(hash, password)

    passwords = Passwords(SpyHasher(time_cost=1, memory_cost=1024, parallelism=1))
    client = TestClient(create_app(settings, users=users, tickets=tickets, passwords=passwords), follow_redirects=False)

    sign_in(client, email="nobody@localhost")
    sign_in(client, password=GUESS)

    assert len(checked) == 2
    assert all(h.startswith("$argon2id$") for h in checked)
