"""The notification bell and the notifications page (notify's in-app notifications)."""

# ruff: noqa: F811 - the fixtures of test_lists_queues are imported, and tests name them as parameters

from typing import Any

from fastapi.testclient import TestClient

from .conftest import hidden_fields
from .fakes import FakeService
from .test_lists_queues import admin, app_client, notify, saved_views  # noqa: F401 - fixtures

ITEM = {
    "id": "n-1",
    "user_id": "ignored",
    "ticket_id": "t-7",
    "ticket_number": 7,
    "ticket_title": "Coffee <machine>",
    "kind": "assigned",
    "text": "#7 assigned to you by Bo",
    "created_at": "2025-03-04T10:00:00Z",
    "read_at": None,
}


def test_every_staff_page_has_a_bell_that_loads_lazily(admin: TestClient, notify: FakeService) -> None:
    page = admin.get("/tickets").text

    assert 'hx-get="/notifications/bell" hx-trigger="load, every 30s"' in page
    assert 'href="/notifications" id="bell"' in page
    assert notify.calls == []  # the page did not wait for notify


def test_the_bell_shows_the_unread_count_of_the_signed_in_user(admin: TestClient, notify: FakeService) -> None:
    notify.route("GET", "/inapp", {"items": [], "unread": 3})

    bell = admin.get("/notifications/bell", headers={"HX-Request": "true"})

    assert bell.status_code == 200
    assert '<span class="bell-count" id="bell-count">3</span>' in bell.text
    assert 'hx-trigger="every 30s"' in bell.text  # no "load": the swapped-in bell must not ask again at once
    (_, path, params, _) = notify.calls[-1]
    assert path == "/inapp"
    assert params["user_id"] and params["unread"] == "true"


def test_the_bell_keeps_a_person_s_count_for_a_moment_until_they_mark_notifications_read(
    admin: TestClient, notify: FakeService
) -> None:
    unread = {"n": 2}
    notify.route("GET", "/inapp", lambda **_: {"items": [ITEM], "unread": unread["n"]})
    notify.route("POST", "/inapp/read", {"marked": 2, "unread": 0})

    def bell() -> str:
        return admin.get("/notifications/bell", headers={"HX-Request": "true"}).text

    assert '<span class="bell-count" id="bell-count">2</span>' in bell()
    asked = len(notify.calls)
    unread["n"] = 5
    assert '<span class="bell-count" id="bell-count">2</span>' in bell()  # every page loads the bell: kept
    assert len(notify.calls) == asked
    page = admin.get("/notifications").text
    admin.post("/notifications/read", data=hidden_fields(page, "/notifications/read"))
    unread["n"] = 0

    assert "bell-count" not in bell()


def test_the_bell_shows_no_count_and_no_error_when_notify_is_down(admin: TestClient, notify: FakeService) -> None:
    notify.down = True

    bell = admin.get("/notifications/bell", headers={"HX-Request": "true"})

    assert bell.status_code == 200
    assert 'id="bell"' in bell.text
    assert "bell-count" not in bell.text


def test_the_notifications_page_lists_them_with_links_to_mark_read_and_open(
    admin: TestClient, notify: FakeService
) -> None:
    notify.route(
        "GET", "/inapp", {"items": [ITEM, {**ITEM, "id": "n-2", "read_at": "2025-03-04T11:00:00Z"}], "unread": 1}
    )

    page = admin.get("/notifications").text

    assert "#7 assigned to you by Bo" in page
    assert "Coffee &lt;machine&gt;" in page
    assert '<li class="notification unread" id="notification-1">' in page
    assert '<li class="notification" id="notification-2">' in page
    assert 'id="mark-all-read"' in page
    assert "2025-03-04 10:00 UTC" in page


def test_opening_a_notification_marks_it_read_and_goes_to_the_ticket(admin: TestClient, notify: FakeService) -> None:
    notify.route("GET", "/inapp", {"items": [ITEM], "unread": 1})
    marked: list[Any] = []
    notify.route("POST", "/inapp/read", lambda json, **_: marked.append(json) or {"marked": 1, "unread": 0})
    page = admin.get("/notifications").text

    response = admin.post("/notifications/n-1/open", data=hidden_fields(page, "/notifications/n-1/open"))

    assert response.status_code == 303
    assert response.headers["location"] == "/tickets/7"
    assert marked[0]["ids"] == ["n-1"]
    assert marked[0]["user_id"] == notify.calls[0][2]["user_id"]


def test_mark_all_read_asks_notify_for_all_of_the_users_notifications(admin: TestClient, notify: FakeService) -> None:
    notify.route("GET", "/inapp", {"items": [ITEM], "unread": 1})
    marked: list[Any] = []
    notify.route("POST", "/inapp/read", lambda json, **_: marked.append(json) or {"marked": 1, "unread": 0})
    page = admin.get("/notifications").text

    response = admin.post("/notifications/read", data=hidden_fields(page, "/notifications/read"))

    assert response.status_code == 303
    assert marked == [{"user_id": notify.calls[0][2]["user_id"], "all": True}]


def test_the_notifications_page_says_notify_is_unavailable(admin: TestClient, notify: FakeService) -> None:
    notify.down = True

    page = admin.get("/notifications")

    assert page.status_code == 503
    assert "Notifications are not available right now" in page.text


def test_marking_read_without_the_csrf_token_is_refused(admin: TestClient, notify: FakeService) -> None:
    response = admin.post("/notifications/read", data={})

    assert response.status_code == 403
    assert not [c for c in notify.calls if c[1] == "/inapp/read"]


def test_a_signed_out_bell_swaps_nothing(app_client: TestClient) -> None:
    assert app_client.get("/notifications/bell").status_code == 204
