"""Business-day arithmetic for the mitigation timeline.

A business day is a local date that is not a Saturday or Sunday, not a public holiday of
``workflow.holiday_country`` / ``workflow.holiday_subdivision`` (as the ``holidays`` package
gives them, observed days included, e.g. "Independence Day (observed)"), and not one of
``workflow.closure_dates``.

``BusinessCalendar.add_business_days(start, n)``:

* ``start`` must be timezone-aware (a naive one raises ``ValueError``); the result is aware, in UTC.
* All counting happens in the calendar's local time (``workflow.time_zone``).
* If the start's local date is a business day, the result is the same local wall-clock time on
  the n-th business day after that date: Wednesday 10:00 + 5 = next Wednesday 10:00, Friday
  16:00 + 1 = Monday 16:00.
* If the start's local date is not a business day (weekend, holiday, closure), the clock starts at
  00:00 local of the next business day and the result is 00:00 local of the n-th business day
  after that one: Saturday 10:00 + 5 = Monday 00:00 a week after the following Monday, so the
  customer gets five business days in full.
* ``n == 0`` gives the start itself, or 00:00 of the next business day; ``n < 0`` is an error.
* Across a DST change the local wall-clock time is kept, so the result's UTC offset may differ
  from the start's (Fri 10:00 EDT + 5 = Fri 10:00 EST).
* A wall time in a spring-forward gap is read with the offset in force before the gap (PEP 495
  ``fold=0``) and normalised through UTC, i.e. it moves forward by the length of the gap:
  02:30 on 2026-03-08 in America/New_York (gap 02:00-03:00) becomes 03:30 EDT (07:30 UTC); a
  time at the start of the gap lands on its end (00:00 -> 01:00 in Africa/Cairo on 2026-04-24).
* An ambiguous wall time (fall-back) takes the earlier instant (``fold=0``, the pre-change offset).
* If no business day is found within 366 days while stepping, ``ValueError`` is raised (a
  pathological closure/holiday configuration).

``business_days_between(start, end)`` counts the business days after the start's local date up
to and including the end's local date ("N business days left"); negative if end's date is earlier.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from types import MappingProxyType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

from ..core.config import ConfigError, WorkflowConfig

MAX_SEARCH_DAYS = 366
_WEEKEND = {5: "Saturday", 6: "Sunday"}


@functools.lru_cache(maxsize=256)
def _holidays_for(country: str, subdivision: str, year: int) -> Mapping[date, str]:
    """The holidays of one year (date -> name, several names joined by "; "), built once."""
    found = holidays.country_holidays(country, subdiv=subdivision or None, years=year)
    return MappingProxyType({day: found[day] for day in found})


@functools.lru_cache(maxsize=64)
def _load_zone(key: str) -> ZoneInfo:
    """The zone for *key*; ``ValueError`` for an unknown or malformed key."""
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {key!r}") from exc


@dataclass(frozen=True)
class BusinessCalendar:
    """Weekends, public holidays and desk closures in one time zone."""

    time_zone: str
    country: str = ""
    subdivision: str = ""
    closures: frozenset[date] = frozenset()

    def __post_init__(self) -> None:
        _load_zone(self.time_zone)
        if self.subdivision and not self.country:
            raise ValueError(f"holiday subdivision {self.subdivision!r} without a country")
        if self.country:
            try:
                holidays.country_holidays(self.country, subdiv=self.subdivision or None)
            except NotImplementedError as exc:
                raise ValueError(f"unknown holiday country/subdivision: {exc}") from exc

    @classmethod
    def from_config(cls, cfg: WorkflowConfig) -> BusinessCalendar:
        """The calendar described by the ``[workflow]`` settings; ``ConfigError`` if unusable."""
        closures: set[date] = set()
        for raw in cfg.closure_dates:
            try:
                closures.add(date.fromisoformat(raw))
            except (TypeError, ValueError) as exc:
                raise ConfigError(
                    f"workflow.closure_dates: {raw!r} is not a YYYY-MM-DD date") from exc
        try:
            _load_zone(cfg.time_zone)
        except ValueError as exc:
            raise ConfigError(f"workflow.time_zone: unknown time zone {cfg.time_zone!r}") from exc
        try:
            return cls(cfg.time_zone, cfg.holiday_country, cfg.holiday_subdivision,
                       frozenset(closures))
        except ValueError as exc:
            raise ConfigError(
                f"workflow.holiday_country / workflow.holiday_subdivision: {exc}") from exc

    @property
    def zone(self) -> ZoneInfo:
        """The calendar's time zone."""
        return _load_zone(self.time_zone)

    def closed_reason(self, day: date) -> str | None:
        """Why *day* is not a business day ("Saturday", a holiday's name, "desk closure"),
        or ``None`` if it is one."""
        weekend = _WEEKEND.get(day.weekday())
        if weekend is not None:
            return weekend
        if self.country:
            name = _holidays_for(self.country, self.subdivision, day.year).get(day)
            if name is not None:
                return name
        if day in self.closures:
            return "desk closure"
        return None

    def is_business_day(self, day: date) -> bool:
        """Whether the desk works on *day*."""
        return self.closed_reason(day) is None

    def local_to_utc(self, day: date, wall: time) -> datetime:
        """The UTC instant of local wall time *wall* on *day*: ``fold=0`` (earlier instant when
        ambiguous; a time in a gap moves forward by the gap's length)."""
        local = datetime.combine(day, wall.replace(tzinfo=None, fold=0), tzinfo=self.zone)
        return local.astimezone(UTC)

    def add_business_days(self, start: datetime, days: int) -> datetime:
        """*start* plus *days* business days, in UTC (rules in the module docstring)."""
        if days < 0:
            raise ValueError(f"days must be >= 0, got {days}")
        local = self._local(start)
        day, wall = local.date(), local.time()
        if not self.is_business_day(day):
            day, wall = self._next_business_day(day), time(0)
        for _ in range(days):
            day = self._next_business_day(day)
        return self.local_to_utc(day, wall)

    def business_days_between(self, start: datetime, end: datetime) -> int:
        """Business days after *start*'s local date up to and including *end*'s local date
        (negative, counted the other way, if *end*'s date is the earlier)."""
        first, last = self._local(start).date(), self._local(end).date()
        sign = 1
        if last < first:
            first, last, sign = last, first, -1
        count = 0
        day = first
        while day < last:
            day += timedelta(days=1)
            count += self.is_business_day(day)
        return sign * count

    def _local(self, moment: datetime) -> datetime:
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError(f"timezone-aware datetime required, got naive {moment.isoformat()}")
        return moment.astimezone(self.zone)

    def _next_business_day(self, day: date) -> date:
        """The first business day strictly after *day*."""
        for offset in range(1, MAX_SEARCH_DAYS + 1):
            candidate = day + timedelta(days=offset)
            if self.is_business_day(candidate):
                return candidate
        raise ValueError(
            f"no business day within a year after {day.isoformat()}: "
            "check workflow.closure_dates / holiday settings")
