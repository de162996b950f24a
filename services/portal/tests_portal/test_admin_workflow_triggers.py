"""Admin pages over the triggers service: automation rules (with dry run), SLA policies and business hours."""

import re
from copy import deepcopy
from typing import Any

import pytest
from fastapi.testclient import TestClient
from portal.admin_workflow import RuleForm, minutes_of, normalised, value_of, value_text
from portal.service_client import ServiceNotFound, ServiceRefused

from .conftest import csrf_of, hidden_fields, sign_in
from .fakes import FakeService, FakeTickets, FakeTriggers
from .test_admin_workflow_config import ConfigStore, posted

REPLY_RULE: dict[str, Any] = {
    "id": "email-agent-reply",
    "name": "Agent's reply → mail to customer",
    "active": True,
    "applies_to": {"types": [], "groups": [], "channels": []},
    "event": "comment.added",
    "field": None,
    "comment_by": "agent",
    "conditions": [{"field": "comment.visibility", "op": "is", "value": "public"}],
    "actions": [
        {
            "type": "send_template",
            "template": "agent_reply",
            "language": "en",
            "target": "customer",
            "with_cc": True,
            "as_agent": True,
            "auto_submitted": None,
        }
    ],
}


class TriggersApi(FakeService):
    """Triggers' admin API in memory: rules, calendars and SLA policies by id, with the calls recorded."""

    def __init__(self) -> None:
        super().__init__("triggers")
        self.rules: dict[str, dict[str, Any]] = {REPLY_RULE["id"]: deepcopy(REPLY_RULE)}
        self.calendars: dict[str, dict[str, Any]] = {}
        self.policies: dict[str, dict[str, Any]] = {}
        self.refuse_with: ServiceRefused | None = None
        self.dry_run_answer: dict[str, Any] = {"scanned": 0, "matches": []}

    async def call(self, method: str, path: str, actor: Any = None, **kwargs: Any) -> Any:
        json = kwargs.get("json")
        self.calls.append((method, path, kwargs.get("params") or {}, json))
        parts = path.strip("/").split("/")
        if method != "GET" and self.refuse_with is not None:
            raise self.refuse_with
        if parts[0] == "rules":
            return self._rules(method, parts[1:], json)
        store = {"calendars": self.calendars, "sla-policies": self.policies}[parts[0]]
        if method == "GET":
            listed = list(store.values())
            always = {"id": "24x7", "name": "Always open", "timezone": "UTC", "hours": {}, "holidays": []}
            return [always, *listed] if parts[0] == "calendars" else listed
        if method == "PUT":
            store[parts[1]] = {**json, "id": parts[1]}
            return store[parts[1]]
        if method == "DELETE":
            if store.pop(parts[1], None) is None:
                raise ServiceNotFound(path)
            return None
        raise AssertionError(f"unexpected call {method} {path}")

    def _rules(self, method: str, rest: list[str], json: Any) -> Any:
        if not rest:
            return sorted(self.rules.values(), key=lambda r: r["name"])
        if rest == ["dry-run"]:
            return deepcopy(self.dry_run_answer)
        rule_id = rest[0]
        if method == "PUT":
            self.rules[rule_id] = {**json, "id": rule_id}
            return self.rules[rule_id]
        if rule_id not in self.rules:
            raise ServiceNotFound(rule_id)
        if method == "GET":
            return deepcopy(self.rules[rule_id])
        if method == "DELETE":
            del self.rules[rule_id]
            return None
        if rest[1:] == ["active"]:
            self.rules[rule_id]["active"] = json["active"]
            return self.rules[rule_id]
        raise AssertionError(f"unexpected call {method} {rest}")

    def sent(self, method: str, path: str) -> list[Any]:
        return [json for m, p, _, json in self.calls if m == method and p == path]


@pytest.fixture
def api(triggers: FakeTriggers, tickets: FakeTickets, client: TestClient) -> TriggersApi:
    ConfigStore(tickets)
    triggers.api = TriggersApi()
    notify = FakeService("notify")
    notify.route("GET", "/templates", [{"key": "auto_reply", "language": "en"}, {"key": "vip_hello", "language": "en"}])
    client.app.state.portal.services["notify"] = notify
    return triggers.api


