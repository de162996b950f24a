"""Admin pages over the tickets configuration: ticket types with their workflows, and the fields."""

from copy import deepcopy
from typing import Any

import pytest
from fastapi.testclient import TestClient
from portal.service_client import ServiceRefused

from .conftest import csrf_of, hidden_fields, sign_in
from .fakes import FakeTickets


def default_config() -> dict[str, Any]:
    """Return the tickets service's shipped configuration, as GET /api/config sends it."""
    statuses = [
        {"key": "new", "name": "New", "category": "new"},
        {"key": "open", "name": "Open", "category": "open"},
        {"key": "waiting_for_customer", "name": "Waiting for customer", "category": "waiting_for_customer"},
        {"key": "closed", "name": "Closed", "category": "closed"},
    ]
    return {
        "types": [
            {
                "key": key,
                "name": name,
                "colour": "#c0392b",
                "icon": "bug",
                "mailbox": None,
                "statuses": deepcopy(statuses),
                "transitions": {},
            }
            for key, name in (("fault", "Fault"), ("order", "Order"))
        ],
        "priorities": [{"key": k, "name": n} for k, n in (("low", "Low"), ("medium", "Medium"), ("high", "High"))],
        "categories": [],
        "fields": {"category": {"used": True, "required": False}},
        "custom_fields": [],
        "settings": {"concurrent_edits": "merge", "customers_see_organisation": False},
    }


class ConfigStore:
    """The tickets service's configuration endpoints: a version that a save must name, 409 when stale."""

    def __init__(self, tickets: FakeTickets) -> None:
        self.config = default_config()
        self.version = 3
        self.saved: list[dict[str, Any]] = []
        self.refuse_with: ServiceRefused | None = None
        tickets.api.route("GET", "/api/config", self.get)
        tickets.api.route("PUT", "/api/config", self.put)

    def get(self, **_: Any) -> dict[str, Any]:
        return {"version": self.version, "config": deepcopy(self.config)}

    def put(self, json: Any, **_: Any) -> dict[str, Any]:
        if json["version"] != self.version:
            raise ServiceRefused(409, "the configuration changed meanwhile; reload and try again")
        if self.refuse_with is not None:
            raise self.refuse_with
        self.saved.append(deepcopy(json["config"]))
        self.config = deepcopy(json["config"])
        self.version += 1
        return self.get()

    def someone_else_saves(self) -> None:
        self.version += 1


@pytest.fixture
def store(tickets: FakeTickets) -> ConfigStore:
    return ConfigStore(tickets)


def posted(page: str, action: str, **changes: Any) -> dict[str, Any]:
    """Return the form as a browser would post it: every input's value, ticked boxes, selected options."""
    import re

    match = re.search(rf'<form[^>]*action="{re.escape(action)}"[^>]*>(.*?)</form>', page, re.S)
    assert match, f"no form posting to {action}"
    body = match.group(1)
    data: dict[str, Any] = {}
    for tag in re.findall(r"<input[^>]*>", body):
        name = re.search(r'name="([^"]+)"', tag)
        if not name or " disabled" in tag:
            continue
        value = re.search(r'value="([^"]*)"', tag)
        kind = re.search(r'type="([^"]+)"', tag)
        if kind and kind.group(1) == "checkbox":
            if " checked" in tag:
                data.setdefault(name.group(1), []).append(value.group(1) if value else "on")
            continue
        data[name.group(1)] = _unescape(value.group(1)) if value else ""
    for name, options in re.findall(r'<select[^>]*name="([^"]+)"[^>]*>(.*?)</select>', body, re.S):
        chosen = re.search(r'<option value="([^"]*)" selected>', options) or re.search(
            r'<option value="([^"]*)"', options
        )
        data[name] = _unescape(chosen.group(1)) if chosen else ""
    for name, text in re.findall(r'<textarea[^>]*name="([^"]+)"[^>]*>(.*?)</textarea>', body, re.S):
        data[name] = _unescape(text)
    data = {
        k: (v[0] if isinstance(v, list) and len(v) == 1 and not k.startswith("tr_") else v) for k, v in data.items()
    }
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def _unescape(text: str) -> str:
    import html

    return html.unescape(text)


# ------------------------------------------------------------------------------------------------ types


def test_the_types_page_lists_every_type_with_its_statuses(client: TestClient, store: ConfigStore) -> None:
    sign_in(client)

    page = client.get("/admin/types")

    assert page.status_code == 200
    assert 'href="/admin/types/fault"' in page.text
    assert 'href="/admin/types/order"' in page.text
    assert "Waiting for customer" in page.text


