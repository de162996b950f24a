from typing import Any

import pytest
from fastapi.testclient import TestClient
from portal.ingest_client import Download
from portal.security import Passwords

from .conftest import PHRASE, add_user, assert_download, sign_in
from .fakes import FakeIngest, FakeTickets, FakeUsers, ticket

TOKEN = "k3y-0f-the-customer-link-xyz"
INVOICE = {
    "attachment_id": "raw1:a1",
    "filename": "invoice.pdf",
    "content_type": "application/pdf",
    "size": 2048,
    "content_id": None,
}
LOGO = {
    "attachment_id": "raw1:a2",
    "filename": "logo.png",
    "content_type": "image/png",
    "size": 500,
    "content_id": "logo@mail.example",
}
OTHERS = {"attachment_id": "raw2:a1", "filename": "secret.pdf", "content_type": "application/pdf", "size": 9}
PDF_HEADERS = {
    "content-type": "application/pdf",
    "content-disposition": "attachment; filename=\"invoice.pdf\"; filename*=UTF-8''invoice.pdf",
    "x-content-type-options": "nosniff",
    "content-security-policy": "default-src 'none'; sandbox",
}


@pytest.fixture
def with_files(tickets: FakeTickets, ingest: FakeIngest) -> FakeIngest:
    tickets.tickets[1] = ticket(1, attachments=[INVOICE, LOGO], link_token=TOKEN)
    tickets.tickets[2] = ticket(2, attachments=[OTHERS], link_token="an0ther-customers-link-0123")
    ingest.files = {
        "raw1:a1": Download(b"%PDF-1.7 invoice", PDF_HEADERS),
        "raw1:a2": Download(b"\x89PNG logo", {"content-type": "image/png"}),
        "raw2:a1": Download(b"%PDF-1.7 secret", PDF_HEADERS),
    }
    return ingest


@pytest.fixture
def signed_in(client: TestClient) -> TestClient:
    assert sign_in(client).status_code == 303
    return client


def with_comment(number: int, **fields: Any) -> dict[str, Any]:
    data = ticket(number, attachments=[INVOICE, LOGO], link_token=TOKEN)
    data["comments"][0] |= fields
    return data


# --- the list of files ---------------------------------------------------------------------------------


def test_the_ticket_page_lists_the_attachments_with_size_and_download_link(
    signed_in: TestClient, with_files: FakeIngest
) -> None:
    page = signed_in.get("/tickets/1").text

    assert "<h2>Attachments</h2>" in page
    assert '<a href="/tickets/1/attachments/raw1%3Aa1" download>invoice.pdf</a>' in page
    assert "2.0 KB" in page
    assert "500 bytes" in page
    assert with_files.calls == []  # listing files never fetches them


def test_the_secret_link_page_lists_the_attachments_with_links_under_the_token(
    client: TestClient, with_files: FakeIngest
) -> None:
    page = client.get(f"/t/{TOKEN}").text

    assert f'<a href="/t/{TOKEN}/attachments/raw1%3Aa1" download>invoice.pdf</a>' in page


def test_a_ticket_without_files_shows_no_attachment_list(signed_in: TestClient) -> None:
    assert "Attachments" not in signed_in.get("/tickets/1").text


# --- downloads ------------------------------------------------------------------------------------------


def test_an_agent_downloads_an_attachment_with_the_headers_ingest_chose(
    signed_in: TestClient, with_files: FakeIngest
) -> None:
    response = signed_in.get("/tickets/1/attachments/raw1%3Aa1")

    disposition = PDF_HEADERS["content-disposition"]
    assert_download(response, body=b"%PDF-1.7 invoice", content_type="application/pdf", disposition=disposition)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert with_files.calls == [("attachment", "raw1:a1")]


def test_a_download_without_safety_headers_gets_them_from_the_portal(
    signed_in: TestClient, with_files: FakeIngest
) -> None:
    response = signed_in.get("/tickets/1/attachments/raw1:a2")

    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "private"
    assert response.headers["content-disposition"] == "attachment"


def test_an_attachment_of_another_ticket_is_not_found_and_ingest_is_not_asked(
    signed_in: TestClient, with_files: FakeIngest
) -> None:
    for path in ("/tickets/1/attachments/raw2:a1", "/tickets/1/attachments/raw1:a9"):
        assert signed_in.get(path).status_code == 404, path
    assert with_files.calls == []


