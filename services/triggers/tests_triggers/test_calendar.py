"""Business calendars: when they are open, and how much business time lies between instants."""

import time as clock
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError
from triggers.calendar import (
    ALWAYS_OPEN,
    WEEKDAYS,
    BusinessCalendar,
    BusinessTimeUnreachable,
    NaiveDatetimeError,
)

STOCKHOLM = ZoneInfo("Europe/Stockholm")
HOUR = 3600.0


def local(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=STOCKHOLM)


def office(**changes) -> BusinessCalendar:
    """Mon-Fri 08-17 in Stockholm, closed on Christmas Day and Boxing Day 2024."""
    fields = {
        "id": "office",
        "name": "Office hours",
        "timezone": "Europe/Stockholm",
        "hours": {day: [(time(8), time(17))] for day in ("mon", "tue", "wed", "thu", "fri")},
        "holidays": [date(2024, 12, 25), date(2024, 12, 26)],
    }
    fields.update(changes)
    return BusinessCalendar(**fields)


def sundays_only(hours) -> BusinessCalendar:
    return BusinessCalendar(id="sundays", name="Sundays", timezone="Europe/Stockholm", hours={"sun": hours})


# --- open or closed ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "is_open"),
    [
        (local(2024, 11, 4, 7, 59, 59), False),  # Monday just before opening
        (local(2024, 11, 4, 8, 0), True),  # Monday at opening
        (local(2024, 11, 4, 16, 59, 59), True),
        (local(2024, 11, 4, 17, 0), False),  # closing time is already closed
        (local(2024, 11, 8, 12, 0), True),  # Friday
        (local(2024, 11, 9, 12, 0), False),  # Saturday
        (local(2024, 11, 10, 12, 0), False),  # Sunday
        (local(2024, 12, 25, 12, 0), False),  # holiday on a Wednesday
        (local(2024, 12, 27, 12, 0), True),  # the Friday after
    ],
)
def test_office_is_open_only_within_its_weekday_hours_and_not_on_holidays(at, is_open):
    assert office().is_open(at) is is_open


def test_is_open_reads_instants_in_any_time_zone_in_the_calendars_own_zone():
    # 07:30 UTC is 08:30 in Stockholm in winter, 09:30 in summer; 07:30 in New York is 13:30 in Stockholm.
    assert office().is_open(datetime(2024, 11, 4, 7, 30, tzinfo=UTC))
    assert not office().is_open(datetime(2024, 11, 4, 6, 30, tzinfo=UTC))
    assert office().is_open(datetime(2024, 11, 4, 7, 30, tzinfo=ZoneInfo("America/New_York")))


def test_a_holiday_is_a_whole_local_day_even_where_utc_still_shows_the_day_before():
    calendar = office(hours={day: [(time(0), time(0))] for day in WEEKDAYS})

    assert calendar.is_open(datetime(2024, 12, 24, 22, 59, tzinfo=UTC))  # 23:59 on the 24th in Stockholm
    assert not calendar.is_open(datetime(2024, 12, 24, 23, 0, tzinfo=UTC))  # 00:00 on the 25th in Stockholm


def test_next_open_after_friday_closing_is_monday_morning():
    opens = office().next_open(local(2024, 11, 8, 17, 30))

    assert opens == local(2024, 11, 11, 8, 0)
    assert opens.tzinfo == UTC


def test_next_open_of_an_open_instant_is_that_instant():
    assert office().next_open(local(2024, 11, 5, 10, 15)) == local(2024, 11, 5, 10, 15)


def test_next_open_skips_holidays():
    assert office().next_open(local(2024, 12, 24, 17, 0)) == local(2024, 12, 27, 8, 0)


def test_the_always_open_calendar_is_open_at_any_instant():
    assert ALWAYS_OPEN.id == "24x7"
    assert ALWAYS_OPEN.is_open(datetime(2024, 12, 25, 3, 0, tzinfo=UTC))
    christmas_night = datetime(2024, 12, 25, 3, 0, tzinfo=UTC)

    assert ALWAYS_OPEN.add(christmas_night, 90 * 60) == christmas_night + timedelta(minutes=90)


# --- adding and measuring business time -------------------------------------------------------------


def test_two_hours_from_friday_at_four_is_monday_at_nine():
    due = office().add(local(2024, 11, 8, 16, 0), 2 * HOUR)

    assert due == local(2024, 11, 11, 9, 0)
    assert due.tzinfo == UTC


def test_adding_over_a_night_continues_next_morning():
    assert office().add(local(2024, 11, 4, 16, 0), 3 * HOUR) == local(2024, 11, 5, 10, 0)


def test_adding_from_a_closed_instant_starts_at_the_next_opening():
    assert office().add(local(2024, 11, 9, 12, 0), 30 * 60) == local(2024, 11, 11, 8, 30)