def test_an_admin_creates_a_type_with_its_own_statuses(client: TestClient, store: ConfigStore) -> None:
    sign_in(client)
    page = client.get("/admin/types/new").text
    form = posted(
        page,
        "/admin/types/save",
        name="Return",
        key="",
        status_name_1="With warehouse",
        status_key_1="with_warehouse",
    )

    response = client.post("/admin/types/save", data=form)

    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/admin/types?notice=saved"
    created = store.config["types"][-1]
    assert created["key"] == "return"
    assert created["name"] == "Return"
    assert [(s["key"], s["name"], s["category"]) for s in created["statuses"]] == [
        ("new", "New", "new"),
        ("with_warehouse", "With warehouse", "open"),
        ("closed", "Closed", "closed"),
    ]
    assert created["transitions"] == {}  # every box ticked: any move
    assert [t["key"] for t in store.config["types"][:2]] == ["fault", "order"]  # the others are kept


def test_unticking_transitions_restricts_the_moves_of_that_status(client: TestClient, store: ConfigStore) -> None:
    sign_in(client)
    page = client.get("/admin/types/fault").text
    form = posted(page, "/admin/types/save")
    # From Closed (row 3) only back to Open (row 1).
    form["tr_3"] = ["1"]

    response = client.post("/admin/types/save", data=form)

    assert response.status_code == 303, response.text
    fault = store.config["types"][0]
    assert fault["transitions"] == {"closed": ["open"]}
    assert fault["icon"] == "bug"  # what the form does not show is kept
    assert fault["key"] == "fault"


def test_the_editor_shows_a_restricted_status_with_only_its_moves_ticked(
    client: TestClient, store: ConfigStore
) -> None:
    store.config["types"][0]["transitions"] = {"closed": ["open"]}
    sign_in(client)

    page = client.get("/admin/types/fault").text

    assert posted(page, "/admin/types/save")["tr_3"] == ["1"]
    assert len(posted(page, "/admin/types/save")["tr_0"]) == 3 + 3  # the other statuses and the empty rows


def test_a_stale_version_keeps_the_admins_input_and_says_someone_else_changed_it(
    client: TestClient, store: ConfigStore
) -> None:
    sign_in(client)
    form = posted(client.get("/admin/types/fault").text, "/admin/types/save", name="Faults & errors")
    store.someone_else_saves()

    response = client.post("/admin/types/save", data=form)

    assert response.status_code == 409
    assert "Someone else changed the configuration" in response.text
    assert 'value="Faults &amp; errors"' in response.text
    assert store.saved == []
    again = client.post("/admin/types/save", data=posted(response.text, "/admin/types/save"))
    assert again.status_code == 303
    assert store.config["types"][0]["name"] == "Faults & errors"


def test_the_services_validation_error_is_shown_next_to_the_status_row(client: TestClient, store: ConfigStore) -> None:
    store.refuse_with = ServiceRefused(
        422,
        "config.types.0.statuses.2.key: String should match pattern",
        [("config.types.0.statuses.2.key", "String should match pattern '^[a-z][a-z0-9_]{0,39}$'")],
    )
    sign_in(client)
    form = posted(client.get("/admin/types/fault").text, "/admin/types/save", status_remove_1="on")

    response = client.post("/admin/types/save", data=form)

    assert response.status_code == 422
    # The third status sent is the form's fourth row, since the second row was removed.
    error_at = response.text.index("String should match pattern")
    assert response.text.rindex('id="status-name-3"', 0, error_at) > response.text.rindex(
        'id="status-name-2"', 0, error_at
    )
    assert response.text.index('id="status-name-4"') > error_at
    assert 'name="status_remove_1" checked' in response.text


def test_a_new_type_may_not_take_the_key_of_another(client: TestClient, store: ConfigStore) -> None:
    sign_in(client)
    form = posted(client.get("/admin/types/new").text, "/admin/types/save", name="Faults", key="fault")

    response = client.post("/admin/types/save", data=form)

    assert response.status_code == 422
    assert "There is a type with this key already." in response.text
    assert store.saved == []


def test_add_rows_shows_the_form_again_with_more_empty_statuses(client: TestClient, store: ConfigStore) -> None:
    sign_in(client)
    form = posted(client.get("/admin/types/new").text, "/admin/types/save", name="Return", more="1")

    response = client.post("/admin/types/save", data=form)

    assert response.status_code == 200
    assert 'id="status-name-8"' in response.text
    assert 'value="Return"' in response.text
    assert store.saved == []


