"""SLA policies and the SLA clock: which policy applies, when targets fall due, and which warnings lie ahead."""

from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError
from triggers.calendar import ALWAYS_OPEN, BusinessCalendar
from triggers.sla import CalendarMismatch, SlaOutcome, SlaPolicy, SlaState, advance, pick_policy

STOCKHOLM = ZoneInfo("Europe/Stockholm")
OFFICE = BusinessCalendar(
    id="office",
    name="Office hours",
    timezone="Europe/Stockholm",
    hours={day: [(time(8), time(17))] for day in ("mon", "tue", "wed", "thu", "fri")},
)


def local(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=STOCKHOLM)


def policy(**changes: Any) -> SlaPolicy:
    fields: dict[str, Any] = {
        "id": "standard",
        "name": "Standard",
        "calendar": "office",
        "first_response_minutes": 120,
        "resolution_minutes": 480,
    }
    fields.update(changes)
    return SlaPolicy(**fields)


def ticket(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "ticket_id": "t-1001",
        "priority": "medium",
        "type": "fault",
        "status_category": "new",
        "created_at": local(2024, 11, 4, 9, 0),  # a Monday
        "first_response_at": None,
        "resolved_at": None,
    }
    fields.update(changes)
    return fields


def observe(steps: list[tuple[datetime, dict[str, Any]]], sla: SlaPolicy | None, calendar=OFFICE) -> SlaOutcome:
    """Advance a fresh clock through (instant, ticket changes) observations, storing the state as JSON in between."""
    state: SlaState | None = None
    outcome: SlaOutcome | None = None
    for at, changes in steps:
        outcome = advance(state, ticket(**changes), at, sla, calendar)
        state = SlaState.model_validate(outcome.state.model_dump(mode="json"))
    assert outcome is not None
    return outcome


def timers_of(outcome: SlaOutcome, metric: str) -> list[tuple[str, datetime]]:
    return [(timer.stage, timer.at) for timer in outcome.timers if timer.metric == metric]


# --- picking a policy --------------------------------------------------------------------------------

ANY = policy(id="any")
HIGH = policy(id="high", priorities=("high",))
HIGH_FAULTS = policy(id="high-faults", priorities=("high",), types=("fault",))
INCIDENTS = policy(id="incidents", types=("incident",))


def test_the_policy_naming_both_priority_and_type_wins_over_less_specific_ones():
    assert pick_policy([ANY, HIGH, HIGH_FAULTS, INCIDENTS], ticket(priority="high", type="fault")) == HIGH_FAULTS


def test_a_policy_naming_the_priority_wins_over_one_naming_nothing():
    assert pick_policy([ANY, HIGH, HIGH_FAULTS], ticket(priority="high", type="question")) == HIGH


def test_the_catch_all_policy_applies_when_nothing_more_specific_matches():
    assert pick_policy([HIGH, ANY, HIGH_FAULTS], ticket(priority="low", type="question")) == ANY


def test_equally_specific_policies_are_decided_by_id():
    assert pick_policy([INCIDENTS, HIGH], ticket(priority="high", type="incident")) == HIGH


def test_inactive_policies_are_never_picked():
    assert pick_policy([HIGH_FAULTS.model_copy(update={"active": False}), ANY], ticket(priority="high")) == ANY


def test_no_policy_is_picked_when_none_matches():
    assert pick_policy([HIGH, INCIDENTS], ticket(priority="low", type="fault")) is None


# --- due times on a new ticket -------------------------------------------------------------------------


def test_a_ticket_created_friday_at_four_with_a_two_hour_target_is_due_monday_at_nine():
    created = local(2024, 11, 8, 16, 0)

    outcome = observe([(created, {"created_at": created})], policy())

    assert outcome.due == {
        "policy": "standard",
        "first_response_due": local(2024, 11, 11, 9, 0),
        "resolution_due": local(2024, 11, 11, 15, 0),  # 1 h on Friday + 7 h on Monday
    }
    assert outcome.due["first_response_due"].tzinfo == UTC


def test_a_new_ticket_gets_a_near_breach_timer_at_due_minus_the_warning_time_and_a_breach_timer_at_due():
    created = datetime(2024, 11, 4, 9, 0, tzinfo=UTC)
    sla = policy(calendar="24x7", first_response_minutes=240, resolution_minutes=None, near_breach_minutes=30)

    outcome = observe([(created, {"created_at": created})], sla, ALWAYS_OPEN)

    due = created + timedelta(hours=4)
    assert outcome.due["resolution_due"] is None
    assert timers_of(outcome, "first_response") == [("near_breach", due - timedelta(minutes=30)), ("breached", due)]
    assert {timer.due_at for timer in outcome.timers} == {due}


