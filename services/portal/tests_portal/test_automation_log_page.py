import html
import logging
import re
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from portal.security import Passwords

from .conftest import PHRASE, add_user, sign_in
from .fakes import FakeTickets, FakeTriggers, FakeUsers, firing_record

SCRIPT = "<script>alert('owned')</script>"
LINK_TOKEN = "k3y-0f-the-customer-link-xyz"


def visible_text(page: str) -> str:
    """Return what a person reads on a page: tags dropped, entities decoded, white space collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def at(hour: int, minute: int = 0) -> str:
    return datetime(2025, 3, 4, hour, minute, tzinfo=UTC).isoformat()


@pytest.fixture
def signed_in(client: TestClient) -> TestClient:
    assert sign_in(client).status_code == 303
    return client


@pytest.fixture
def fired(triggers: FakeTriggers) -> FakeTriggers:
    triggers.records["t-1"] = [firing_record()]
    return triggers


def test_the_agent_sees_which_rule_fired_on_what_with_the_conditions_and_the_actions(
    signed_in: TestClient, fired: FakeTriggers
) -> None:
    page = signed_in.get("/tickets/1")

    assert page.status_code == 200
    text = visible_text(page.text)
    assert (
        "Rule 'Agent's reply → mail to customer' fired on comment.added — "
        "conditions: comment.visibility is 'public'; did: send agent_reply to customer"
    ) in text
    assert (
        "Rule 'Agent's reply → Waiting for customer' fired on comment.added — "
        "conditions: ticket.status_category is 'open'; did: set status_category=waiting_for_customer"
    ) in text
    assert fired.asked == ["t-1"]


def test_the_firings_are_merged_into_the_activity_log_by_time(
    signed_in: TestClient, tickets: FakeTickets, fired: FakeTriggers
) -> None:
    later = {"at": at(11), "actor": {"role": "agent", "name": "Bea"}, "action": "priority_changed", "detail": None}
    tickets.tickets[1]["activity"].append(later)
    noon = {**firing_record()["firings"][0], "rule_name": "Noon"}
    fired.records["t-1"] = [
        firing_record(event_id="e-2", handled_at=at(12), firings=[noon]),
        firing_record(handled_at=at(10, 15)),
    ]

    text = visible_text(signed_in.get("/tickets/1").text)

    order = [text.index(s) for s in ("Ticket created", "Rule 'Agent's reply", "Priority changed", "Rule 'Noon'")]
    assert order == sorted(order)
    assert "2025-03-04 10:15 UTC Automation Rule 'Agent's reply" in text


def test_an_action_a_guard_stopped_is_shown_as_not_done_with_the_reason(
    signed_in: TestClient, triggers: FakeTriggers
) -> None:
    stopped = {"type": "send_template", "template": "auto_reply", "target": "customer"}
    reason = "the sender address no-reply@example.com looks automatic (no-reply, mailer-daemon, postmaster)"
    firing = {
        "rule_id": "auto-reply-new-ticket",
        "rule_name": "Auto reply",
        "conditions_met": ["ticket.channel is 'email'"],
        "actions": [],
        "suppressed": [{"action": stopped, "reason": reason}],
    }
    triggers.records["t-1"] = [firing_record(event="ticket.created", firings=[firing])]

    text = visible_text(signed_in.get("/tickets/1").text)

    assert "Rule 'Auto reply' fired on ticket.created — conditions: ticket.channel is 'email'; did: nothing" in text
    assert f"not done: {reason} (send auto_reply to customer)" in text


def test_a_rule_cut_off_by_loop_protection_is_shown_with_the_reason(
    signed_in: TestClient, triggers: FakeTriggers
) -> None:
    cut = {"rule_id": "agent-reply-waiting-for-customer", "reason": "the rule's own change does not fire it again"}
    triggers.records["t-1"] = [
        firing_record(event_id="e-2", handled_at=at(10, 16), event="ticket.updated", firings=[], cut_offs=[cut]),
        firing_record(),
    ]

    text = visible_text(signed_in.get("/tickets/1").text)

    assert "Rule 'Agent's reply → Waiting for customer' cut off: the rule's own change does not fire it again" in text


def test_records_where_no_rule_fired_are_left_out(signed_in: TestClient, triggers: FakeTriggers) -> None:
    triggers.records["t-1"] = [firing_record(event="ticket.updated", firings=[], cut_offs=[])]

    text = visible_text(signed_in.get("/tickets/1").text)

    assert "Automation" not in text
    assert "ticket.updated" not in text


def test_a_light_agent_sees_the_automation_log_like_an_agent(
    client: TestClient, users: FakeUsers, passwords: Passwords, fired: FakeTriggers
) -> None:
    add_user(users, passwords, "lee@localhost", PHRASE, "light_agent")
    sign_in(client, email="lee@localhost", password=PHRASE)

    text = visible_text(client.get("/tickets/1").text)

    assert "Rule 'Agent's reply → mail to customer' fired on comment.added" in text


def test_a_customer_never_sees_the_automation_log_and_triggers_is_not_asked(
    client: TestClient, users: FakeUsers, passwords: Passwords, fired: FakeTriggers
) -> None:
    add_user(users, passwords, "alice@example.com", PHRASE, "customer")
    sign_in(client, email="alice@example.com", password=PHRASE)

    page = client.get("/tickets/1")

    assert page.status_code == 303
    assert "fired on" not in page.text
    assert "agent_reply" not in page.text
    assert fired.asked == []


def test_the_secret_ticket_link_never_shows_the_automation_log_and_triggers_is_not_asked(
    client: TestClient, tickets: FakeTickets, fired: FakeTriggers
) -> None:
    tickets.tickets[1]["link_token"] = LINK_TOKEN

    page = client.get(f"/t/{LINK_TOKEN}")

    assert page.status_code == 200
    assert "Printer on floor 2 is jammed" in page.text
    assert "fired on" not in page.text
    assert "Automation" not in page.text
    assert fired.asked == []


def test_the_ticket_page_is_shown_with_a_note_when_triggers_is_down(
    signed_in: TestClient, triggers: FakeTriggers, caplog: pytest.LogCaptureFixture
) -> None:
    triggers.down = True

    with caplog.at_level(logging.WARNING, logger="portal.web"):
        page = signed_in.get("/tickets/1")

    assert page.status_code == 200
    text = visible_text(page.text)
    assert "Automation log unavailable" in text
    assert "Ticket created" in text
    assert "It makes a grinding noise." in text
    assert any(r.levelno == logging.WARNING and "automation log" in r.getMessage() for r in caplog.records)


def test_the_note_is_not_shown_when_triggers_answers(signed_in: TestClient, fired: FakeTriggers) -> None:
    assert "Automation log unavailable" not in signed_in.get("/tickets/1").text


def test_html_in_rule_names_reasons_and_conditions_is_escaped(signed_in: TestClient, triggers: FakeTriggers) -> None:
    firing = {
        "rule_id": "evil",
        "rule_name": SCRIPT,
        "conditions_met": [f"comment.text contains {SCRIPT!r}"],
        "actions": [{"type": "publish_event", "name": SCRIPT}],
        "suppressed": [{"action": {"type": "add_note"}, "reason": SCRIPT}],
        "notes": [SCRIPT],
    }
    cut = {"rule_id": "<b>bold</b>", "reason": SCRIPT}
    triggers.records["t-1"] = [firing_record(firings=[firing], cut_offs=[cut])]

    page = signed_in.get("/tickets/1")

    assert page.status_code == 200
    assert "<script>alert" not in page.text
    assert "<b>bold</b>" not in page.text
    assert page.text.count("&lt;script&gt;alert(") >= 5
    assert "Rule '<b>bold</b>' cut off" in visible_text(page.text)
