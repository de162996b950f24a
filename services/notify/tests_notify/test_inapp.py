"""In-app notifications: a ticket's new handler and the people @mentioned hear of it in the portal."""

import pytest
from contracts.models import Actor, Automation
from notify.domain import assignment_notices, mention_notices
from notify.handlers import InAppNotifier
from prometheus_client import CollectorRegistry

from tests_notify.builders import comment_added, event_envelope, ticket_assigned

CIA = Actor(role="agent", id="u-cia", name="Cia Carlsson")
BO = Actor(role="agent", id="u-bo", name="Bo Berg")


def test_the_new_handler_is_told_who_assigned_the_ticket():
    (notice,) = assignment_notices("e1", ticket_assigned(handler="u-bo", actor=CIA))

    assert notice.user_id == "u-bo"
    assert notice.kind == "assigned"
    assert notice.text == "#1001 assigned to you by Cia Carlsson"


def test_an_agent_who_takes_a_ticket_themselves_is_not_told():
    assert assignment_notices("e1", ticket_assigned(handler="u-bo", actor=BO)) == []


def test_a_ticket_left_without_a_handler_tells_nobody():
    assert assignment_notices("e1", ticket_assigned(handler=None)) == []


def test_an_assignment_by_a_rule_names_the_rule():
    automation = Automation(rule_id="r1", rule_name="VIP to Bo", depth=1, cause="e0")
    event = ticket_assigned(handler="u-bo", actor=Actor(role="system"), automation=automation)

    (notice,) = assignment_notices("e1", event)

    assert notice.text == "#1001 assigned to you by rule VIP to Bo"


def test_each_person_mentioned_is_told_once_but_not_the_author():
    notices = mention_notices("e1", comment_added(("u-bo", "u-dan", "u-bo", "u-cia"), author=CIA))

    assert [n.user_id for n in notices] == ["u-bo", "u-dan"]
    assert {n.text for n in notices} == {"Cia Carlsson mentioned you on #1001"}
    assert len({n.notice_id for n in notices}) == 2


def test_the_same_event_gives_the_same_ids_and_another_event_other_ids():
    event = comment_added(("u-bo",))

    assert mention_notices("e1", event) == mention_notices("e1", event)
    assert mention_notices("e1", event)[0].notice_id != mention_notices("e2", event)[0].notice_id


@pytest.fixture
def inapp(store):
    return InAppNotifier(store, metrics=CollectorRegistry())


async def test_an_assignment_is_stored_for_the_handler_with_the_ticket(inapp, store):
    event = ticket_assigned(handler="u-bo", actor=CIA)
    envelope = event_envelope(event)

    await inapp.tell_assignee(envelope, event)

    (doc,) = store.inapp.values()
    assert doc["user_id"] == "u-bo"
    assert (doc["ticket_id"], doc["ticket_number"], doc["ticket_title"]) == ("t1001", 1001, "Printer on fire")
    assert doc["kind"] == "assigned" and doc["text"] == "#1001 assigned to you by Cia Carlsson"
    assert doc["created_at"] == envelope.occurred_at and doc["read_at"] is None


async def test_a_redelivered_event_stores_one_notification(inapp, store):
    event = comment_added(("u-bo", "u-dan"))
    envelope = event_envelope(event)

    await inapp.tell_mentioned(envelope, event)
    await inapp.tell_mentioned(envelope, event)

    assert sorted(d["user_id"] for d in store.inapp.values()) == ["u-bo", "u-dan"]
    assert {d["comment_id"] for d in store.inapp.values()} == {"c-9"}


async def test_a_comment_without_mentions_stores_nothing(inapp, store):
    event = comment_added(())

    await inapp.tell_mentioned(event_envelope(event), event)

    assert store.inapp == {}