def test_the_near_breach_warning_counts_back_in_business_time_over_the_weekend():
    created = local(2024, 11, 8, 16, 0)

    outcome = observe([(created, {"created_at": created})], policy(first_response_minutes=90))

    assert outcome.due["first_response_due"] == local(2024, 11, 11, 8, 30)
    assert timers_of(outcome, "first_response") == [
        ("near_breach", local(2024, 11, 8, 16, 30)),
        ("breached", local(2024, 11, 11, 8, 30)),
    ]


def test_no_warning_is_scheduled_when_the_target_is_shorter_than_the_warning_time():
    outcome = observe([(local(2024, 11, 4, 9, 0), {})], policy(first_response_minutes=30))

    assert timers_of(outcome, "first_response") == [("breached", local(2024, 11, 4, 9, 30))]


def test_ticket_times_given_as_iso_strings_give_the_same_due_times():
    created = local(2024, 11, 8, 16, 0)

    as_strings = observe([(created, {"created_at": "2024-11-08T15:00:00Z"})], policy())

    assert as_strings == observe([(created, {"created_at": created})], policy())


# --- pausing ---------------------------------------------------------------------------------------------


def test_waiting_for_the_customer_stops_the_clocks_and_shows_no_due_time():
    outcome = observe(
        [(local(2024, 11, 4, 9, 0), {}), (local(2024, 11, 4, 10, 0), {"status_category": "waiting_for_customer"})],
        policy(),
    )

    assert outcome.due == {"policy": "standard", "first_response_due": None, "resolution_due": None}
    assert outcome.timers == ()
    assert outcome.state.resolution.used_seconds == 3600


def test_resuming_after_waiting_for_the_customer_extends_the_due_time_by_the_paused_business_time():
    paused, resumed = local(2024, 11, 4, 16, 0), local(2024, 11, 5, 10, 0)
    sla = policy(first_response_minutes=None)
    unpaused = observe([(local(2024, 11, 4, 9, 0), {})], sla)

    outcome = observe(
        [
            (local(2024, 11, 4, 9, 0), {}),
            (paused, {"status_category": "waiting_for_customer"}),
            (resumed, {"status_category": "open"}),
        ],
        sla,
    )

    assert unpaused.due["resolution_due"] == local(2024, 11, 4, 17, 0)
    assert outcome.due["resolution_due"] == local(2024, 11, 5, 11, 0)  # 1 h left at 16:00, counted from 10:00
    extension = OFFICE.elapsed(unpaused.due["resolution_due"], outcome.due["resolution_due"])
    assert extension == OFFICE.elapsed(paused, resumed)


def test_a_policy_can_pause_in_other_status_categories():
    sla = policy(pause_in=("waiting_for_customer", "dormant"))

    outcome = observe([(local(2024, 11, 4, 9, 0), {}), (local(2024, 11, 4, 10), {"status_category": "dormant"})], sla)

    assert outcome.due["resolution_due"] is None


def test_a_clock_resumed_with_less_time_left_than_the_warning_gets_only_its_breach_timer():
    outcome = observe(
        [
            (local(2024, 11, 4, 9, 0), {}),
            (local(2024, 11, 4, 10, 50), {"status_category": "waiting_for_customer"}),
            (local(2024, 11, 4, 14, 0), {"status_category": "open"}),
        ],
        policy(resolution_minutes=None),
    )

    assert timers_of(outcome, "first_response") == [("breached", local(2024, 11, 4, 14, 10))]


# --- stopping and restarting -------------------------------------------------------------------------------


def test_the_first_response_stops_its_clock_for_good():
    replied = local(2024, 11, 4, 10, 0)
    steps = [(local(2024, 11, 4, 9, 0), {}), (replied, {"first_response_at": replied, "status_category": "open"})]

    outcome = observe(
        [
            *steps,
            (local(2024, 11, 4, 11, 0), {"first_response_at": replied, "status_category": "waiting_for_customer"}),
            (local(2024, 11, 4, 12, 0), {"first_response_at": replied, "status_category": "open"}),
        ],
        policy(),
    )

    assert outcome.due["first_response_due"] is None
    assert timers_of(outcome, "first_response") == []
    assert outcome.state.first_response.done_at == replied
    assert outcome.state.first_response.used_seconds == 3600
    assert outcome.due["resolution_due"] is not None