def vip_rule_form(page: str, **changes: Any) -> dict[str, Any]:
    vip = {
        "name": "VIP first",
        "event": "ticket.created",
        "cond_field_0": "ticket.title",
        "cond_op_0": "contains",
        "cond_value_0": "VIP",
        "act_type_0": "set_fields",
        "act_field_0": "priority",
        "act_value_0": "high",
    }
    return posted(page, "/admin/automations/save", **(vip | changes))


# ------------------------------------------------------------------------------------------------ rules


def test_the_rules_list_shows_name_event_counts_and_a_switch(client: TestClient, api: TriggersApi) -> None:
    sign_in(client)

    page = client.get("/admin/automations")

    assert page.status_code == 200
    assert "Agent&#39;s reply → mail to customer" in page.text
    assert "Comment added" in page.text
    assert "(agent)" in page.text
    assert 'action="/admin/automations/email-agent-reply/active"' in page.text


def test_switching_a_rule_off_sends_the_new_state_to_triggers(client: TestClient, api: TriggersApi) -> None:
    sign_in(client)
    page = client.get("/admin/automations").text

    response = client.post(
        "/admin/automations/email-agent-reply/active",
        data=hidden_fields(page, "/admin/automations/email-agent-reply/active"),
    )

    assert response.status_code == 303
    assert api.sent("POST", "/rules/email-agent-reply/active") == [{"active": False}]
    assert api.rules["email-agent-reply"]["active"] is False
    assert "The rule is switched off." in client.get(response.headers["location"]).text


def test_an_admin_creates_a_rule_in_the_form_and_it_gets_an_id_from_its_name(
    client: TestClient, api: TriggersApi
) -> None:
    sign_in(client)
    page = client.get("/admin/automations/new").text

    response = client.post("/admin/automations/save", data=vip_rule_form(page))

    assert response.status_code == 303, response.text
    assert api.rules["vip-first"] == {
        "id": "vip-first",
        "name": "VIP first",
        "active": True,
        "applies_to": {"types": [], "groups": [], "channels": []},
        "event": "ticket.created",
        "field": None,
        "comment_by": None,
        "conditions": [{"field": "ticket.title", "op": "contains", "value": "VIP"}],
        "actions": [{"type": "set_fields", "fields": {"priority": "high"}}],
    }


def test_a_new_rule_whose_name_is_taken_gets_a_free_id(client: TestClient, api: TriggersApi) -> None:
    api.rules["vip-first"] = {**deepcopy(REPLY_RULE), "id": "vip-first", "name": "VIP first"}
    sign_in(client)

    client.post("/admin/automations/save", data=vip_rule_form(client.get("/admin/automations/new").text))

    assert "vip-first-2" in api.rules
    assert api.rules["vip-first"]["event"] == "comment.added"  # the other rule is untouched


def test_the_form_says_what_triggers_takes(client: TestClient, api: TriggersApi) -> None:
    domain = pytest.importorskip("triggers.domain")
    sign_in(client)
    page = client.get("/admin/automations/new").text
    form = vip_rule_form(
        page,
        event="ticket.updated",
        field="status",
        types=["fault"],
        groups="support, none",
        channels=["email", "portal"],
        cond_field_1="ticket.priority",
        cond_op_1="in",
        cond_value_1="low, medium",
        cond_field_2="ticket.status",
        cond_op_2="changed_to",
        cond_value_2="open",
        act_type_1="assign",
        act_to_1="round_robin",
        act_group_1="support",
        act_type_2="add_note",
        act_text_2="VIP: {{ ticket.requester.email }}",
    )

    assert client.post("/admin/automations/save", data=form).status_code == 303
    saved = api.rules["vip-first"]

    domain.Rule.model_validate(saved)
    assert saved["applies_to"] == {"types": ["fault"], "groups": ["support", "none"], "channels": ["email", "portal"]}
    assert saved["field"] == "status"
    assert saved["conditions"][1] == {"field": "ticket.priority", "op": "in", "value": ["low", "medium"]}
    assert saved["actions"][1] == {"type": "assign", "to": "round_robin", "user": None, "group": "support"}


def test_a_stored_rule_opens_in_the_form_and_saves_unchanged(client: TestClient, api: TriggersApi) -> None:
    sign_in(client)
    page = client.get("/admin/automations/email-agent-reply").text
    assert 'id="rule-json"' not in page

    response = client.post("/admin/automations/save", data=posted(page, "/admin/automations/save"))

    assert response.status_code == 303, response.text
    assert api.rules["email-agent-reply"] == REPLY_RULE


