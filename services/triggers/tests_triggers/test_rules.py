"""The rule engine on its own: which rules fire, which actions run, and why not."""

import pytest
from pydantic import ValidationError
from triggers.domain import (
    Condition,
    Rule,
    SendTemplate,
    default_rules,
    evaluate,
    looks_automatic,
)

from tests_triggers.builders import event_dict

AUTO_REPLY = default_rules()[0]


def actions_to_run(firings):
    return [a for f in firings for a in f.actions]


def test_auto_reply_fires_on_a_new_email_ticket():
    firings = evaluate(default_rules(), "ticket.created", event_dict())

    assert [f.rule_name for f in firings] == ["Auto-reply on new ticket"]
    assert actions_to_run(firings) == [SendTemplate(template="auto_reply", target="customer")]


def test_auto_reply_does_not_fire_when_the_creating_mail_was_automatic():
    firings = evaluate(default_rules(), "ticket.created", event_dict(source_auto_submitted=True))

    assert actions_to_run(firings) == []


def test_auto_reply_does_not_fire_for_tickets_from_the_portal():
    assert evaluate(default_rules(), "ticket.created", event_dict(channel="portal", mailbox=None)) == []


@pytest.mark.parametrize(
    "address",
    [
        "noreply@shop.example",
        "no-reply@shop.example",
        "No_Reply+tracking@shop.example",
        "do-not-reply@bank.example",
        "donotreply@bank.example",
        "MAILER-DAEMON@mx.example",
        "postmaster@mx.example",
        "bounces+1234@list.example",
    ],
)
def test_auto_reply_is_not_sent_to_a_robot_address(address):
    requester = {"email": address, "name": ""}

    firings = evaluate(default_rules(), "ticket.created", event_dict(requester=requester))

    assert actions_to_run(firings) == []
    assert "looks automatic" in firings[0].suppressed[0].reason


@pytest.mark.parametrize("address", ["noreen@example.com", "postmasters-guild@example.com", "replyall@example.com"])
def test_people_whose_address_resembles_a_robot_still_get_the_auto_reply(address):
    assert not looks_automatic(address)
    firings = evaluate(default_rules(), "ticket.created", event_dict(requester={"email": address}))
    assert len(actions_to_run(firings)) == 1


def test_auto_reply_is_not_sent_to_our_own_mailbox():
    firings = evaluate(default_rules(), "ticket.created", event_dict(requester={"email": "Support@localhost"}))

    assert actions_to_run(firings) == []
    assert firings[0].suppressed[0].reason == "the requester is our own mailbox"


def test_an_inactive_rule_does_not_fire():
    switched_off = AUTO_REPLY.model_copy(update={"active": False})

    assert evaluate([switched_off], "ticket.created", event_dict()) == []


def test_a_created_rule_does_not_fire_on_other_events():
    assert evaluate(default_rules(), "comment.added", event_dict()) == []


def test_the_firing_records_the_conditions_that_held():
    (firing,) = evaluate(default_rules(), "ticket.created", event_dict())

    record = firing.as_record()
    assert record["rule_id"] == "auto-reply-new-ticket"
    assert record["conditions_met"] == ["ticket.channel is 'email'", "ticket.source_auto_submitted is False"]
    assert record["actions"][0]["template"] == "auto_reply"


def test_conditions_compare_text_without_regard_to_case_and_follow_dotted_paths():
    event = event_dict(requester={"email": "alice@example.com", "name": "Alice"})

    assert Condition(field="ticket.requester.email", op="is", value="ALICE@example.com").holds(event)
    assert Condition(field="ticket.requester.email", op="contains", value="@EXAMPLE.").holds(event)
    assert Condition(field="ticket.priority", op="in", value=["high", "medium"]).holds(event)
    assert Condition(field="ticket.group", op="is_not", value="billing").holds(event)
    assert not Condition(field="ticket.no.such.field", op="is", value="x").holds(event)


