"""Admin pages for people: the admin home, users (create, edit, disable, reset password) and groups."""

import asyncio
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from portal.admin_people import Group, MemoryGroups
from portal.app import create_app
from portal.security import Passwords
from portal.settings import Settings
from portal.site_settings import MemorySiteSettings

from .conftest import ADMIN_EMAIL, ADMIN_PASSWORD, PHRASE, add_user, csrf_of, sign_in
from .fakes import FakeIngest, FakeService, FakeTickets, FakeTriggers, FakeUsers

AGENT_EMAIL = "bo@example.com"
LIGHT_EMAIL = "li@example.com"
CUSTOMER_EMAIL = "kund@example.se"


@dataclass
class Admin:
    """An app with fakes for everything the admin pages talk to, and its client."""

    client: TestClient
    users: FakeUsers
    tickets: FakeTickets
    notify: FakeService
    groups: MemoryGroups
    site: MemorySiteSettings

    def csrf(self, path: str = "/admin") -> str:
        return csrf_of(self.client.get(path).text)

    def post(self, path: str, data: dict[str, Any] | None = None, *, csrf: bool = True) -> Any:
        form = dict(data or {})
        if csrf:
            form["csrf_token"] = self.csrf()
        return self.client.post(path, data=form)

    def user(self, email: str) -> Any:
        return next(u for u in self.users.by_id_.values() if u.email == email)


def build_admin(settings: Settings, users: FakeUsers, passwords: Passwords) -> Iterator[Admin]:
    """Yield an `Admin` whose services are fakes; nobody signed in yet."""
    tickets, notify = FakeTickets(), FakeService("notify")
    groups = MemoryGroups([Group("support", "Support", "First line"), Group("billing", "Billing")])
    site = MemorySiteSettings()
    app = create_app(
        settings,
        users=users,
        tickets=tickets,
        ingest=FakeIngest(),
        triggers=FakeTriggers(),
        passwords=passwords,
        services={"notify": notify, "groups": groups, "site_settings": site},
    )
    yield Admin(TestClient(app, follow_redirects=False), users, tickets, notify, groups, site)
    asyncio.run(app.state.runtime.mongo.close())


@pytest.fixture
def admin(settings: Settings, users: FakeUsers, passwords: Passwords) -> Iterator[Admin]:
    add_user(users, passwords, AGENT_EMAIL, PHRASE, "agent", name="Bo Berg", groups=("support",))
    add_user(users, passwords, LIGHT_EMAIL, PHRASE, "light_agent", name="Li Lund")
    add_user(users, passwords, CUSTOMER_EMAIL, PHRASE, "customer", name="Kund")
    for found in build_admin(settings, users, passwords):
        assert sign_in(found.client).status_code == 303
        yield found


# The admin home.


def test_the_admin_home_links_to_every_admin_page(admin: Admin) -> None:
    page = admin.client.get("/admin")
    assert page.status_code == 200
    for key, url in {
        "users": "/admin/users",
        "groups": "/admin/groups",
        "mailboxes": "/admin/mailboxes",
        "types": "/admin/types",
        "fields": "/admin/fields",
        "templates": "/admin/templates",
        "snippets": "/admin/snippets",
        "signatures": "/admin/signatures",
        "automations": "/admin/automations",
        "sla": "/admin/sla",
        "business-hours": "/admin/business-hours",
        "settings": "/admin/settings",
        "quarantine": "/admin/quarantine",
        "stats": "/stats",
    }.items():
        assert f'href="{url}" id="admin-link-{key}"' in page.text


def test_the_admin_home_speaks_swedish_to_a_swedish_admin(admin: Admin) -> None:
    me = admin.user(ADMIN_EMAIL)
    asyncio.run(admin.users.set_language(me.id, "sv"))
    page = admin.client.get("/admin")
    assert "Användare" in page.text and "Brevlådor" in page.text


# Users.


def test_the_user_list_searches_by_name_or_email_and_filters_by_role(admin: Admin) -> None:
    everyone = admin.client.get("/admin/users")
    assert all(email in everyone.text for email in (ADMIN_EMAIL, AGENT_EMAIL, LIGHT_EMAIL, CUSTOMER_EMAIL))
    by_name = admin.client.get("/admin/users", params={"q": "berg"})
    assert AGENT_EMAIL in by_name.text and LIGHT_EMAIL not in by_name.text
    customers = admin.client.get("/admin/users", params={"role": "customer"})
    assert CUSTOMER_EMAIL in customers.text and AGENT_EMAIL not in customers.text


