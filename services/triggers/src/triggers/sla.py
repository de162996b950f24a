"""SLA policies and the SLA clock of a ticket. Pure code: no Kafka, no store, no HTTP, no clock reads.

A policy sets targets (minutes of business time until the first response and until resolution) for the
tickets whose priority and type it matches, measured on one business calendar. Each ticket carries an
`SlaState`: per metric, the business seconds used so far and the instant the clock last (re)started.
`advance` folds one observation of the ticket (its snapshot after a change, at an instant) into that
state and says when each target falls due and which warnings lie ahead.

The clocks start at the ticket's `created_at`. The first-response clock stops for good once
`first_response_at` is set; the resolution clock stops while the ticket is resolved or closed and
restarts, keeping the time used, when it is reopened. Both stand still while the status category is in
the policy's `pause_in`, and the first-response clock also while the ticket is resolved or closed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from triggers.calendar import CALENDAR_ID_PATTERN, BusinessCalendar, NaiveDatetimeError

Metric = Literal["first_response", "resolution"]
Stage = Literal["near_breach", "breached"]

POLICY_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
DEFAULT_PAUSE_IN: tuple[str, ...] = ("waiting_for_customer",)
STOPPED_CATEGORIES: tuple[str, ...] = ("resolved", "closed")
"""Status categories in which the ticket counts as resolved."""


class SlaInputError(ValueError):
    """The ticket or the arguments handed to the SLA clock cannot be read."""


class CalendarMismatch(SlaInputError):
    """The calendar handed in is not the one the policy names."""


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SlaPolicy(_Strict):
    """Targets for first response and resolution, for tickets of some priorities and types, on one calendar."""

    id: str = Field(pattern=POLICY_ID_PATTERN, description="Stable slug of the policy, e.g. `high-faults`.")
    name: str = Field(min_length=1, max_length=200, description="Display name.")
    active: bool = Field(default=True, description="Inactive policies are never picked.")
    priorities: tuple[str, ...] = Field(default=(), description="Priority keys it applies to (empty: any).")
    types: tuple[str, ...] = Field(default=(), description="Ticket type keys it applies to (empty: any).")
    calendar: str = Field(
        default="24x7", pattern=CALENDAR_ID_PATTERN, description="Id of the business calendar time is counted on."
    )
    first_response_minutes: int | None = Field(
        default=None, ge=1, description="Business minutes until the first public reply is due (None: no target)."
    )
    resolution_minutes: int | None = Field(
        default=None, ge=1, description="Business minutes until resolution is due (None: no target)."
    )
    near_breach_minutes: int = Field(
        default=60, ge=0, description="Business minutes before a due time at which to warn (0: no warning)."
    )
    pause_in: tuple[str, ...] = Field(
        default=DEFAULT_PAUSE_IN, description="Status categories during which the clocks stand still."
    )

    @model_validator(mode="after")
    def _has_a_target(self) -> SlaPolicy:
        if self.first_response_minutes is None and self.resolution_minutes is None:
            raise ValueError("set first_response_minutes or resolution_minutes (or both)")
        return self

    def specificity(self) -> int:
        """Return how specific the policy is: 2 with priorities and types, 1 with one of them, 0 with none."""
        return bool(self.priorities) + bool(self.types)

    def matches(self, ticket: Mapping[str, Any]) -> bool:
        """Return whether the policy is active and covers the ticket's priority and type."""
        return (
            self.active
            and (not self.priorities or ticket.get("priority") in self.priorities)
            and (not self.types or ticket.get("type") in self.types)
        )

    def target_seconds(self, metric: Metric) -> float | None:
        """Return the business seconds allowed for a metric, or None when the policy sets no target."""
        minutes = self.first_response_minutes if metric == "first_response" else self.resolution_minutes
        return None if minutes is None else minutes * 60.0


def pick_policy(policies: Iterable[SlaPolicy], ticket: Mapping[str, Any]) -> SlaPolicy | None:
    """Return the most specific active policy matching the ticket (ties: lowest id), or None."""
    matching = [policy for policy in policies if policy.matches(ticket)]
    if not matching:
        return None
    return min(matching, key=lambda policy: (-policy.specificity(), policy.id))


class MetricClock(_Strict):
    """One SLA clock: business time used, and whether it runs, stands still or is done."""

    used_seconds: float = Field(
        default=0.0, ge=0, description="Business seconds used before `running_since` (or in all, if not running)."
    )
    running_since: AwareDatetime | None = Field(
        default=None, description="When the clock last (re)started; None while it stands still or is done."
    )
    done_at: AwareDatetime | None = Field(default=None, description="When the target was met; None until then.")


class SlaState(_Strict):
    """The SLA clocks of one ticket, kept by the caller as `model_dump(mode="json")`."""

    policy: str | None = Field(description="Id of the policy last applied; None when none applied.")
    first_response: MetricClock = Field(description="The clock until the first public reply.")
    resolution: MetricClock = Field(description="The clock until resolution.")
    status_category: str | None = Field(description="The ticket's status category when last seen.")
    at: AwareDatetime = Field(description="The instant the state was last advanced to.")


class SlaTimer(_Strict):
    """A moment ahead at which the caller should act on a metric: warn of a near breach or report the breach."""

    metric: Metric = Field(description="`first_response` or `resolution`.")
    stage: Stage = Field(description="`near_breach` (warning) or `breached` (the due time itself).")
    at: AwareDatetime = Field(description="When the stage is reached (UTC).")
    due_at: AwareDatetime = Field(description="The due time the stage belongs to; a new due time means a new timer.")