def test_a_rule_the_form_cannot_show_opens_as_json_and_saves_from_there(client: TestClient, api: TriggersApi) -> None:
    api.rules["escalate"] = {
        **deepcopy(REPLY_RULE),
        "id": "escalate",
        "name": "Escalate",
        "actions": [{"type": "publish_event", "name": "vip.escalated", "payload": {"level": 2}}],
    }
    sign_in(client)
    page = client.get("/admin/automations/escalate").text
    assert 'id="rule-json"' in page
    assert "edit it as JSON" in page
    form = posted(page, "/admin/automations/save")
    form["rule_json"] = form["rule_json"].replace('"level": 2', '"level": 3')

    response = client.post("/admin/automations/save", data=form)

    assert response.status_code == 303, response.text
    assert api.rules["escalate"]["actions"] == [
        {"type": "publish_event", "name": "vip.escalated", "payload": {"level": 3}}
    ]


def test_json_that_is_not_an_object_is_refused_next_to_the_text(client: TestClient, api: TriggersApi) -> None:
    sign_in(client)
    page = client.get("/admin/automations/new").text
    as_json = client.post("/admin/automations/save", data=vip_rule_form(page, do="json")).text
    form = posted(as_json, "/admin/automations/save")
    assert '"contains"' in form["rule_json"]
    form["rule_json"] = "[1, 2"

    response = client.post("/admin/automations/save", data=form)

    assert response.status_code == 422
    assert 'id="json-error"' in response.text
    assert "[1, 2" in response.text
    assert "vip-first" not in api.rules


def test_a_refused_condition_is_shown_on_its_row(client: TestClient, api: TriggersApi) -> None:
    api.refuse_with = ServiceRefused(
        422, "conditions.1.op: Input should be 'is'", [("conditions.1.op", "Input should be 'is', 'is_not'")]
    )
    sign_in(client)
    page = client.get("/admin/automations/new").text
    # Row 1 is left empty: the service's second condition is the form's third row.
    form = vip_rule_form(page, cond_field_2="ticket.status", cond_op_2="is", cond_value_2="open")

    response = client.post("/admin/automations/save", data=form)

    assert response.status_code == 422
    assert re.search(r'id="cond-error-2">Input should be', response.text)
    assert 'value="VIP first"' in response.text


def test_a_whole_rule_error_is_shown_at_the_top(client: TestClient, api: TriggersApi) -> None:
    api.refuse_with = ServiceRefused(
        422,
        "Value error, `field` is required for event `ticket.updated`",
        [("", "Value error, `field` is required for event `ticket.updated`")],
    )
    sign_in(client)

    response = client.post(
        "/admin/automations/save",
        data=vip_rule_form(client.get("/admin/automations/new").text, event="ticket.updated"),
    )

    assert response.status_code == 422
    assert "Not saved: `field` is required for event `ticket.updated`." in response.text


def test_a_dry_run_shows_what_would_have_fired_and_saves_nothing(client: TestClient, api: TriggersApi) -> None:
    api.dry_run_answer = {
        "scanned": 12,
        "matches": [
            {
                "ticket_id": "t-7",
                "ticket_number": 7,
                "event_id": "e-7",
                "at": "2025-03-04T09:30:00+00:00",
                "conditions_met": ["ticket.title contains 'VIP'"],
                "actions": [{"type": "set_fields", "fields": {"priority": "high"}}],
                "suppressed": [],
            }
        ],
    }
    sign_in(client)
    form = vip_rule_form(client.get("/admin/automations/new").text, do="dry_run")

    response = client.post("/admin/automations/save", data=form)

    assert response.status_code == 200
    assert api.sent("POST", "/rules/dry-run")[0]["days"] == 7
    assert api.sent("POST", "/rules/dry-run")[0]["rule"]["conditions"][0]["value"] == "VIP"
    assert 'href="/tickets/7"' in response.text
    assert "12 events looked at, 1 times it would have fired." in response.text
    assert "vip-first" not in api.rules
    assert 'value="VIP first"' in response.text