def test_an_attachment_of_a_ticket_the_agent_may_not_see_is_not_found(
    signed_in: TestClient, tickets: FakeTickets, with_files: FakeIngest
) -> None:
    del tickets.tickets[2]  # the tickets service answers 404 for a ticket the actor may not see

    assert signed_in.get("/tickets/2/attachments/raw2:a1").status_code == 404
    assert signed_in.get("/tickets/abc/attachments/raw2:a1").status_code == 404
    assert with_files.calls == []


def test_a_customer_signed_in_may_not_download_through_the_agent_route(
    client: TestClient, users: FakeUsers, passwords: Passwords, tickets: FakeTickets, with_files: FakeIngest
) -> None:
    add_user(users, passwords, "mallory@example.com", PHRASE, "customer")
    sign_in(client, email="mallory@example.com", password=PHRASE)

    response = client.get("/tickets/1/attachments/raw1:a1")

    assert response.status_code == 303
    assert response.headers["location"] == "/my/tickets"
    assert tickets.actors == []
    assert with_files.calls == []


def test_a_visitor_not_signed_in_is_sent_to_sign_in_and_gets_no_file(
    client: TestClient, with_files: FakeIngest
) -> None:
    response = client.get("/tickets/1/attachments/raw1:a1")

    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?next=")
    assert with_files.calls == []


def test_a_file_ingest_does_not_have_is_a_404_and_an_unreachable_ingest_a_502(
    signed_in: TestClient, with_files: FakeIngest
) -> None:
    del with_files.files["raw1:a1"]
    assert signed_in.get("/tickets/1/attachments/raw1:a1").status_code == 404

    with_files.down = True
    response = signed_in.get("/tickets/1/attachments/raw1:a2")
    assert response.status_code == 502
    assert "Ingest unavailable" in response.text


def test_the_secret_link_downloads_its_own_tickets_attachment(client: TestClient, with_files: FakeIngest) -> None:
    response = client.get(f"/t/{TOKEN}/attachments/raw1:a1")

    assert response.status_code == 200
    assert response.content == b"%PDF-1.7 invoice"
    assert response.headers["content-disposition"] == PDF_HEADERS["content-disposition"]
    assert response.headers["content-security-policy"] == "default-src 'none'; sandbox"


def test_a_wrong_link_or_another_tickets_attachment_is_not_found_and_ingest_is_not_asked(
    client: TestClient, with_files: FakeIngest
) -> None:
    for path in (
        f"/t/{TOKEN}/attachments/raw2:a1",
        "/t/wrong-token-of-nobody-at-all-0/attachments/raw1:a1",
        "/t/short/attachments/raw1:a1",
    ):
        assert client.get(path).status_code == 404, path
    assert with_files.calls == []


# --- folded quotes --------------------------------------------------------------------------------------

ORIGINAL = "Thanks, it works now.\n\nOn Tue, Bea wrote:\n> Did you restart it?"


@pytest.mark.parametrize("path", ["/tickets/1", f"/t/{TOKEN}"])
def test_the_new_part_of_a_mail_is_shown_and_the_quoted_history_folded(
    signed_in: TestClient, tickets: FakeTickets, path: str
) -> None:
    tickets.tickets[1] = with_comment(1, text=ORIGINAL, text_new="Thanks, it works now.")

    page = signed_in.get(path).text

    new = page.index('<div class="body-text">Thanks, it works now.</div>')
    details = page.index("<details")
    assert new < details
    assert "<summary>Show quoted text</summary>" in page
    assert "&gt; Did you restart it?" in page[details : page.index("</details>")]


def test_the_folded_original_is_the_sanitised_html_when_there_is_some(
    signed_in: TestClient, tickets: FakeTickets
) -> None:
    html = "<p>Thanks, it works now.</p><blockquote>Did you <b>restart</b> it?</blockquote><script>x()</script>"
    tickets.tickets[1] = with_comment(1, text=ORIGINAL, text_new="Thanks, it works now.", html=html)

    page = signed_in.get("/tickets/1").text

    folded = page[page.index("<details") : page.index("</details>")]
    assert "<blockquote>Did you <b>restart</b> it?</blockquote>" in folded
    assert "x()" not in page