class SlaOutcome(_Strict):
    """What `advance` found: the new clock state, the due times to show and the timers to schedule."""

    state: SlaState = Field(description="The clocks after the observation, to store.")
    due: dict[str, str | datetime | None] = Field(
        description="`policy` (id or None), `first_response_due` and `resolution_due` (UTC, or None when met, "
        "not applicable or standing still)."
    )
    timers: tuple[SlaTimer, ...] = Field(description="Stages at or after each clock's last restart, by time.")


def advance(
    state: SlaState | None,
    ticket: Mapping[str, Any],
    at: datetime,
    policy: SlaPolicy | None,
    calendar: BusinessCalendar,
) -> SlaOutcome:
    """Fold one observation of the ticket at `at` into its SLA clocks; return due times and timers ahead."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise NaiveDatetimeError(f"at must be an aware datetime, got {at.isoformat()}")
    at = at.astimezone(UTC)
    if policy is not None and policy.calendar != calendar.id:
        raise CalendarMismatch(f"policy {policy.id!r} counts on calendar {policy.calendar!r}, not {calendar.id!r}")

    category = ticket.get("status_category")
    stopped = category in STOPPED_CATEGORIES
    paused = category in (policy.pause_in if policy is not None else DEFAULT_PAUSE_IN)
    first_response_at = _ticket_instant(ticket, "first_response_at")
    resolved_at = _ticket_instant(ticket, "resolved_at")

    if state is None:
        fresh = MetricClock(running_since=_ticket_instant(ticket, "created_at", required=True))
        first_response, resolution = fresh, fresh
    else:
        first_response, resolution = state.first_response, state.resolution

    # A first response, once given, stays given even if a later snapshot lacks it.
    first_met = first_response.done_at or first_response_at
    first_response = _step(first_response, at=at, met_at=first_met, halted=paused or stopped, calendar=calendar)
    resolution = _step(
        resolution, at=at, met_at=(resolved_at or at) if stopped else None, halted=paused, calendar=calendar
    )
    new_state = SlaState(
        policy=policy.id if policy is not None else None,
        first_response=first_response,
        resolution=resolution,
        status_category=category,
        at=at,
    )

    due: dict[str, str | datetime | None] = {
        "policy": new_state.policy,
        "first_response_due": None,
        "resolution_due": None,
    }
    timers: list[SlaTimer] = []
    if policy is not None:
        clocks: tuple[tuple[Metric, MetricClock], ...] = (
            ("first_response", first_response),
            ("resolution", resolution),
        )
        for metric, clock in clocks:
            due_at = _due(clock, policy.target_seconds(metric), calendar)
            if due_at is None or clock.running_since is None:
                continue
            due[f"{metric}_due"] = due_at
            timers.extend(_timers(metric, due_at, clock.running_since, policy, calendar))
    return SlaOutcome(state=new_state, due=due, timers=tuple(sorted(timers, key=lambda timer: timer.at)))


def _step(
    clock: MetricClock, *, at: datetime, met_at: datetime | None, halted: bool, calendar: BusinessCalendar
) -> MetricClock:
    """Return the clock after seeing the ticket at `at`: met (at `met_at`), standing still, or running."""
    if met_at is None and not halted and clock.running_since is not None:
        return clock
    used = clock.used_seconds
    if clock.running_since is not None:
        until = at if met_at is None else min(max(met_at, clock.running_since), at)
        used += calendar.elapsed(clock.running_since, until)
    if met_at is not None:
        return MetricClock(used_seconds=used, done_at=clock.done_at or met_at)
    if halted:
        return MetricClock(used_seconds=used)
    return MetricClock(used_seconds=used, running_since=at)


def _due(clock: MetricClock, target: float | None, calendar: BusinessCalendar) -> datetime | None:
    """Return when a running clock uses up its target (in the past if it already has), else None."""
    if target is None or clock.running_since is None or clock.done_at is not None:
        return None
    return calendar.add(clock.running_since, target - clock.used_seconds)


def _timers(
    metric: Metric, due_at: datetime, since: datetime, policy: SlaPolicy, calendar: BusinessCalendar
) -> list[SlaTimer]:
    """Return the near-breach and breach stages of one due time that are not before the clock's restart."""
    stages: list[SlaTimer] = []
    if policy.near_breach_minutes:
        warn_at = calendar.add(due_at, -policy.near_breach_minutes * 60.0)
        stages.append(SlaTimer(metric=metric, stage="near_breach", at=warn_at, due_at=due_at))
    stages.append(SlaTimer(metric=metric, stage="breached", at=due_at, due_at=due_at))
    return [stage for stage in stages if stage.at >= since]


def _ticket_instant(ticket: Mapping[str, Any], key: str, *, required: bool = False) -> datetime | None:
    """Read a ticket time given as a datetime or an ISO string; naive values are UTC, as the contracts say."""
    value = ticket.get(key)
    if value is None:
        if required:
            raise SlaInputError(f"ticket.{key} is required")
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as exc:
            raise SlaInputError(f"ticket.{key} is not an ISO date-time: {value!r}") from exc
    if not isinstance(value, datetime):
        raise SlaInputError(f"ticket.{key} must be a datetime or an ISO string, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
