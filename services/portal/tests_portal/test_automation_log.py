from datetime import UTC, datetime

from portal.automation_log import automation_entries, describe_action, merged_log
from portal.tickets_client import Activity
from portal.triggers_client import FiringRecord

from .fakes import firing_record


def test_each_kind_of_action_is_told_as_a_short_phrase() -> None:
    phrases = [
        describe_action(a)
        for a in (
            {"type": "send_template", "template": "agent_reply", "target": "customer", "with_cc": True},
            {"type": "set_fields", "fields": {"status_category": "open", "tags": ["vip", "urgent"], "title": None}},
            {"type": "set_fields", "fields": {"status": {"from": "ticket.recurrence.status"}}},
            {"type": "assign", "to": "round_robin", "group": "support"},
            {"type": "assign", "to": "group", "group": "billing"},
            {"type": "add_note", "text": "Remember the SLA"},
            {"type": "publish_event", "name": "vip.escalated"},
            {"type": "something_new"},
        )
    ]

    assert phrases == [
        "send agent_reply to customer with CC",
        "set status_category=open, tags=vip,urgent, title=null",
        "set status=(from ticket.recurrence.status)",
        "assign round-robin in group support",
        "assign to group billing",
        "add an internal note",
        "publish event vip.escalated",
        "something new",
    ]


def test_a_webhook_is_named_by_its_host_only_so_a_key_in_its_url_stays_hidden() -> None:
    phrase = describe_action({"type": "webhook", "url": "https://hooks.example.com/in/s3cr3t?key=abc", "secret": "***"})

    assert phrase == "call a webhook at hooks.example.com"


def test_a_rule_set_off_by_another_rule_says_so() -> None:
    firing = {**firing_record()["firings"][0], "depth": 2}
    [entry] = automation_entries([FiringRecord.model_validate(firing_record(firings=[firing]))])

    assert entry.sentence.endswith("(set off by another rule's change, 2 rules deep)")


def test_a_rule_fired_by_a_persons_change_says_nothing_of_a_chain() -> None:
    firing = {**firing_record()["firings"][0], "depth": 1}
    [entry] = automation_entries([FiringRecord.model_validate(firing_record(firings=[firing]))])

    assert "set off by" not in entry.sentence


def test_a_time_rule_is_said_to_have_fired_on_a_timer() -> None:
    record = FiringRecord.model_validate(firing_record(event="time"))

    assert "fired on a timer" in automation_entries([record])[0].sentence


def test_naive_times_from_triggers_are_read_as_utc_and_merged_in_order() -> None:
    def activity(hour: int, action: str) -> Activity:
        return Activity(at=datetime(2025, 3, 4, hour, tzinfo=UTC), action=action)

    record = FiringRecord.model_validate(firing_record(handled_at="2025-03-04T10:00:00"))
    rows = merged_log(
        [activity(9, "created"), activity(10, "commented"), activity(11, "closed")], automation_entries([record])
    )

    kinds = [r.activity.action if r.activity else "rule" for r in rows]
    assert kinds == ["created", "commented", "rule", "rule", "closed"]
    assert rows[2].at == datetime(2025, 3, 4, 10, tzinfo=UTC)