def test_creating_a_user_shows_the_generated_password_once_and_it_signs_in(admin: Admin) -> None:
    form = {"email": " New@Example.com ", "name": "Nina New", "role": "agent", "groups": ["billing"], "language": "sv"}
    created = admin.post("/admin/users", form)
    assert created.status_code == 200
    password = re.search(r'id="new-password">([^<]+)<', created.text)
    assert password, "the generated password is shown"
    nina = admin.user("new@example.com")
    assert (nina.name, nina.role, nina.groups, nina.language) == ("Nina New", "agent", ("billing",), "sv")
    assert password.group(1) not in admin.client.get(f"/admin/users/{nina.id}").text
    other = TestClient(admin.client.app, follow_redirects=False)
    assert sign_in(other, "new@example.com", password.group(1)).status_code == 303


def test_an_admin_may_type_the_password_of_a_new_user_but_not_a_short_one(admin: Admin) -> None:
    short = admin.post("/admin/users", {"email": "s@example.com", "role": "agent", "password": "too short"})
    assert short.status_code == 422
    assert "At least 12 characters" in short.text
    assert not any(u.email == "s@example.com" for u in admin.users.by_id_.values())
    typed = admin.post("/admin/users", {"email": "s@example.com", "role": "agent", "password": "a typed long password"})
    assert typed.status_code == 200 and 'id="new-password"' not in typed.text
    other = TestClient(admin.client.app, follow_redirects=False)
    assert sign_in(other, "s@example.com", "a typed long password").status_code == 303


def test_a_taken_email_is_refused_and_the_form_keeps_what_was_typed(admin: Admin) -> None:
    page = admin.post("/admin/users", {"email": AGENT_EMAIL, "name": "Second Bo", "role": "agent"})
    assert page.status_code == 409
    assert "exists already" in page.text and 'value="Second Bo"' in page.text


def test_a_customer_gets_an_organisation_and_no_groups(admin: Admin) -> None:
    grouped = admin.post("/admin/users", {"email": "c@example.com", "role": "customer", "groups": ["support"]})
    assert grouped.status_code == 422 and "Customers are in no group" in grouped.text
    made = admin.post("/admin/users", {"email": "c@example.com", "role": "customer", "organisation": "Acme AB"})
    assert made.status_code == 200
    assert admin.user("c@example.com").organisation == "Acme AB"


def test_a_group_outside_the_registry_is_refused(admin: Admin) -> None:
    page = admin.post("/admin/users", {"email": "x@example.com", "role": "agent", "groups": ["nonsense"]})
    assert page.status_code == 422
    assert not any(u.email == "x@example.com" for u in admin.users.by_id_.values())


def test_a_name_with_markup_is_shown_as_text(admin: Admin) -> None:
    admin.post("/admin/users", {"email": "evil@example.com", "name": "<script>alert(1)</script>", "role": "agent"})
    listing = admin.client.get("/admin/users")
    assert "<script>alert(1)</script>" not in listing.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in listing.text


def test_changing_a_role_and_groups_saves_them_and_signs_the_user_out(admin: Admin) -> None:
    bo = admin.user(AGENT_EMAIL)
    theirs = TestClient(admin.client.app, follow_redirects=False)
    sign_in(theirs, AGENT_EMAIL, PHRASE)
    assert theirs.get("/tickets").status_code == 200
    saved = admin.post(f"/admin/users/{bo.id}", {"name": "Bo B.", "role": "light_agent", "groups": ["billing"]})
    assert saved.status_code == 303 and saved.headers["location"] == f"/admin/users/{bo.id}?done=saved"
    bo = admin.user(AGENT_EMAIL)
    assert (bo.name, bo.role, bo.groups) == ("Bo B.", "light_agent", ("billing",))
    assert theirs.get("/tickets").status_code == 303  # their session ended


def test_a_new_name_alone_keeps_the_user_signed_in(admin: Admin) -> None:
    bo = admin.user(AGENT_EMAIL)
    theirs = TestClient(admin.client.app, follow_redirects=False)
    sign_in(theirs, AGENT_EMAIL, PHRASE)
    admin.post(f"/admin/users/{bo.id}", {"name": "Bo Bergström", "role": "agent", "groups": ["support"]})
    assert admin.user(AGENT_EMAIL).name == "Bo Bergström"
    assert theirs.get("/tickets").status_code == 200


