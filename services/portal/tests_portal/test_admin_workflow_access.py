"""Only admins open the workflow admin pages: every route refuses agents and light agents, sends customers away,
and refuses a form without the CSRF token, before any service is asked."""

from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from portal.security import Passwords

from .conftest import PHRASE, add_user, csrf_of, sign_in
from .fakes import FakeTickets, FakeTriggers, FakeUsers

PAGES = [
    "/admin/types",
    "/admin/types/new",
    "/admin/types/fault",
    "/admin/types/fault/delete",
    "/admin/fields",
    "/admin/automations",
    "/admin/automations/new",
    "/admin/automations/vip-first",
    "/admin/automations/vip-first/delete",
    "/admin/sla",
    "/admin/sla/new",
    "/admin/sla/fast",
    "/admin/sla/fast/delete",
    "/admin/business-hours",
    "/admin/business-hours/new",
    "/admin/business-hours/office",
    "/admin/business-hours/office/delete",
]
FORMS = [
    "/admin/types/save",
    "/admin/types/fault/delete",
    "/admin/fields",
    "/admin/automations/save",
    "/admin/automations/vip-first/active",
    "/admin/automations/vip-first/delete",
    "/admin/sla/save",
    "/admin/sla/fast/delete",
    "/admin/business-hours/save",
    "/admin/business-hours/office/delete",
]
AREA = ("/admin/types", "/admin/fields", "/admin/automations", "/admin/sla", "/admin/business-hours")


def _concrete(path: str) -> str:
    return (
        path.replace("{key}", "fault")
        .replace("{rule_id}", "vip-first")
        .replace("{policy_id}", "fast")
        .replace("{calendar_id}", "office")
    )


def _routes(routes: Iterable[Any]) -> Iterator[Any]:
    # FastAPI keeps an included router as one entry that holds it (newer versions) or copies its routes.
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _routes(inner.routes)
        elif hasattr(route, "methods"):
            yield route


def test_the_lists_name_every_route_of_the_area(client: TestClient) -> None:
    routes = {
        (method, _concrete(route.path))
        for route in _routes(client.app.routes)  # type: ignore[attr-defined]
        if route.path.startswith(AREA)
        for method in route.methods
    }

    assert routes == {("GET", p) for p in PAGES} | {("POST", p) for p in FORMS}


@pytest.mark.parametrize("role", ["agent", "light_agent"])
def test_staff_who_are_not_admins_are_refused_on_every_page_and_form(
    client: TestClient,
    users: FakeUsers,
    passwords: Passwords,
    tickets: FakeTickets,
    triggers: FakeTriggers,
    role: str,
) -> None:
    add_user(users, passwords, f"{role}@example.com", PHRASE, role)  # type: ignore[arg-type]
    sign_in(client, f"{role}@example.com", PHRASE)
    token = csrf_of(client.get("/me").text)

    for path in PAGES:
        page = client.get(path)
        assert page.status_code == 403, path
        assert "Only admins may open this page." in page.text
    for path in FORMS:
        response = client.post(path, data={"csrf_token": token, "version": "1", "active": "true", "name": "x"})
        assert response.status_code == 403, path
        assert "Only admins may open this page." in response.text

    assert tickets.api.calls == []
    assert triggers.api.calls == []


def test_customers_are_sent_to_their_own_portal_from_every_page_and_form(
    client: TestClient, users: FakeUsers, passwords: Passwords, tickets: FakeTickets, triggers: FakeTriggers
) -> None:
    add_user(users, passwords, "kund@example.com", PHRASE, "customer")
    sign_in(client, "kund@example.com", PHRASE)
    token = csrf_of(client.get("/me").text)

    for path in PAGES:
        page = client.get(path)
        assert (page.status_code, page.headers.get("location")) == (303, "/my/tickets"), path
    for path in FORMS:
        response = client.post(path, data={"csrf_token": token, "version": "1", "active": "true"})
        assert (response.status_code, response.headers.get("location")) == (303, "/my/tickets"), path

    assert tickets.api.calls == []
    assert triggers.api.calls == []


def test_visitors_who_are_not_signed_in_are_sent_to_sign_in(client: TestClient) -> None:
    for path in PAGES:
        response = client.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login?next=")


def test_an_admins_form_without_the_csrf_token_is_refused(
    client: TestClient, tickets: FakeTickets, triggers: FakeTriggers
) -> None:
    sign_in(client)

    for path in FORMS:
        response = client.post(path, data={"version": "1", "active": "true", "name": "x"})
        assert response.status_code == 403, path
        assert "This form has expired" in response.text
        wrong = client.post(path, data={"csrf_token": "forged", "version": "1", "active": "true"})
        assert wrong.status_code == 403, path

    assert tickets.api.calls == []
    assert triggers.api.calls == []