def test_a_false_condition_is_not_met_by_a_zero_or_a_missing_value():
    condition = Condition(field="ticket.source_auto_submitted", op="is", value=False)

    assert condition.holds({"ticket": {"source_auto_submitted": False}})
    assert not condition.holds({"ticket": {"source_auto_submitted": 0}})
    assert not condition.holds({"ticket": {}})


def test_a_rule_with_a_fixed_address_sends_there():
    rule = Rule(
        id="tell-the-boss",
        name="Tell the boss about high priority",
        event="ticket.created",
        conditions=[Condition(field="ticket.priority", op="is", value="high")],
        actions=[SendTemplate(template="new_ticket_agent", target="Boss@Example.com", auto_submitted="auto-generated")],
    )

    assert evaluate([rule], "ticket.created", event_dict(priority="low")) == []
    (firing,) = evaluate([rule], "ticket.created", event_dict(priority="high"))
    assert firing.actions[0].target == "boss@example.com"


def test_an_after_update_rule_fires_only_when_its_field_changes():
    rule = Rule(
        id="status-mail",
        name="Status changed",
        event="ticket.updated",
        field="status",
        actions=[SendTemplate(template="status_changed", target="customer")],
    )
    status_changed = {**event_dict(), "changes": [{"field": "status", "old": "new", "new": "open"}]}
    priority_changed = {**event_dict(), "changes": [{"field": "priority", "old": "low", "new": "high"}]}

    assert len(evaluate([rule], "ticket.updated", status_changed)) == 1
    assert evaluate([rule], "ticket.updated", priority_changed) == []


def test_an_after_comment_rule_fires_only_for_the_counterpart():
    rule = Rule(
        id="customer-replied",
        name="Customer replied",
        event="comment.added",
        comment_by="customer",
        actions=[SendTemplate(template="customer_replied", target="team@example.com")],
    )

    assert len(evaluate([rule], "comment.added", {**event_dict(), "author_role": "customer"})) == 1
    assert evaluate([rule], "comment.added", {**event_dict(), "author_role": "agent"}) == []


def test_an_after_update_rule_must_name_its_field():
    with pytest.raises(ValidationError, match="`field` is required"):
        Rule(id="x", name="x", event="ticket.updated", actions=[SendTemplate(template="t", target="customer")])


def test_a_rule_refuses_unknown_operators_targets_and_paths():
    with pytest.raises(ValidationError) as caught:
        Rule.model_validate(
            {
                "id": "bad",
                "name": "Bad",
                "event": "ticket.created",
                "conditions": [{"field": "ticket.$where", "op": "matches", "value": 1}],
                "actions": [{"type": "send_template", "template": "t", "target": "everyone"}],
            }
        )
    wrong = {tuple(e["loc"]) for e in caught.value.errors()}
    assert ("conditions", 0, "field") in wrong
    assert ("conditions", 0, "op") in wrong
    assert ("actions", 0, "send_template", "target") in wrong


def test_the_default_rules_survive_a_round_trip_through_json():
    for rule in default_rules():
        assert Rule.model_validate_json(rule.model_dump_json()) == rule


def test_the_requester_who_created_a_ticket_still_gets_the_auto_reply_but_not_mail_about_their_own_comment():
    from contracts.models import Actor

    from tests_triggers.builders import comment_added

    created = event_dict()
    created["actor"] = Actor(role="customer", email="alice@example.com").model_dump(mode="json")
    assert len(actions_to_run(evaluate(default_rules(), "ticket.created", created))) == 1

    echo = Rule(
        id="echo",
        name="Echo",
        event="comment.added",
        comment_by="customer",
        actions=(SendTemplate(template="got_it", target="customer"),),
    )
    reply = comment_added(author=Actor(role="customer", email="alice@example.com")).model_dump(mode="json")
    (firing,) = evaluate([echo], "comment.added", reply)
    assert firing.actions == () and "their own comment" in firing.suppressed[0].reason