def test_disabling_a_user_signs_them_out_and_enabling_lets_them_back(admin: Admin) -> None:
    bo = admin.user(AGENT_EMAIL)
    theirs = TestClient(admin.client.app, follow_redirects=False)
    sign_in(theirs, AGENT_EMAIL, PHRASE)
    assert admin.post(f"/admin/users/{bo.id}/disable").status_code == 303
    assert admin.user(AGENT_EMAIL).disabled
    assert theirs.get("/tickets").status_code == 303
    assert sign_in(theirs, AGENT_EMAIL, PHRASE).status_code == 401
    assert admin.post(f"/admin/users/{bo.id}/enable").status_code == 303
    assert sign_in(theirs, AGENT_EMAIL, PHRASE).status_code == 303


def test_resetting_a_password_shows_a_new_one_once_and_the_old_one_stops_working(admin: Admin) -> None:
    bo = admin.user(AGENT_EMAIL)
    page = admin.post(f"/admin/users/{bo.id}/password")
    assert page.status_code == 200
    password = re.search(r'id="new-password">([^<]+)<', page.text)
    assert password
    theirs = TestClient(admin.client.app, follow_redirects=False)
    assert sign_in(theirs, AGENT_EMAIL, PHRASE).status_code == 401
    assert sign_in(theirs, AGENT_EMAIL, password.group(1)).status_code == 303


def test_the_last_active_admin_can_be_neither_disabled_nor_demoted(admin: Admin) -> None:
    me = admin.user(ADMIN_EMAIL)
    disabled = admin.post(f"/admin/users/{me.id}/disable")
    assert disabled.status_code == 409 and "last active admin" in disabled.text
    demoted = admin.post(f"/admin/users/{me.id}", {"name": "Ada", "role": "agent"})
    assert demoted.status_code == 409 and "last active admin" in demoted.text
    assert admin.user(ADMIN_EMAIL).role == "admin" and not admin.user(ADMIN_EMAIL).disabled


def test_an_admin_may_be_demoted_once_there_is_another(admin: Admin) -> None:
    bo = admin.user(AGENT_EMAIL)
    admin.post(f"/admin/users/{bo.id}", {"name": "Bo", "role": "admin"})
    me = admin.user(ADMIN_EMAIL)
    assert admin.post(f"/admin/users/{me.id}/disable").status_code == 303
    assert admin.user(ADMIN_EMAIL).disabled


def test_an_unknown_user_is_a_404(admin: Admin) -> None:
    assert admin.client.get("/admin/users/no-such-id").status_code == 404
    assert admin.post("/admin/users/no-such-id/disable").status_code == 404


# Groups.


def test_groups_are_listed_with_their_member_counts(admin: Admin) -> None:
    page = admin.client.get("/admin/groups")
    row = re.search(r'<tr id="group-support">(.*?)</tr>', page.text, re.S)
    assert row and "Support" in row.group(1) and "<td>1</td>" in row.group(1)


def test_an_admin_adds_edits_and_deletes_a_group(admin: Admin) -> None:
    added = admin.post("/admin/groups", {"key": "sales", "name": "Sales", "description": "New business"})
    assert added.status_code == 303
    assert asyncio.run(admin.groups.get("sales")) == Group("sales", "Sales", "New business")
    saved = admin.post("/admin/groups/sales", {"name": "Sales team", "description": ""})
    assert saved.status_code == 303
    assert asyncio.run(admin.groups.get("sales")) == Group("sales", "Sales team", "")
    assert admin.post("/admin/groups/sales/delete").status_code == 303
    assert asyncio.run(admin.groups.get("sales")) is None


def test_a_group_key_must_be_new_and_well_formed(admin: Admin) -> None:
    taken = admin.post("/admin/groups", {"key": "support", "name": "Again"})
    assert taken.status_code == 422 and "exists already" in taken.text
    bad = admin.post("/admin/groups", {"key": "Bad Key!", "name": "Bad"})
    assert bad.status_code == 422 and "lower-case" in bad.text


def test_a_group_with_members_is_not_deleted_and_the_page_says_who(admin: Admin) -> None:
    page = admin.post("/admin/groups/support/delete")
    assert page.status_code == 409
    assert "Bo Berg" in page.text
    assert asyncio.run(admin.groups.get("support")) is not None


# Who may open the admin pages.