def test_adding_exactly_the_rest_of_the_day_ends_at_closing_time():
    assert office().add(local(2024, 11, 8, 16, 0), HOUR) == local(2024, 11, 8, 17, 0)


def test_adding_over_christmas_skips_both_holidays():
    assert office().add(local(2024, 12, 24, 16, 0), 2 * HOUR) == local(2024, 12, 27, 9, 0)


def test_adding_negative_time_counts_back_through_closed_time():
    assert office().add(local(2024, 11, 11, 9, 0), -2 * HOUR) == local(2024, 11, 8, 16, 0)


def test_elapsed_over_a_weekend_counts_only_open_hours():
    assert office().elapsed(local(2024, 11, 8, 16, 0), local(2024, 11, 11, 9, 0)) == 2 * HOUR


def test_elapsed_over_christmas_leaves_out_the_holidays():
    # Mon 23 and Tue 24 from 08:00 = 18 h; 25 and 26 closed; Fri 27 until 10:00 = 2 h.
    assert office().elapsed(local(2024, 12, 23, 8, 0), local(2024, 12, 27, 10, 0)) == 20 * HOUR


def test_elapsed_is_zero_when_the_end_is_not_after_the_start():
    assert office().elapsed(local(2024, 11, 5, 12, 0), local(2024, 11, 5, 12, 0)) == 0
    assert office().elapsed(local(2024, 11, 5, 12, 0), local(2024, 11, 4, 12, 0)) == 0


def test_elapsed_undoes_add_from_open_and_closed_starts():
    calendar = office(
        hours={"mon": [(time(8), time(12)), (time(13), time(17))], "wed": [(time(9, 30), time(0))]},
    )
    for start in (local(2024, 12, 23, 11, 0), local(2024, 12, 28, 3, 0), local(2025, 3, 26, 23, 0)):
        for seconds in (1.5, 900, 4 * HOUR, 30 * HOUR, 200 * HOUR):
            end = calendar.add(start, seconds)
            assert calendar.elapsed(start, end) == pytest.approx(seconds, abs=1e-6)
            assert calendar.add(end, -seconds) <= end


def test_a_lunch_break_between_two_intervals_is_not_counted():
    calendar = office(hours={"mon": [(time(8), time(12)), (time(13), time(17))]})

    assert calendar.add(local(2024, 11, 4, 11, 0), 2 * HOUR) == local(2024, 11, 4, 14, 0)


# --- daylight saving time ---------------------------------------------------------------------------


def test_business_hours_stay_local_across_spring_forward():
    # Friday 29 March 2024 is still CET (UTC+1); Monday 1 April is CEST (UTC+2).
    due = office().add(local(2024, 3, 29, 16, 0), 2 * HOUR)

    assert due == local(2024, 4, 1, 9, 0)
    assert due == datetime(2024, 4, 1, 7, 0, tzinfo=UTC)


def test_business_hours_stay_local_across_fall_back():
    # Friday 25 October 2024 is CEST (UTC+2); Monday 28 October is CET (UTC+1).
    due = office().add(local(2024, 10, 25, 16, 0), 2 * HOUR)

    assert due == datetime(2024, 10, 28, 8, 0, tzinfo=UTC)


def test_a_whole_day_open_on_the_spring_forward_sunday_lasts_23_hours():
    calendar = sundays_only([("00:00", "24:00")])

    assert calendar.elapsed(local(2024, 3, 30, 12, 0), local(2024, 4, 1, 12, 0)) == 23 * HOUR


def test_a_whole_day_open_on_the_fall_back_sunday_lasts_25_hours():
    calendar = sundays_only([("00:00", "24:00")])

    assert calendar.elapsed(local(2024, 10, 26, 12, 0), local(2024, 10, 28, 12, 0)) == 25 * HOUR


def test_hours_around_the_skipped_hour_are_one_hour_shorter_and_around_the_repeated_hour_one_longer():
    calendar = sundays_only([("01:00", "04:00")])

    assert calendar.elapsed(local(2024, 3, 30, 12, 0), local(2024, 4, 1, 12, 0)) == 2 * HOUR
    assert calendar.elapsed(local(2024, 10, 26, 12, 0), local(2024, 10, 28, 12, 0)) == 4 * HOUR


def test_an_interval_that_falls_entirely_in_the_skipped_hour_is_never_open():
    calendar = sundays_only([("02:10", "02:50"), ("05:00", "06:00")])

    assert calendar.elapsed(local(2024, 3, 30, 12, 0), local(2024, 4, 1, 12, 0)) == HOUR
    assert calendar.next_open(local(2024, 3, 31, 0, 0)) == local(2024, 3, 31, 5, 0)


def test_an_opening_time_the_clocks_skip_opens_at_the_jump():
    calendar = sundays_only([("02:30", "04:00")])

    assert calendar.next_open(local(2024, 3, 31, 0, 0)) == datetime(2024, 3, 31, 1, 0, tzinfo=UTC)  # 03:00 CEST
    assert calendar.elapsed(local(2024, 3, 30, 12, 0), local(2024, 4, 1, 12, 0)) == HOUR


