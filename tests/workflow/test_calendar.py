"""Business-day arithmetic: weekends, holidays, closures, DST, pathological configs."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays
import pytest
from abuse_desk.core.config import ConfigError, WorkflowConfig
from abuse_desk.workflow import calendar as calendar_mod
from abuse_desk.workflow.calendar import BusinessCalendar
from hypothesis import given, settings
from hypothesis import strategies as st

NY = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
CAIRO = ZoneInfo("Africa/Cairo")

US = BusinessCalendar("America/New_York", "US")
PLAIN = BusinessCalendar("America/New_York")  # weekends only


def ny(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=NY)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# --- weekdays and weekends -----------------------------------------------------------------------

def test_weekday_plus_five_is_same_time_a_week_later() -> None:
    assert US.add_business_days(ny(2026, 11, 2, 10), 5) == utc(2026, 11, 9, 15)  # Mon -> Mon


def test_wednesday_plus_five_and_friday_plus_one() -> None:
    # US: Thu 5, Fri 6, Mon 9, Tue 10, Wed 11 Veterans Day, Thu 12
    assert US.add_business_days(ny(2026, 11, 4, 10), 5) == utc(2026, 11, 12, 15)
    assert PLAIN.add_business_days(ny(2026, 11, 4, 10), 5) == utc(2026, 11, 11, 15)  # Wed -> Wed
    assert US.add_business_days(ny(2026, 11, 6, 16), 1) == utc(2026, 11, 9, 21)  # Fri -> Mon


def test_saturday_start_clock_starts_monday_midnight() -> None:
    # No holidays: clock starts Mon 11-09 00:00, five business days later is Mon 11-16 00:00.
    assert PLAIN.add_business_days(ny(2026, 11, 7, 10), 5) == utc(2026, 11, 16, 5)
    # US: Veterans Day (Wed 11-11) is skipped too, so Tue 11-17 00:00 EST.
    assert US.add_business_days(ny(2026, 11, 7, 10), 5) == utc(2026, 11, 17, 5)


def test_sunday_start_likewise() -> None:
    assert PLAIN.add_business_days(ny(2026, 11, 8, 23, 59), 5) == utc(2026, 11, 16, 5)
    assert PLAIN.add_business_days(ny(2026, 11, 8, 0, 0), 1) == utc(2026, 11, 10, 5)


def test_zero_days() -> None:
    assert PLAIN.add_business_days(ny(2026, 11, 2, 10, 7), 0) == utc(2026, 11, 2, 15, 7)
    assert PLAIN.add_business_days(ny(2026, 11, 7, 10), 0) == utc(2026, 11, 9, 5)
    with pytest.raises(ValueError, match="days must be >= 0"):
        PLAIN.add_business_days(ny(2026, 11, 2, 10), -1)


# --- holidays and closures -----------------------------------------------------------------------

def test_thanksgiving_with_closure_of_the_day_after() -> None:
    cal = BusinessCalendar("America/New_York", "US", closures=frozenset({date(2026, 11, 27)}))
    # Wed 25 = 1, Thu 26 holiday, Fri 27 closure, Mon 30 = 2, Dec 1 = 3, Dec 2 = 4, Dec 3 = 5
    assert cal.add_business_days(ny(2026, 11, 24, 10), 5) == utc(2026, 12, 3, 15)


def test_thanksgiving_texas_friday_after_is_a_holiday() -> None:
    cal = BusinessCalendar("America/New_York", "US", "TX")
    assert cal.add_business_days(ny(2026, 11, 24, 10), 5) == utc(2026, 12, 3, 15)


def test_thanksgiving_national_only() -> None:
    # Wed 25 = 1, Thu 26 holiday, Fri 27 = 2, Mon 30 = 3, Dec 1 = 4, Dec 2 = 5
    assert US.add_business_days(ny(2026, 11, 24, 10), 5) == utc(2026, 12, 2, 15)


def test_no_country_means_weekends_only() -> None:
    # Wed 25, Thu 26, Fri 27, Mon 30, Tue Dec 1
    assert PLAIN.add_business_days(ny(2026, 11, 24, 10), 5) == utc(2026, 12, 1, 15)
    assert PLAIN.is_business_day(date(2026, 11, 26))
    assert PLAIN.is_business_day(date(2026, 12, 25))


def test_closed_reason() -> None:
    cal = BusinessCalendar("America/New_York", "US", closures=frozenset({date(2026, 11, 27)}))
    assert cal.closed_reason(date(2026, 11, 26)) == "Thanksgiving Day"
    assert cal.closed_reason(date(2026, 11, 27)) == "desk closure"
    assert cal.closed_reason(date(2026, 11, 28)) == "Saturday"
    assert cal.closed_reason(date(2026, 11, 29)) == "Sunday"
    assert cal.closed_reason(date(2026, 11, 25)) is None
    assert cal.closed_reason(date(2026, 7, 3)) == "Independence Day (observed)"
    texas = BusinessCalendar("America/New_York", "US", "TX")
    assert texas.closed_reason(date(2026, 11, 27)) == "Friday After Thanksgiving"
    assert US.closed_reason(date(2026, 11, 27)) is None
    assert not cal.is_business_day(date(2026, 11, 26))
    assert cal.is_business_day(date(2026, 11, 25))


def test_holidays_are_built_once_per_year(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[object] = []
    real = holidays.country_holidays

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(kwargs.get("years"))
        return real(*args, **kwargs)  # type: ignore[arg-type]

    calendar_mod._holidays_for.cache_clear()
    monkeypatch.setattr(calendar_mod.holidays, "country_holidays", counting)
    for hour in range(24):
        US.add_business_days(ny(2026, 12, 28, hour), 5)  # crosses into 2027
    assert sorted(calls) == [2026, 2027]  # type: ignore[type-var]


# --- DST -----------------------------------------------------------------------------------------

def test_new_york_fall_back_keeps_wall_clock() -> None:
    start = ny(2026, 10, 30, 10)
    assert start == utc(2026, 10, 30, 14)  # EDT
    assert US.add_business_days(start, 5) == utc(2026, 11, 6, 15)  # Fri 10:00 EST


def test_berlin_fall_back_keeps_wall_clock() -> None:
    cal = BusinessCalendar("Europe/Berlin", "DE")
    start = datetime(2026, 10, 23, 10, tzinfo=BERLIN)
    assert start == utc(2026, 10, 23, 8)  # CEST
    assert cal.add_business_days(start, 1) == utc(2026, 10, 26, 9)  # Mon 10:00 CET


def test_new_york_spring_forward_keeps_wall_clock() -> None:
    assert US.add_business_days(ny(2026, 3, 6, 10), 1) == utc(2026, 3, 9, 14)  # Mon 10:00 EDT
    assert US.add_business_days(ny(2026, 3, 5, 2, 30), 1) == utc(2026, 3, 6, 7, 30)  # no gap


def test_local_to_utc_gap_moves_forward_by_gap_length() -> None:
    # America/New_York 2026-03-08: 02:00 EST -> 03:00 EDT.
    day = date(2026, 3, 8)
    assert US.local_to_utc(day, time(1, 59)) == utc(2026, 3, 8, 6, 59)  # 01:59 EST
    assert US.local_to_utc(day, time(2, 0)) == utc(2026, 3, 8, 7, 0)  # = 03:00 EDT
    assert US.local_to_utc(day, time(2, 30)) == utc(2026, 3, 8, 7, 30)  # = 03:30 EDT
    assert US.local_to_utc(day, time(3, 0)) == utc(2026, 3, 8, 7, 0)  # 03:00 EDT
    assert US.local_to_utc(day, time(2, 30)).astimezone(NY).time() == time(3, 30)


def test_local_to_utc_ambiguous_takes_earlier() -> None:
    # America/New_York 2026-11-01: 01:00-02:00 happens twice (EDT, then EST).
    day = date(2026, 11, 1)
    assert US.local_to_utc(day, time(1, 30)) == utc(2026, 11, 1, 5, 30)  # EDT
    assert US.local_to_utc(day, time(1, 30, fold=1)) == utc(2026, 11, 1, 5, 30)


def test_cairo_deadline_in_midnight_gap_on_a_business_day() -> None:
    # Africa/Cairo 2026-04-24 (a Friday): 00:00 EET -> 01:00 EEST.
    cal = BusinessCalendar("Africa/Cairo")
    # Sat 18 -> clock starts Mon 20 00:00; Tue 21, Wed 22, Thu 23, Fri 24 00:00 -> 01:00 EEST
    assert cal.add_business_days(datetime(2026, 4, 18, 10, tzinfo=CAIRO), 4) == utc(
        2026, 4, 23, 22)
    # Thu 00:30 EET + 1 -> Fri 00:30 (in the gap) -> 01:30 EEST
    assert cal.add_business_days(datetime(2026, 4, 23, 0, 30, tzinfo=CAIRO), 1) == utc(
        2026, 4, 23, 22, 30)


def test_cairo_deadline_in_ambiguous_hour_takes_earlier() -> None:
    # Africa/Cairo 2026-10-29 (Thursday): 24:00 EEST -> 23:00 EET, so 23:xx happens twice.
    cal = BusinessCalendar("Africa/Cairo")
    start = datetime(2026, 10, 28, 23, 30, tzinfo=CAIRO)
    assert start == utc(2026, 10, 28, 20, 30)
    assert cal.add_business_days(start, 1) == utc(2026, 10, 29, 20, 30)  # 23:30 EEST
    second = datetime(2026, 10, 29, 23, 30, fold=1, tzinfo=CAIRO)
    # (aware datetimes in a fold never compare equal across zones, PEP 495: go through UTC)
    assert second.astimezone(UTC) == utc(2026, 10, 29, 21, 30)  # 23:30 EET
    assert cal.add_business_days(second, 1) == utc(2026, 10, 30, 21, 30)


# --- time zones in and out -----------------------------------------------------------------------

def test_result_is_utc() -> None:
    result = US.add_business_days(utc(2026, 11, 2, 15), 5)
    assert result == utc(2026, 11, 9, 15)
    assert result.tzinfo is UTC


def test_local_date_is_the_calendars_not_the_inputs() -> None:
    # Tue 00:30 in Tokyo is Mon 10:30 in New York: Mon + 5 = next Mon 10:30 EST.
    start = datetime(2026, 11, 3, 0, 30, tzinfo=ZoneInfo("Asia/Tokyo"))
    assert US.add_business_days(start, 5) == utc(2026, 11, 9, 15, 30)


def test_naive_start_is_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        US.add_business_days(datetime(2026, 11, 2, 10), 5)
    with pytest.raises(ValueError, match="timezone-aware"):
        US.business_days_between(datetime(2026, 11, 2, 10), ny(2026, 11, 9))


# --- pathological configs ------------------------------------------------------------------------

def _weekdays(first: date, last: date) -> frozenset[date]:
    days = (first + timedelta(days=i) for i in range((last - first).days + 1))
    return frozenset(d for d in days if d.weekday() < 5)


def test_year_of_closures_raises() -> None:
    cal = BusinessCalendar("America/New_York",
                           closures=_weekdays(date(2027, 1, 1), date(2028, 6, 30)))
    with pytest.raises(ValueError, match="no business day within a year after 2026-12-31"):
        cal.add_business_days(ny(2026, 12, 31, 10), 1)
    with pytest.raises(ValueError, match=r"check workflow.closure_dates / holiday settings"):
        cal.add_business_days(ny(2027, 3, 1, 10), 0)  # closed start, no next business day


def test_business_day_366_days_later_is_still_found() -> None:
    start = date(2026, 12, 30)  # Wed; start + 366 days = Fri 2027-12-31
    closures = _weekdays(start + timedelta(days=1), start + timedelta(days=365))
    cal = BusinessCalendar("America/New_York", closures=closures)
    assert cal.add_business_days(ny(2026, 12, 30, 10), 1) == utc(2027, 12, 31, 15)
    blocked = BusinessCalendar("America/New_York", closures=closures | {date(2027, 12, 31)})
    with pytest.raises(ValueError, match="no business day within a year"):
        blocked.add_business_days(ny(2026, 12, 30, 10), 1)


# --- construction --------------------------------------------------------------------------------

def test_from_config() -> None:
    cfg = WorkflowConfig(time_zone="America/Chicago", holiday_country="US",
                         holiday_subdivision="TX", closure_dates=["2026-12-24", "2026-12-31"])
    cal = BusinessCalendar.from_config(cfg)
    assert cal == BusinessCalendar("America/Chicago", "US", "TX",
                                   frozenset({date(2026, 12, 24), date(2026, 12, 31)}))
    assert cal.zone == ZoneInfo("America/Chicago")
    assert cal.closed_reason(date(2026, 12, 31)) == "desk closure"


@pytest.mark.parametrize(("overrides", "message"), [
    ({"time_zone": "Mars/Olympus_Mons"}, "workflow.time_zone"),
    ({"time_zone": ""}, "workflow.time_zone"),
    ({"holiday_country": "XX"}, "workflow.holiday_country"),
    ({"holiday_subdivision": "ZZ"}, "ZZ"),
    ({"holiday_country": "", "holiday_subdivision": "TX"}, "without a country"),
    ({"closure_dates": ["2026-13-01"]}, "workflow.closure_dates"),
])
def test_from_config_rejects(overrides: dict[str, object], message: str) -> None:
    cfg = WorkflowConfig(**overrides)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=message):
        BusinessCalendar.from_config(cfg)


def test_direct_construction_validates() -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        BusinessCalendar("Mars/Olympus_Mons")
    with pytest.raises(ValueError, match="unknown holiday country"):
        BusinessCalendar("UTC", "XX")


# --- business_days_between -----------------------------------------------------------------------

def test_business_days_between() -> None:
    texas = BusinessCalendar("America/New_York", "US", "TX")
    start, end = ny(2026, 11, 24, 10), ny(2026, 12, 3, 10)
    assert texas.business_days_between(start, end) == 5
    assert texas.business_days_between(end, start) == -5
    assert texas.business_days_between(start, ny(2026, 11, 24, 23, 59)) == 0
    assert texas.business_days_between(start, utc(2026, 11, 25, 4, 59)) == 0  # 23:59 EST
    assert texas.business_days_between(start, utc(2026, 11, 25, 5, 0)) == 1  # Wed 00:00 EST
    assert texas.business_days_between(start, ny(2026, 11, 29, 12)) == 1  # holiday, closed, wkd
    assert PLAIN.business_days_between(ny(2026, 11, 7, 10), ny(2026, 11, 9, 0)) == 1


# --- property ------------------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(
    start=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31, 23, 59),
                       timezones=st.sampled_from([UTC, NY, ZoneInfo("Asia/Tokyo")]),
                       allow_imaginary=False),
    days=st.integers(min_value=1, max_value=10),
)
def test_property_n_business_days_later(start: datetime, days: int) -> None:
    result = US.add_business_days(start, days)
    assert result.tzinfo is UTC
    assert result > start
    local_start, local_result = start.astimezone(NY), result.astimezone(NY)
    assert US.is_business_day(local_result.date())
    clock_day = local_start.date()
    if US.is_business_day(clock_day):
        assert local_result.time() == local_start.time()
    else:
        assert local_result.time() == time(0)
        clock_day += timedelta(days=1)
        while not US.is_business_day(clock_day):
            clock_day += timedelta(days=1)
    between = [clock_day + timedelta(days=i)
               for i in range(1, (local_result.date() - clock_day).days + 1)]
    assert sum(US.is_business_day(d) for d in between) == days