@pytest.mark.parametrize("text_new", [None, "", ORIGINAL])
def test_a_mail_without_a_separate_new_part_has_its_quoted_lines_folded_on_the_page(
    signed_in: TestClient, tickets: FakeTickets, text_new: str | None
) -> None:
    # The ticket page folds '>' lines and their "On … wrote:" line itself (workspace_ticket.quote_parts).
    tickets.tickets[1] = with_comment(1, text=ORIGINAL, text_new=text_new)

    page = signed_in.get("/tickets/1").text

    folded = page[page.index("<details") : page.index("</details>")]
    assert '<div class="body-text">Thanks, it works now.</div>' in page[: page.index("<details")]
    assert "On Tue, Bea wrote:\n&gt; Did you restart it?" in folded


# --- inline images --------------------------------------------------------------------------------------

INLINE = (
    '<p>Our logo: <img src="cid:logo@mail.example" alt="logo"></p>'
    '<p><img src="https://tracker.example/pixel.png" alt="pixel"><img src="/logout" alt="local">'
    '<img src="cid:unknown@mail.example" alt="gone"><a href="cid:logo@mail.example">link</a></p>'
)


def test_an_inline_image_shows_the_tickets_attachment_in_place(
    signed_in: TestClient, tickets: FakeTickets, with_files: FakeIngest
) -> None:
    tickets.tickets[1] = with_comment(1, html=INLINE)

    page = signed_in.get("/tickets/1").text

    assert '<img src="/tickets/1/attachments/raw1%3Aa2" alt="logo">' in page
    assert signed_in.get("/tickets/1/attachments/raw1%3Aa2").content == b"\x89PNG logo"


def test_remote_local_and_unknown_image_sources_are_removed(signed_in: TestClient, tickets: FakeTickets) -> None:
    tickets.tickets[1] = with_comment(1, html=INLINE)

    page = signed_in.get("/tickets/1").text

    assert "tracker.example" not in page
    assert "/logout" not in page.split('class="conversation"', 1)[1].split("</section>", 1)[0]
    assert "cid:" not in page
    assert '<img alt="pixel">' in page
    assert '<img alt="gone">' in page


def test_an_inline_image_on_the_secret_link_page_uses_the_link_route(
    client: TestClient, tickets: FakeTickets, with_files: FakeIngest
) -> None:
    tickets.tickets[1] = with_comment(1, html=INLINE)

    page = client.get(f"/t/{TOKEN}").text

    assert f'<img src="/t/{TOKEN}/attachments/raw1%3Aa2" alt="logo">' in page
    assert "tracker.example" not in page


# --- remote images, only when an agent asks -------------------------------------------------------------

REMOTE = (
    '<p>Hi<img data-remote-src="https://track.example/open.gif" alt="logo"><img data-remote-src="javascript:x()"></p>'
)


def test_an_agent_can_ask_to_see_a_messages_remote_images(signed_in: TestClient, tickets: FakeTickets) -> None:
    tickets.tickets[1] = with_comment(1, html=REMOTE)
    response = signed_in.get("/tickets/1")
    page = response.text

    assert 'data-remote-src="https://track.example/open.gif"' in page
    assert 'src="https://track.example' not in page.replace("data-remote-src", "")  # not loaded by itself
    assert "javascript:x()" not in page
    assert "Show remote images" in page and '<script src="/static/remote-images.js" defer></script>' in page
    assert "img-src 'self' data: https: http:" in response.headers["content-security-policy"]
    assert "script-src 'self'" in response.headers["content-security-policy"]


def test_a_customer_never_gets_remote_images_nor_the_button(client: TestClient, tickets: FakeTickets) -> None:
    tickets.tickets[1] = with_comment(1, html=REMOTE)
    response = client.get(f"/t/{TOKEN}")

    assert "track.example" not in response.text and "Show remote images" not in response.text
    assert "img-src 'self' data:;" in response.headers["content-security-policy"]


def test_messages_without_remote_images_get_no_button(signed_in: TestClient, tickets: FakeTickets) -> None:
    tickets.tickets[1] = with_comment(1, html="<p>Hi</p>")
    assert "Show remote images" not in signed_in.get("/tickets/1").text