ADMIN_GETS = [
    "/admin",
    "/admin/users",
    "/admin/users/new",
    "/admin/users/{id}",
    "/admin/groups",
    "/admin/groups/support",
    "/admin/mailboxes",
    "/admin/mailboxes/support@example.com",
    "/admin/templates",
    "/admin/templates/new?key=x&language=en",
    "/admin/templates/agent_reply/en",
    "/admin/signatures",
    "/admin/settings",
]
ADMIN_POSTS = [
    "/admin/users",
    "/admin/users/{id}",
    "/admin/users/{id}/disable",
    "/admin/users/{id}/enable",
    "/admin/users/{id}/password",
    "/admin/groups",
    "/admin/groups/support",
    "/admin/groups/support/delete",
    "/admin/mailboxes",
    "/admin/mailboxes/support@example.com",
    "/admin/mailboxes/support@example.com/delete",
    "/admin/templates/agent_reply/en",
    "/admin/signatures",
    "/admin/signatures/delete",
    "/admin/settings/mail",
    "/admin/settings/workspace",
    "/admin/settings/tickets",
]


@pytest.fixture
def visitor(settings: Settings, users: FakeUsers, passwords: Passwords) -> Iterator[Admin]:
    """The same app with nobody signed in (tests sign in whom they need)."""
    add_user(users, passwords, AGENT_EMAIL, PHRASE, "agent", name="Bo Berg", groups=("support",))
    add_user(users, passwords, LIGHT_EMAIL, PHRASE, "light_agent", name="Li Lund")
    add_user(users, passwords, CUSTOMER_EMAIL, PHRASE, "customer", name="Kund")
    yield from build_admin(settings, users, passwords)


@pytest.mark.parametrize("email", [AGENT_EMAIL, LIGHT_EMAIL])
def test_agents_and_light_agents_are_refused_every_admin_page_and_form(visitor: Admin, email: str) -> None:
    sign_in(visitor.client, email, PHRASE)
    target = visitor.user(AGENT_EMAIL).id
    token = csrf_of(visitor.client.get("/me").text)
    for path in ADMIN_GETS:
        assert visitor.client.get(path.format(id=target)).status_code == 403, path
    for path in ADMIN_POSTS:
        form = {"csrf_token": token, "role": "admin", "name": "x", "key": "x", "scope": "general", "text": "x"}
        assert visitor.client.post(path.format(id=target), data=form).status_code == 403, path
    assert visitor.user(AGENT_EMAIL).role == "agent" and not visitor.user(AGENT_EMAIL).disabled
    assert visitor.tickets.api.calls == [] and visitor.notify.calls == []


def test_customers_are_sent_to_their_portal_from_every_admin_page(visitor: Admin) -> None:
    sign_in(visitor.client, CUSTOMER_EMAIL, PHRASE)
    target = visitor.user(AGENT_EMAIL).id
    token = csrf_of(visitor.client.get("/me").text)
    for path in ADMIN_GETS:
        response = visitor.client.get(path.format(id=target))
        assert (response.status_code, response.headers.get("location")) == (303, "/my/tickets"), path
    for path in ADMIN_POSTS:
        response = visitor.client.post(path.format(id=target), data={"csrf_token": token, "role": "admin"})
        assert (response.status_code, response.headers.get("location")) == (303, "/my/tickets"), path
    assert visitor.user(AGENT_EMAIL).role == "agent" and not visitor.user(AGENT_EMAIL).disabled


def test_visitors_who_are_not_signed_in_are_sent_to_sign_in(visitor: Admin) -> None:
    target = visitor.user(AGENT_EMAIL).id
    for path in ADMIN_GETS:
        response = visitor.client.get(path.format(id=target))
        assert response.status_code == 303 and response.headers["location"].startswith("/login"), path


def test_every_admin_form_without_the_csrf_token_is_refused(admin: Admin) -> None:
    target = admin.user(AGENT_EMAIL).id
    for path in ADMIN_POSTS:
        response = admin.client.post(path.format(id=target), data={"role": "customer", "name": "x", "scope": "general"})
        assert response.status_code == 403, path
    assert admin.user(AGENT_EMAIL).role == "agent" and not admin.user(AGENT_EMAIL).disabled
    assert [c for c in admin.tickets.api.calls if c[0] != "GET"] == []
    assert [c for c in admin.notify.calls if c[0] != "GET"] == []


def test_the_admin_pages_load_for_an_admin(admin: Admin) -> None:
    assert admin.client.get("/admin/users/new").status_code == 200
    assert admin.client.get(f"/admin/users/{admin.user(AGENT_EMAIL).id}").status_code == 200
    assert admin.client.get("/admin/groups/support").status_code == 200
    assert ADMIN_PASSWORD not in admin.client.get("/admin/users").text
