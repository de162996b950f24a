import pytest
from fastapi.testclient import TestClient
from portal.ingest_client import Download, Reprocessed
from portal.security import Passwords

from .conftest import PHRASE, add_user, assert_download, csrf_of, sign_in
from .fakes import FakeIngest, FakeUsers

ENTRY = {
    "_id": "quarantine-0123abc",
    "raw_id": "quarantine-0123abc",
    "mailboxes": ["support@example.com", "billing@example.com"],
    "reason": "no From address",
    "size": 3 * 1024,
    "received_at": "2025-03-04T09:30:00Z",
    "attempts": 2,
}
RAW_HEADERS = {
    "content-type": "message/rfc822",
    "content-disposition": 'attachment; filename="quarantine-quarantine-0123abc.eml"',
    "x-content-type-options": "nosniff",
    "content-security-policy": "default-src 'none'; sandbox",
}


@pytest.fixture
def quarantined(ingest: FakeIngest) -> FakeIngest:
    ingest.entries = [ENTRY]
    ingest.files["quarantine-0123abc"] = Download(b"Subject: broken\r\n\r\n", RAW_HEADERS)
    return ingest


@pytest.fixture
def admin(client: TestClient) -> TestClient:
    assert sign_in(client).status_code == 303
    return client


@pytest.fixture
def agent(client: TestClient, users: FakeUsers, passwords: Passwords) -> TestClient:
    add_user(users, passwords, "bea@localhost", PHRASE, "agent")
    assert sign_in(client, email="bea@localhost", password=PHRASE).status_code == 303
    return client


def test_an_admin_sees_the_quarantine_with_reason_size_mailboxes_and_actions(
    admin: TestClient, quarantined: FakeIngest
) -> None:
    page = admin.get("/admin/quarantine")

    assert page.status_code == 200
    text = page.text
    assert "2025-03-04 09:30 UTC" in text
    assert "3.0 KB" in text
    assert "support@example.com, billing@example.com" in text
    assert "no From address" in text
    assert 'href="/admin/quarantine/quarantine-0123abc/raw"' in text
    assert 'action="/admin/quarantine/quarantine-0123abc/reprocess"' in text
    assert page.headers["cache-control"] == "no-store"


def test_the_header_links_to_the_admin_area_for_admins(admin: TestClient) -> None:
    assert 'href="/admin"' in admin.get("/tickets").text


def test_an_agent_sees_no_quarantine_link_and_gets_403_without_ingest_being_asked(
    agent: TestClient, quarantined: FakeIngest
) -> None:
    assert 'href="/admin"' not in agent.get("/tickets").text
    for path in ("/admin/quarantine", "/admin/quarantine/quarantine-0123abc/raw"):
        response = agent.get(path)
        assert response.status_code == 403, path
        assert "no From address" not in response.text
    assert quarantined.calls == []


def test_a_customer_is_sent_from_the_quarantine_to_their_portal(
    client: TestClient, users: FakeUsers, passwords: Passwords, quarantined: FakeIngest
) -> None:
    add_user(users, passwords, "alice@example.com", PHRASE, "customer")
    sign_in(client, email="alice@example.com", password=PHRASE)

    response = client.get("/admin/quarantine")

    assert response.status_code == 303
    assert response.headers["location"] == "/my/tickets"
    assert quarantined.calls == []


def test_a_visitor_not_signed_in_is_sent_to_sign_in(client: TestClient, quarantined: FakeIngest) -> None:
    response = client.get("/admin/quarantine")

    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Fadmin%2Fquarantine"
    assert quarantined.calls == []


def test_an_admin_downloads_the_raw_message_with_ingests_download_headers(
    admin: TestClient, quarantined: FakeIngest
) -> None:
    response = admin.get("/admin/quarantine/quarantine-0123abc/raw")

    disposition = RAW_HEADERS["content-disposition"]
    assert_download(response, body=b"Subject: broken\r\n\r\n", content_type="message/rfc822", disposition=disposition)
    assert admin.get("/admin/quarantine/nope/raw").status_code == 404


def reprocess(client: TestClient, quarantine_id: str = "quarantine-0123abc"):  # noqa: ANN201
    token = csrf_of(client.get("/admin/quarantine").text)
    return client.post(f"/admin/quarantine/{quarantine_id}/reprocess", data={"csrf_token": token})


@pytest.mark.parametrize(
    ("result", "message"),
    [
        (Reprocessed("accepted"), "was read and handed on"),
        (Reprocessed("duplicate"), "was read, but it had arrived before: nothing new was made"),
        (Reprocessed("unreadable", "no From address"), "is still unreadable: no From address"),
    ],
)
def test_reprocessing_asks_ingest_and_says_what_happened(
    admin: TestClient, quarantined: FakeIngest, result: Reprocessed, message: str
) -> None:
    quarantined.outcomes["quarantine-0123abc"] = result

    response = reprocess(admin)

    assert response.status_code == 303
    assert ("reprocess", "quarantine-0123abc") in quarantined.calls
    page = admin.get(response.headers["location"]).text
    assert f"Message quarantine-0123abc {message}" in page


def test_reprocessing_an_unknown_entry_says_so(admin: TestClient, quarantined: FakeIngest) -> None:
    response = reprocess(admin, "gone-entry")

    assert "There is no quarantined message gone-entry." in admin.get(response.headers["location"]).text


def test_the_notice_takes_the_reason_from_ingest_not_from_the_link(admin: TestClient, quarantined: FakeIngest) -> None:
    page = admin.get("/admin/quarantine", params={"id": "quarantine-0123abc", "outcome": "Call 555-0100 now"}).text

    assert "555-0100" not in page
    assert 'role="status"' not in page


def test_a_reprocess_without_a_valid_csrf_token_is_refused_and_ingest_not_asked(
    admin: TestClient, quarantined: FakeIngest
) -> None:
    quarantined.outcomes["quarantine-0123abc"] = Reprocessed("accepted")

    for data in ({}, {"csrf_token": "forged"}):
        response = admin.post("/admin/quarantine/quarantine-0123abc/reprocess", data=data)
        assert response.status_code == 403
        assert "Form expired" in response.text
    assert ("reprocess", "quarantine-0123abc") not in quarantined.calls


def test_an_agent_with_a_valid_form_token_still_may_not_reprocess(agent: TestClient, quarantined: FakeIngest) -> None:
    quarantined.outcomes["quarantine-0123abc"] = Reprocessed("accepted")
    token = csrf_of(agent.get("/tickets").text)

    response = agent.post("/admin/quarantine/quarantine-0123abc/reprocess", data={"csrf_token": token})

    assert response.status_code == 403
    assert quarantined.calls == []


def test_an_unreachable_ingest_shows_a_502_page(admin: TestClient, quarantined: FakeIngest) -> None:
    quarantined.down = True

    response = admin.get("/admin/quarantine")

    assert response.status_code == 502
    assert "Ingest unavailable" in response.text
