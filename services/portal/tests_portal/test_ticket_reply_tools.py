"""The reply editor's helpers: reply templates and snippets (and their admin page), confirm before send, folding."""

import asyncio
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from markupsafe import Markup
from portal.app import create_app
from portal.security import Passwords
from portal.settings import Settings
from portal.site_settings import MemorySiteSettings, SiteSettings
from portal.snippets import MemorySnippets, Snippet, fill
from portal.workspace_ticket import fold_html_quotes, quote_parts

from .conftest import PHRASE, add_user, csrf_of, hidden_fields, sign_in
from .fakes import FakeIngest, FakeService, FakeTickets, FakeTriggers, FakeUsers, ticket

GREETING = Snippet(
    key="greeting",
    name="Greeting",
    kind="template",
    text="Hi {customer.name},\n\nAbout #{ticket.number} ({ticket.title}): fixed.\n\n{agent.name} {unknown}",
)
THANKS = Snippet(key="thanks", name="Thanks", kind="snippet", text="Thank you for your patience.")


@pytest.fixture
def snippets() -> MemorySnippets:
    return MemorySnippets([GREETING, THANKS])


@pytest.fixture
def site() -> MemorySiteSettings:
    return MemorySiteSettings()


@pytest.fixture
def app_client(
    settings: Settings,
    users: FakeUsers,
    tickets: FakeTickets,
    passwords: Passwords,
    snippets: MemorySnippets,
    site: MemorySiteSettings,
) -> Iterator[TestClient]:
    app = create_app(
        settings,
        users=users,
        tickets=tickets,
        ingest=FakeIngest(),
        triggers=FakeTriggers(),
        passwords=passwords,
        services={"notify": FakeService("notify"), "snippets": snippets, "site_settings": site},
    )
    yield TestClient(app, follow_redirects=False)
    asyncio.run(app.state.runtime.mongo.close())


@pytest.fixture
def agent(app_client: TestClient, users: FakeUsers, passwords: Passwords) -> TestClient:
    add_user(users, passwords, "bea@localhost", PHRASE, "agent", name="Bea Berg")
    assert sign_in(app_client, email="bea@localhost", password=PHRASE).status_code == 303
    return app_client


def test_placeholders_are_filled_and_unknown_braces_stay() -> None:
    values = {"ticket.number": "1", "ticket.title": "T", "customer.name": "Alice", "agent.name": "Bea"}

    assert fill(GREETING.text, values) == "Hi Alice,\n\nAbout #1 (T): fixed.\n\nBea {unknown}"


def test_the_reply_form_lists_templates_and_snippets_with_their_filled_text(agent: TestClient) -> None:
    page = agent.get("/tickets/1").text

    assert 'id="snippet-pick"' in page and 'id="snippet-insert"' in page
    assert 'data-text="Hi Alice Andersson,&#10;' in page or 'data-text="Hi Alice Andersson,\n' in page
    assert 'value="thanks" data-kind="snippet" data-text="Thank you for your patience."' in page


def test_picking_a_template_without_javascript_fills_the_draft_escaped(agent: TestClient, tickets: FakeTickets) -> None:
    tickets.tickets[1]["title"] = "<script>alert(1)</script>"

    page = agent.get("/tickets/1", params={"template": "greeting"}).text

    draft = page[page.index('<textarea id="reply-text"') : page.index("</textarea>")]
    assert "Hi Alice Andersson," in draft and "Bea Berg {unknown}" in draft
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in draft
    assert "<script>alert(1)" not in page


def test_confirm_before_send_is_on_the_reply_form_only_when_set(agent: TestClient, site: MemorySiteSettings) -> None:
    assert "data-confirm" not in agent.get("/tickets/1").text

    site.settings = SiteSettings(confirm_before_send=True)

    form = agent.get("/tickets/1").text
    confirm = 'data-confirm="Send this public reply to the customer?"'
    assert f'id="reply-form" enctype="multipart/form-data" {confirm}' in form