def test_a_closing_time_the_clocks_pass_twice_closes_at_its_second_passing():
    calendar = sundays_only([("00:00", "02:30")])

    # 00:00 CEST to the second 02:30, which is CET: 3.5 hours of real time.
    assert calendar.elapsed(local(2024, 10, 26, 12, 0), local(2024, 10, 28, 12, 0)) == 3.5 * HOUR
    assert not calendar.is_open(datetime(2024, 10, 27, 1, 30, tzinfo=UTC))


def test_adding_across_the_spring_forward_night_on_a_24_hour_local_calendar_counts_real_time():
    calendar = sundays_only([("00:00", "24:00")])
    start = local(2024, 3, 31, 1, 0)  # CET

    assert calendar.add(start, 2 * HOUR) == local(2024, 3, 31, 4, 0)  # CEST: 02:00-03:00 did not happen


# --- long spans -------------------------------------------------------------------------------------


def test_three_months_of_business_time_are_added_and_measured_in_under_50_ms():
    calendar = office()
    start = local(2024, 10, 1, 8, 0)
    seconds = 65 * 9 * HOUR  # 65 working days

    best = float("inf")
    for _ in range(3):
        began = clock.perf_counter()
        end = calendar.add(start, seconds)
        measured = calendar.elapsed(start, end)
        best = min(best, clock.perf_counter() - began)

    assert end == local(2025, 1, 1, 17, 0)  # Oct 23 + Nov 21 + Dec 20 (two holidays) + New Year's Day
    assert measured == seconds
    assert best < 0.050


def test_a_calendar_that_is_practically_never_open_raises_instead_of_searching_forever():
    mondays = [date(2025, 1, 6) + timedelta(weeks=n) for n in range(600)]
    calendar = BusinessCalendar(
        id="rare", name="Rare", timezone="UTC", hours={"mon": [(time(8), time(9))]}, holidays=mondays
    )

    with pytest.raises(BusinessTimeUnreachable, match="rare"):
        calendar.add(datetime(2025, 1, 1, tzinfo=UTC), 60)
    with pytest.raises(BusinessTimeUnreachable):
        calendar.next_open(datetime(2025, 1, 1, tzinfo=UTC))


def test_adding_more_than_ten_years_of_business_time_raises():
    with pytest.raises(BusinessTimeUnreachable):
        office().add(local(2025, 1, 1, 8, 0), 11 * 260 * 9 * HOUR)


# --- invalid calendars and inputs -------------------------------------------------------------------


def error_of(**changes) -> str:
    with pytest.raises(ValidationError) as caught:
        office(**changes)
    return str(caught.value)


def test_an_unknown_time_zone_is_refused_by_name():
    message = error_of(timezone="Europe/Stockholmm")

    assert "timezone" in message
    assert "Europe/Stockholmm" in message


def test_overlapping_intervals_are_refused_naming_the_day():
    message = error_of(hours={"mon": [(time(8), time(17))], "tue": [(time(8), time(12)), (time(11), time(17))]})

    assert "hours" in message
    assert "tue" in message
    assert "overlap" in message


def test_unsorted_intervals_are_refused_naming_the_day():
    assert "wed" in error_of(hours={"wed": [(time(13), time(17)), (time(8), time(12))]})


def test_an_interval_that_ends_before_it_starts_is_refused_naming_the_day():
    message = error_of(hours={"fri": [(time(17), time(8))]})

    assert "fri" in message
    assert "17:00-08:00" in message


def test_a_calendar_without_any_hours_is_refused():
    message = error_of(hours={"mon": [], "tue": []})

    assert "hours" in message
    assert "never be open" in message


def test_an_unknown_weekday_is_refused():
    assert "monday" in error_of(hours={"monday": [(time(8), time(17))]})


def test_an_id_that_is_not_a_slug_is_refused():
    assert "id" in error_of(id="Office Hours")


def test_24_00_is_read_as_the_following_midnight_and_survives_a_json_round_trip():
    calendar = BusinessCalendar.model_validate(
        {"id": "late", "name": "Late", "timezone": "UTC", "hours": {"sat": [["18:00", "24:00"]]}}
    )

    assert calendar.elapsed(datetime(2025, 1, 4, tzinfo=UTC), datetime(2025, 1, 6, tzinfo=UTC)) == 6 * HOUR
    assert BusinessCalendar.model_validate(calendar.model_dump(mode="json")) == calendar


def test_naive_datetimes_are_refused():
    with pytest.raises(NaiveDatetimeError):
        office().is_open(datetime(2024, 11, 4, 9, 0))
    with pytest.raises(NaiveDatetimeError):
        office().elapsed(local(2024, 11, 4, 9, 0), datetime(2024, 11, 4, 10, 0))
