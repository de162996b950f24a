"""Saved personal views: saved from the current filters, shown as tabs to their owner only, deleted by them."""

# ruff: noqa: F811 - the fixtures of test_lists_queues are imported, and tests name them as parameters

import html
import re
from typing import Any

from fastapi.testclient import TestClient
from portal.saved_views import MAX_VIEWS_PER_USER, MemorySavedViews
from portal.security import Passwords

from .conftest import PHRASE, add_user, csrf_of, hidden_fields, sign_in
from .fakes import FakeTickets, FakeUsers
from .test_lists_queues import admin, app_client, notify, saved_views  # noqa: F401 - fixtures

FILTERED = {"view": "all", "status": "open", "priority": "high", "handler": "me", "order": "oldest"}


def save_form(page: str) -> dict[str, str]:
    return {k: html.unescape(v) for k, v in hidden_fields(page, "/views").items()}


def save_current(client: TestClient, name: str, params: dict[str, str] = FILTERED) -> Any:
    page = client.get("/tickets", params=params).text
    return client.post("/views", data={**save_form(page), "name": name})


def test_an_agent_saves_the_current_filters_as_a_view_that_becomes_a_tab(
    admin: TestClient, saved_views: MemorySavedViews, tickets: FakeTickets
) -> None:
    response = save_current(admin, "  My   urgent ones ")

    assert response.status_code == 303
    (view,) = saved_views.views.values()
    assert view.name == "My urgent ones"
    assert view.query == FILTERED
    assert response.headers["location"] == "/tickets?view=all&status=open&priority=high&handler=me&order=oldest"
    page = admin.get(response.headers["location"]).text
    assert re.search(rf'id="saved-view-{re.escape(view.id)}" class="tab saved current"', page)
    assert tickets.lists[-1]["order"] == "oldest"


def test_another_agent_neither_sees_nor_deletes_a_saved_view(
    app_client: TestClient, users: FakeUsers, passwords: Passwords, saved_views: MemorySavedViews
) -> None:
    add_user(users, passwords, "bea@localhost", PHRASE, "agent")
    add_user(users, passwords, "cy@localhost", PHRASE, "agent")
    sign_in(app_client, "bea@localhost", PHRASE)
    save_current(app_client, "Bea's secret queue")
    (view,) = saved_views.views.values()
    app_client.post("/logout", data={"csrf_token": csrf_of(app_client.get("/tickets").text)})

    sign_in(app_client, "cy@localhost", PHRASE)
    page = app_client.get("/tickets").text
    deleted = app_client.post(f"/views/{view.id}/delete", data={"csrf_token": csrf_of(page)})

    assert "Bea&#39;s secret queue" not in page and "Bea's secret queue" not in page
    assert f"saved-view-{view.id}" not in page
    assert deleted.status_code == 404
    assert view.id in saved_views.views


def test_an_agent_deletes_their_own_saved_view(admin: TestClient, saved_views: MemorySavedViews) -> None:
    save_current(admin, "Temporary")
    (view,) = saved_views.views.values()
    page = admin.get("/tickets", params=view.query).text

    response = admin.post(f"/views/{view.id}/delete", data=hidden_fields(page, f"/views/{view.id}/delete"))

    assert response.status_code == 303
    assert saved_views.views == {}
    assert "saved-view-" not in admin.get("/tickets").text


def test_a_saved_view_with_a_key_outside_the_filters_is_refused(
    admin: TestClient, saved_views: MemorySavedViews
) -> None:
    form = save_form(admin.get("/tickets").text)

    for bad in ({"status[$ne]": "closed"}, {"$where": "1"}, {"requester": "x@example.com"}, {"status": "{'$gt': ''}"}):
        response = admin.post("/views", data={**form, "name": "Sneaky", **bad})
        assert response.status_code == 422, bad
    assert saved_views.views == {}


def test_a_saved_view_needs_a_short_name_and_keeps_what_was_chosen(
    admin: TestClient, saved_views: MemorySavedViews
) -> None:
    form = save_form(admin.get("/tickets", params=FILTERED).text)

    empty = admin.post("/views", data={**form, "name": "   "})
    long = admin.post("/views", data={**form, "name": "x" * 61})

    assert (empty.status_code, long.status_code) == (422, 422)
    assert "at most 60 characters" in long.text
    assert '<option value="oldest" selected>' in long.text
    assert saved_views.views == {}


def test_an_agent_keeps_at_most_thirty_saved_views(admin: TestClient, saved_views: MemorySavedViews) -> None:
    form = save_form(admin.get("/tickets").text)
    for n in range(MAX_VIEWS_PER_USER):
        assert admin.post("/views", data={**form, "name": f"View {n}"}).status_code == 303

    response = admin.post("/views", data={**form, "name": "One too many"})

    assert response.status_code == 409
    assert len(saved_views.views) == MAX_VIEWS_PER_USER


def test_saving_a_view_without_the_csrf_token_is_refused(admin: TestClient, saved_views: MemorySavedViews) -> None:
    response = admin.post("/views", data={"view": "all", "name": "No token"})

    assert response.status_code == 403
    assert saved_views.views == {}