def test_an_admin_adds_edits_and_deletes_a_snippet(app_client: TestClient, snippets: MemorySnippets) -> None:
    sign_in(app_client)
    page = app_client.get("/admin/snippets").text
    assert "Greeting" in page and "Thanks" in page
    csrf = csrf_of(page)

    added = app_client.post(
        "/admin/snippets",
        data={
            "csrf_token": csrf,
            "key": "bye",
            "name": "Goodbye",
            "kind": "snippet",
            "language": "sv",
            "text": "Hej då!",
        },
    )
    assert added.status_code == 303
    assert snippets.by_key["bye"] == Snippet(key="bye", name="Goodbye", kind="snippet", text="Hej då!", language="sv")

    edit = app_client.get("/admin/snippets", params={"edit": "bye"}).text
    assert 'value="Goodbye"' in edit and "Hej då!</textarea>" in edit
    app_client.post(
        "/admin/snippets",
        data={"csrf_token": csrf, "key": "bye", "name": "Goodbye", "kind": "snippet", "text": "Hej så länge!"},
    )
    assert snippets.by_key["bye"].text == "Hej så länge!"

    deleted = app_client.post("/admin/snippets/bye/delete", data=hidden_fields(edit, "/admin/snippets/bye/delete"))
    assert deleted.status_code == 303 and "bye" not in snippets.by_key


def test_a_snippet_with_a_bad_key_is_refused_and_what_was_typed_is_kept(
    app_client: TestClient, snippets: MemorySnippets
) -> None:
    sign_in(app_client)
    csrf = csrf_of(app_client.get("/admin/snippets").text)

    response = app_client.post(
        "/admin/snippets", data={"csrf_token": csrf, "key": "Bad Key!", "name": "N", "kind": "snippet", "text": "T"}
    )

    assert response.status_code == 422
    assert 'id="snippet-error"' in response.text and 'value="Bad Key!"' in response.text
    assert set(snippets.by_key) == {"greeting", "thanks"}


def test_snippets_admin_is_for_admins_only(agent: TestClient, snippets: MemorySnippets) -> None:
    assert agent.get("/admin/snippets").status_code == 403
    csrf = csrf_of(agent.get("/tickets/1").text)
    refused = agent.post(
        "/admin/snippets", data={"csrf_token": csrf, "key": "x", "name": "X", "kind": "snippet", "text": "x"}
    )
    assert refused.status_code == 403
    assert agent.post("/admin/snippets/thanks/delete", data={"csrf_token": csrf}).status_code == 403
    assert set(snippets.by_key) == {"greeting", "thanks"}


def test_snippet_changes_need_the_csrf_token(app_client: TestClient, snippets: MemorySnippets) -> None:
    sign_in(app_client)

    assert app_client.post("/admin/snippets/thanks/delete").status_code == 403
    assert "thanks" in snippets.by_key


def test_quoted_lines_and_their_attribution_are_one_folded_part() -> None:
    text = "Yes, done.\n\nOn Tue, 4 Mar 2025, Bea wrote:\n> Did you restart it?\n>\n> Bea\n\nThanks!"

    assert quote_parts(text) == [
        (False, "Yes, done."),
        (True, "On Tue, 4 Mar 2025, Bea wrote:\n> Did you restart it?\n>\n> Bea"),
        (False, "Thanks!"),
    ]
    assert quote_parts("No quotes here.") == [(False, "No quotes here.")]


def test_html_blockquotes_are_folded_after_sanitising(agent: TestClient, tickets: FakeTickets) -> None:
    html = "<p>Done.</p><div><blockquote>Old <blockquote>older</blockquote> mail</blockquote></div><p>Bye</p>"
    tickets.tickets[1] = ticket(
        1, comments=[{**ticket()["comments"][0], "html": html + "<script>x()</script>", "text": "Done."}]
    )

    page = agent.get("/tickets/1").text

    assert (
        '<details class="quoted"><summary>Show quoted text</summary>'
        "<blockquote>Old <blockquote>older</blockquote> mail</blockquote></details>"
    ) in page
    assert "x()" not in page
    assert str(fold_html_quotes(Markup("<p>a &lt;blockquote&gt;</p>"), "S")) == "<p>a &lt;blockquote&gt;</p>"


def test_folding_escapes_text_that_is_not_sanitised_markup() -> None:
    folded = str(fold_html_quotes("<blockquote><script>x</script></blockquote>", "S"))  # type: ignore[arg-type]

    assert "<script>" not in folded and "<blockquote>" not in folded