def test_deleting_a_type_asks_first_and_then_removes_it(client: TestClient, store: ConfigStore) -> None:
    sign_in(client)
    confirm = client.get("/admin/types/order/delete")
    assert confirm.status_code == 200
    assert store.saved == []

    response = client.post("/admin/types/order/delete", data=hidden_fields(confirm.text, "/admin/types/order/delete"))

    assert response.status_code == 303
    assert [t["key"] for t in store.config["types"]] == ["fault"]


def test_a_delete_the_tickets_service_refuses_shows_its_reason(client: TestClient, store: ConfigStore) -> None:
    store.refuse_with = ServiceRefused(422, "config.types: List should have at least 1 item after validation, not 0")
    sign_in(client)
    confirm = client.get("/admin/types/order/delete")

    response = client.post("/admin/types/order/delete", data=hidden_fields(confirm.text, "/admin/types/order/delete"))

    assert response.status_code == 422
    assert "List should have at least 1 item" in response.text


def test_type_names_are_escaped(client: TestClient, store: ConfigStore) -> None:
    store.config["types"][0]["name"] = "<script>alert(1)</script>"
    sign_in(client)

    for url in ("/admin/types", "/admin/types/fault"):
        page = client.get(url).text
        assert "<script>alert(1)</script>" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


# ------------------------------------------------------------------------------------------------ fields


def test_an_admin_adds_a_pick_list_field_a_category_and_makes_the_group_required(
    client: TestClient, store: ConfigStore
) -> None:
    sign_in(client)
    page = client.get("/admin/fields").text
    form = posted(
        page,
        "/admin/fields",
        cf_name_0="Product line",
        cf_key_0="",
        cf_kind_0="pick_list",
        cf_options_0="Printers\r\nScreens\r\n",
        ca_name_0="Hardware",
        required_group="on",
    )

    response = client.post("/admin/fields", data=form)

    assert response.status_code == 303, response.text
    config = store.config
    assert config["custom_fields"] == [
        {
            "key": "product_line",
            "name": "Product line",
            "kind": "pick_list",
            "options": ["Printers", "Screens"],
            "used": True,
            "required": False,
        }
    ]
    assert config["categories"] == [{"key": "hardware", "name": "Hardware"}]
    assert config["fields"]["group"] == {"used": True, "required": True}
    assert config["fields"]["title"] == {"used": True, "required": True}
    assert [p["key"] for p in config["priorities"]] == ["low", "medium", "high"]


def test_the_title_stays_required_even_when_the_form_says_otherwise(client: TestClient, store: ConfigStore) -> None:
    sign_in(client)
    form = posted(client.get("/admin/fields").text, "/admin/fields", used_title=None, required_title=None)

    client.post("/admin/fields", data=form)

    assert store.config["fields"]["title"] == {"used": True, "required": True}


def test_removing_a_priority_and_a_refused_custom_field_shows_the_error_on_its_row(
    client: TestClient, store: ConfigStore
) -> None:
    store.config["custom_fields"] = [
        {"key": "serial", "name": "Serial", "kind": "text", "options": [], "used": True, "required": False}
    ]
    store.refuse_with = ServiceRefused(
        422,
        "config.custom_fields.1: Value error, a pick-list needs options",
        [("config.custom_fields.1", "Value error, a pick-list needs options")],
    )
    sign_in(client)
    form = posted(client.get("/admin/fields").text, "/admin/fields", cf_name_1="Colour", cf_kind_1="pick_list")

    response = client.post("/admin/fields", data=form)

    assert response.status_code == 422
    assert "A pick-list needs options." in response.text
    assert 'value="Colour"' in response.text


def test_a_stale_fields_form_is_refused_with_the_input_kept(client: TestClient, store: ConfigStore) -> None:
    sign_in(client)
    form = posted(client.get("/admin/fields").text, "/admin/fields", ca_name_0="Billing")
    store.someone_else_saves()

    response = client.post("/admin/fields", data=form)

    assert response.status_code == 409
    assert "Someone else changed the configuration" in response.text
    assert 'value="Billing"' in response.text
    assert store.saved == []


def test_the_page_posts_carry_the_csrf_token(client: TestClient, store: ConfigStore) -> None:
    sign_in(client)
    page = client.get("/admin/fields").text

    assert csrf_of(page)
    assert posted(page, "/admin/fields")["csrf_token"] == csrf_of(page)