def test_deleting_a_rule_asks_first(client: TestClient, api: TriggersApi) -> None:
    sign_in(client)
    confirm = client.get("/admin/automations/email-agent-reply/delete")
    assert confirm.status_code == 200
    assert "email-agent-reply" in api.rules

    response = client.post(
        "/admin/automations/email-agent-reply/delete",
        data=hidden_fields(confirm.text, "/admin/automations/email-agent-reply/delete"),
    )

    assert response.status_code == 303
    assert "email-agent-reply" not in api.rules


def test_a_rule_id_that_triggers_could_not_have_made_is_a_404(client: TestClient, api: TriggersApi) -> None:
    sign_in(client)

    assert client.get("/admin/automations/..%2Fcalendars").status_code == 404
    assert client.get("/admin/automations/UPPER").status_code == 404


def test_rule_names_and_values_are_escaped(client: TestClient, api: TriggersApi) -> None:
    api.rules["x"] = {**deepcopy(REPLY_RULE), "id": "x", "name": "<img src=x onerror=alert(1)>"}
    api.rules["x"]["conditions"] = [{"field": "ticket.title", "op": "contains", "value": '"><script>1</script>'}]
    sign_in(client)

    for url in ("/admin/automations", "/admin/automations/x"):
        page = client.get(url).text
        assert "<img src=x" not in page
        assert "<script>1</script>" not in page


@pytest.mark.parametrize(
    ("op", "value"),
    [
        ("is", "VIP"),
        ("is", "123"),
        ("is", 123),
        ("is", True),
        ("is", ""),
        ("is", None),
        ("in", ["a", "b c"]),
        ("in", ["a,b"]),
        ("contains", '"quoted"'),
        ("older_than", "48h"),
    ],
)
def test_condition_values_survive_the_form(op: str, value: Any) -> None:
    assert value_of(value_text(value, op), op) == value


def test_a_rule_with_two_set_field_actions_in_a_row_is_left_to_the_json_editor() -> None:
    spec = normalised(
        {
            **REPLY_RULE,
            "actions": [
                {"type": "set_fields", "fields": {"priority": "high"}},
                {"type": "set_fields", "fields": {"group": "vip"}},
            ],
        }
    )

    assert RuleForm.of(spec) is None
    assert RuleForm.of({**spec, "actions": [{"type": "set_fields", "fields": {"priority": "high", "group": "v"}}]})


# ------------------------------------------------------------------------------------------------ SLA


def test_an_admin_creates_an_sla_policy_with_targets_in_hours(client: TestClient, api: TriggersApi) -> None:
    sign_in(client)
    page = client.get("/admin/sla/new").text
    form = posted(
        page,
        "/admin/sla/save",
        name="High faults",
        priorities=["high"],
        types=["fault"],
        first_response="1h 30m",
        resolution="8h",
        near_breach="15",
    )

    response = client.post("/admin/sla/save", data=form)

    assert response.status_code == 303, response.text
    assert api.policies["high-faults"] == {
        "id": "high-faults",
        "name": "High faults",
        "active": True,
        "priorities": ["high"],
        "types": ["fault"],
        "calendar": "24x7",
        "first_response_minutes": 90,
        "resolution_minutes": 480,
        "near_breach_minutes": 15,
        "pause_in": ["waiting_for_customer"],
    }
    listed = client.get("/admin/sla").text
    assert "1h 30m" in listed
    assert "High faults" in listed


def test_an_unreadable_target_is_refused_next_to_its_field(client: TestClient, api: TriggersApi) -> None:
    sign_in(client)
    form = posted(client.get("/admin/sla/new").text, "/admin/sla/save", name="Fast", first_response="2 days")

    response = client.post("/admin/sla/save", data=form)

    assert response.status_code == 422
    assert "Write minutes or hours" in response.text
    assert api.policies == {}


def test_triggers_refusing_a_policy_shows_the_reason_at_its_field(client: TestClient, api: TriggersApi) -> None:
    api.refuse_with = ServiceRefused(422, "calendar: no calendar 'office'", [("calendar", "no calendar 'office'")])
    sign_in(client)
    form = posted(client.get("/admin/sla/new").text, "/admin/sla/save", name="Office")

    response = client.post("/admin/sla/save", data=form)

    assert response.status_code == 422
    assert "No calendar &#39;office&#39;." in response.text