def test_a_first_response_stays_given_when_a_later_snapshot_lacks_it():
    replied = local(2024, 11, 4, 10, 0)

    outcome = observe([(replied, {"first_response_at": replied}), (local(2024, 11, 4, 11, 0), {})], policy())

    assert outcome.due["first_response_due"] is None
    assert outcome.state.first_response.done_at == replied


def test_resolving_then_reopening_keeps_the_resolution_time_already_used():
    created = datetime(2024, 11, 4, 0, 0, tzinfo=UTC)
    resolved = created + timedelta(hours=2)
    sla = policy(calendar="24x7", first_response_minutes=None, resolution_minutes=480)
    steps = [(created, {"created_at": created})]
    steps.append((resolved, {"created_at": created, "status_category": "resolved", "resolved_at": resolved}))

    at_resolution = observe(steps, sla, ALWAYS_OPEN)
    steps.append((created + timedelta(hours=10), {"created_at": created, "status_category": "open"}))
    reopened = observe(steps, sla, ALWAYS_OPEN)

    assert at_resolution.due["resolution_due"] is None
    assert at_resolution.timers == ()
    assert at_resolution.state.resolution.done_at == resolved
    assert reopened.due["resolution_due"] == created + timedelta(hours=16)  # 6 h left, from the reopening at 10:00
    assert reopened.state.resolution.done_at is None


def test_a_ticket_resolved_without_a_reply_has_no_first_response_due():
    outcome = observe(
        [(local(2024, 11, 4, 9, 0), {}), (local(2024, 11, 4, 10, 0), {"status_category": "closed"})], policy()
    )

    assert outcome.due == {"policy": "standard", "first_response_due": None, "resolution_due": None}
    assert outcome.timers == ()


# --- changing or missing policy --------------------------------------------------------------------------


def test_raising_the_priority_recomputes_the_due_time_from_the_new_target_and_the_time_used():
    normal, urgent = policy(id="normal", resolution_minutes=480), policy(id="urgent", resolution_minutes=180)

    before = observe([(local(2024, 11, 4, 9, 0), {})], normal)
    state = before.state
    after = advance(state, ticket(priority="high"), local(2024, 11, 4, 10, 0), urgent, OFFICE)

    assert before.due["resolution_due"] == local(2024, 11, 4, 17, 0)
    assert after.due["policy"] == "urgent"
    assert after.state.policy == "urgent"
    assert after.due["resolution_due"] == local(2024, 11, 4, 12, 0)


def test_a_policy_change_after_a_pause_counts_only_the_business_time_used():
    normal, urgent = policy(id="normal"), policy(id="urgent", resolution_minutes=180)
    paused = observe(
        [(local(2024, 11, 4, 9, 0), {}), (local(2024, 11, 4, 11, 0), {"status_category": "waiting_for_customer"})],
        normal,
    )

    reopened = ticket(priority="high", status_category="open")
    after = advance(paused.state, reopened, local(2024, 11, 5, 9, 0), urgent, OFFICE)

    assert after.due["resolution_due"] == local(2024, 11, 5, 10, 0)  # 2 h used on Monday, 1 h left


def test_without_a_policy_there_are_no_due_times_and_no_timers():
    outcome = observe([(local(2024, 11, 4, 9, 0), {})], None)

    assert outcome.due == {"policy": None, "first_response_due": None, "resolution_due": None}
    assert outcome.timers == ()


def test_a_policy_that_starts_to_apply_later_counts_the_time_since_creation():
    unmatched = observe([(local(2024, 11, 4, 9, 0), {})], None)

    later = advance(unmatched.state, ticket(priority="high"), local(2024, 11, 4, 10, 0), policy(), OFFICE)

    assert later.due["first_response_due"] == local(2024, 11, 4, 11, 0)


def test_a_calendar_other_than_the_policys_is_refused():
    with pytest.raises(CalendarMismatch, match="office"):
        advance(None, ticket(), local(2024, 11, 4, 9, 0), policy(), ALWAYS_OPEN)


# --- invalid policies ------------------------------------------------------------------------------------


def test_a_policy_without_any_target_is_refused():
    with pytest.raises(ValidationError, match="first_response_minutes or resolution_minutes"):
        policy(first_response_minutes=None, resolution_minutes=None)


def test_a_target_of_zero_minutes_is_refused():
    with pytest.raises(ValidationError, match="resolution_minutes"):
        policy(resolution_minutes=0)
