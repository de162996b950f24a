"""Business-hours calendars: when a team is at work, and how much working time lies between two instants.

Pure code: no Kafka, no store, no HTTP. A calendar is a time zone, opening hours per weekday as local
wall-clock intervals, and holidays (whole local days closed). Every question is answered on instants
(aware datetimes, any zone): each local day's intervals are turned into UTC instants once, so a day with
a DST change is simply 23 or 25 hours long and nothing else needs to know about it.

Wall-clock times a DST change makes odd are read as follows: a time the clocks skip (02:30 on a
spring-forward night) is the instant of the jump; an interval's start that occurs twice (fall-back) is
its first occurrence and its end its last, so the hour lived twice counts twice. An end of `00:00`
(or `"24:00"` on input) means the following midnight.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = get_args(Weekday)
"""Weekday keys in `date.weekday()` order."""

CALENDAR_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"

MAX_SEARCH_DAYS = 3660
"""How far (about ten years) `add` and `next_open` look before deciding the calendar is too rarely open."""

_MIDNIGHT = time(0, 0)
_DAY = timedelta(days=1)
_DAY_SECONDS = 86400
_END_OF_DAY = ("24:00", "24:00:00")

Interval = tuple[datetime, datetime]
WeeklyHours = dict[Weekday, list[tuple[time, time]]]


class NaiveDatetimeError(ValueError):
    """A datetime without a time zone was given where an instant is needed."""


class BusinessTimeUnreachable(RuntimeError):
    """The calendar is not open (enough) within `MAX_SEARCH_DAYS` of the starting instant."""


def _seconds_of_day(value: time, *, end: bool) -> int | float:
    seconds = value.hour * 3600 + value.minute * 60 + value.second + value.microsecond / 1_000_000
    return _DAY_SECONDS if end and seconds == 0 else seconds


def _with_midnight_ends(intervals: Any) -> Any:
    """Return raw intervals with an end of `"24:00"` written as `"00:00"` (the following midnight)."""
    if not isinstance(intervals, list | tuple):
        return intervals
    return [
        (pair[0], "00:00") if isinstance(pair, list | tuple) and len(pair) == 2 and pair[1] in _END_OF_DAY else pair
        for pair in intervals
    ]


def _aware(at: datetime, name: str = "at") -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise NaiveDatetimeError(f"{name} must be an aware datetime (with a time zone), got {at.isoformat()}")
    return at


class BusinessCalendar(BaseModel):
    """Opening hours in one time zone, with holidays; answers open/closed and business time between instants."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=CALENDAR_ID_PATTERN, description="Stable slug of the calendar, e.g. `office`.")
    name: str = Field(min_length=1, max_length=200, description="Display name, e.g. `Office hours (Stockholm)`.")
    timezone: str = Field(description="IANA time zone the hours and holidays are in, e.g. `Europe/Stockholm`.")
    hours: WeeklyHours = Field(
        description="Opening intervals per weekday as local [start, end) wall-clock times, sorted and not "
        "overlapping; an end of `00:00` (or `24:00`) is the following midnight. A missing day is closed."
    )
    holidays: list[date] = Field(default_factory=list, description="Local dates on which it is closed all day.")

    _zone: ZoneInfo = PrivateAttr()
    _closed_days: frozenset[date] = PrivateAttr()
    _always_open: bool = PrivateAttr()

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value

    @field_validator("hours", mode="before")
    @classmethod
    def _read_24_00_as_midnight(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        return {day: _with_midnight_ends(intervals) for day, intervals in value.items()}

    @field_validator("hours")
    @classmethod
    def _intervals_are_sane(cls, value: WeeklyHours) -> WeeklyHours:
        for day, intervals in value.items():
            previous_end: float = -1
            for start, end in intervals:
                if start.tzinfo is not None or end.tzinfo is not None:
                    raise ValueError(f"{day}: opening hours are local wall-clock times, without a time zone")
                start_s, end_s = _seconds_of_day(start, end=False), _seconds_of_day(end, end=True)
                if start_s >= end_s:
                    raise ValueError(f"{day}: interval {start:%H:%M}-{end:%H:%M} must start before it ends")
                if start_s < previous_end:
                    raise ValueError(f"{day}: intervals must be sorted and must not overlap (at {start:%H:%M})")
                previous_end = end_s
        if not any(value.values()):
            raise ValueError("a calendar without any opening hours would never be open")
        return value

    def model_post_init(self, context: Any, /) -> None:
        """Derive the zone, the closed days and whether the calendar never closes (kept out of the fields)."""
        self._zone = ZoneInfo(self.timezone)
        self._closed_days = frozenset(self.holidays)
        whole_day = [(_MIDNIGHT, _MIDNIGHT)]
        self._always_open = not self.holidays and all(self.hours.get(day) == whole_day for day in WEEKDAYS)

    def is_open(self, at: datetime) -> bool:
        """Return whether the calendar is open at the instant `at`."""
        _aware(at)
        if self._always_open:
            return True
        for start, end in self._day_intervals_around(at):
            if start <= at < end:
                return True
        return False

    def next_open(self, at: datetime) -> datetime:
        """Return the first open instant at or after `at`, in UTC (the same instant when it is open)."""
        _aware(at)
        if self._always_open:
            return at.astimezone(UTC)
        for start, end in self._intervals(self._local_date(at) - _DAY, forward=True, origin=at):
            if end > at:
                return max(start, at).astimezone(UTC)
        raise BusinessTimeUnreachable(self._unreachable(at))

    def add(self, start: datetime, seconds: float) -> datetime:
        """Return the instant (UTC) at which `seconds` of business time have passed since `start`.

        Negative `seconds` count backwards: the latest instant with that much business time before `start`.
        """
        _aware(start, "start")
        start = start.astimezone(UTC)
        remaining = timedelta(seconds=seconds)
        if self._always_open or not remaining:
            return start + remaining
        if remaining > timedelta(0):
            cursor = start
            for begin, end in self._intervals(self._local_date(start) - _DAY, forward=True, origin=start):
                begin = max(begin, cursor)
                if end <= begin:
                    continue
                if remaining <= end - begin:
                    return begin + remaining
                remaining -= end - begin
                cursor = end
        else:
            remaining = -remaining
            cursor = start
            for begin, end in self._intervals(self._local_date(start) + _DAY, forward=False, origin=start):
                end = min(end, cursor)
                if end <= begin:
                    continue
                if remaining <= end - begin:
                    return end - remaining
                remaining -= end - begin
                cursor = begin
        raise BusinessTimeUnreachable(self._unreachable(start, seconds))

    def elapsed(self, start: datetime, end: datetime) -> float:
        """Return the business seconds between two instants (0 when `end` is not after `start`)."""
        _aware(start, "start")
        _aware(end, "end")
        if end <= start:
            return 0.0
        if self._always_open:
            return (end - start).total_seconds()
        total = timedelta(0)
        cursor = start
        last_day = self._local_date(end) + _DAY
        day = self._local_date(start) - _DAY
        while day <= last_day:
            for begin, finish in self._day_intervals(day):
                begin, finish = max(begin, cursor), min(finish, end)
                if finish > begin:
                    total += finish - begin
                    cursor = finish
            day += _DAY
        return total.total_seconds()

    def _local_date(self, at: datetime) -> date:
        return at.astimezone(self._zone).date()

    def _day_intervals_around(self, at: datetime) -> Iterator[Interval]:
        day = self._local_date(at)
        for candidate in (day - _DAY, day, day + _DAY):
            yield from self._day_intervals(candidate)

    def _intervals(self, first_day: date, *, forward: bool, origin: datetime) -> Iterator[Interval]:
        """Yield the open intervals of successive local days, giving up `MAX_SEARCH_DAYS` after `origin`."""
        step = _DAY if forward else -_DAY
        day = first_day
        limit = self._local_date(origin) + step * MAX_SEARCH_DAYS
        while (day <= limit) if forward else (day >= limit):
            intervals = self._day_intervals(day)
            yield from intervals if forward else reversed(intervals)
            day += step

    def _day_intervals(self, day: date) -> list[Interval]:
        """Return one local day's open intervals as UTC instants, sorted and merged."""
        if day in self._closed_days:
            return []
        wall = self.hours.get(WEEKDAYS[day.weekday()])
        if not wall:
            return []
        merged: list[Interval] = []
        for start, end in wall:
            begin = self._to_utc(day, start, last=False)
            if end == _MIDNIGHT:
                finish = self._to_utc(day + _DAY, _MIDNIGHT, last=False)
            else:
                finish = self._to_utc(day, end, last=True)
            if finish <= begin:
                continue
            if merged and begin <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], finish))
            else:
                merged.append((begin, finish))
        return merged

    def _to_utc(self, day: date, wall: time, *, last: bool) -> datetime:
        """Return the UTC instant of a local wall-clock time (its last occurrence if `last`)."""
        naive = datetime.combine(day, wall)
        instant = naive.replace(tzinfo=self._zone, fold=1 if last else 0).astimezone(UTC)
        if instant.astimezone(self._zone).replace(tzinfo=None, fold=0) == naive:
            return instant
        # The clocks jumped over this wall time; the interval boundary is the instant of the jump.
        early = naive.replace(tzinfo=self._zone, fold=1).astimezone(UTC)
        late = naive.replace(tzinfo=self._zone, fold=0).astimezone(UTC)
        low, high = min(early, late), max(early, late)
        offset_after = high.astimezone(self._zone).utcoffset()
        while high - low > timedelta(microseconds=1):
            middle = low + (high - low) / 2
            if middle.astimezone(self._zone).utcoffset() == offset_after:
                high = middle
            else:
                low = middle
        return high

    def _unreachable(self, start: datetime, seconds: float | None = None) -> str:
        wanted = "open time" if seconds is None else f"{seconds:g} s of business time"
        return (
            f"calendar {self.id!r} does not reach {wanted} from {start.isoformat()} "
            f"within {MAX_SEARCH_DAYS} days; it is open too rarely"
        )


ALWAYS_OPEN = BusinessCalendar(
    id="24x7",
    name="Always open",
    timezone="UTC",
    hours={day: [(_MIDNIGHT, _MIDNIGHT)] for day in WEEKDAYS},
)
"""The built-in calendar that is open every instant (the default of an SLA policy)."""