@pytest.mark.parametrize(("text", "minutes"), [("90", 90), ("4h", 240), ("1h 30m", 90), ("", None), ("0", 0)])
def test_durations_read_as_minutes(text: str, minutes: int | None) -> None:
    assert minutes_of(text) == minutes


@pytest.mark.parametrize("text", ["2d", "soon", "1h and a bit"])
def test_durations_that_are_not_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="minutes or hours"):
        minutes_of(text)


# ------------------------------------------------------------------------------------------------ business hours


def test_an_admin_creates_a_calendar_with_hours_and_holidays(client: TestClient, api: TriggersApi) -> None:
    sign_in(client)
    page = client.get("/admin/business-hours/new").text
    form = posted(
        page,
        "/admin/business-hours/save",
        name="Office Stockholm",
        hours_mon="08:00-12:00, 13:00-17:00",
        hours_sat="10:00-24:00",
        holidays="2025-12-25\r\n2025-12-26\r\n",
    )

    response = client.post("/admin/business-hours/save", data=form)

    assert response.status_code == 303, response.text
    saved = api.calendars["office-stockholm"]
    assert saved["timezone"] == "Europe/Stockholm"
    assert saved["hours"]["mon"] == [["08:00", "12:00"], ["13:00", "17:00"]]
    assert saved["hours"]["tue"] == [["08:00", "17:00"]]
    assert saved["hours"]["sat"] == [["10:00", "24:00"]]
    assert "sun" not in saved["hours"]
    assert saved["holidays"] == ["2025-12-25", "2025-12-26"]


def test_unreadable_hours_and_dates_are_refused_next_to_their_field(client: TestClient, api: TriggersApi) -> None:
    sign_in(client)
    form = posted(
        client.get("/admin/business-hours/new").text,
        "/admin/business-hours/save",
        name="Office",
        hours_tue="8 to 5",
        holidays="Christmas",
    )

    response = client.post("/admin/business-hours/save", data=form)

    assert response.status_code == 422
    assert "write opening hours like 08:00-17:00" in response.text
    assert "Cannot read Christmas" in response.text
    assert 'value="8 to 5"' in response.text
    assert api.calendars == {}


def test_a_calendar_in_use_cannot_be_deleted_and_the_page_says_by_what(client: TestClient, api: TriggersApi) -> None:
    api.calendars["office"] = {
        "id": "office",
        "name": "Office",
        "timezone": "Europe/Stockholm",
        "hours": {"mon": [["08:00:00", "17:00:00"]]},
        "holidays": [],
    }
    sign_in(client)
    confirm = client.get("/admin/business-hours/office/delete")
    api.refuse_with = ServiceRefused(409, "calendar 'office' is used by: high-faults")

    response = client.post(
        "/admin/business-hours/office/delete", data=hidden_fields(confirm.text, "/admin/business-hours/office/delete")
    )

    assert response.status_code == 409
    assert "is used by: high-faults" in response.text
    assert "office" in api.calendars


def test_a_stored_calendar_shows_its_hours_as_the_form_reads_them(client: TestClient, api: TriggersApi) -> None:
    api.calendars["office"] = {
        "id": "office",
        "name": "Office",
        "timezone": "Europe/Stockholm",
        "hours": {"mon": [["08:00:00", "12:00:00"], ["13:00:00", "00:00:00"]]},
        "holidays": ["2025-12-25"],
    }
    sign_in(client)

    form = posted(client.get("/admin/business-hours/office").text, "/admin/business-hours/save")

    assert form["hours_mon"] == "08:00-12:00, 13:00-24:00"
    assert form["holidays"] == "2025-12-25"
    assert client.get("/admin/business-hours/24x7").status_code == 409


def test_every_page_of_the_area_has_the_csrf_field(client: TestClient, api: TriggersApi) -> None:
    sign_in(client)
    for url in ("/admin/automations/new", "/admin/sla/new", "/admin/business-hours/new"):
        assert csrf_of(client.get(url).text)


def test_every_default_rule_opens_in_the_form_and_would_save_unchanged() -> None:
    domain = pytest.importorskip("triggers.domain")

    for rule in domain.default_rules():
        spec = normalised(rule.model_dump(mode="json", by_alias=True))
        form = RuleForm.of(spec)
        assert form is not None, rule.id
        assert form.to_spec()[0] == spec
