"""Validity windows of customers' resources: times in UTC and as POSIX floats.

A resource is valid in ``[valid_from, valid_until)``; ``None`` is open, which the index stores
as ``NO_START`` / ``NO_END`` (-inf / inf) so that a lookup compares numbers only. Naive
datetimes (SQLite, import files) are UTC already.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

NO_START, NO_END = -math.inf, math.inf


def as_utc(value: datetime | None) -> datetime | None:
    """*value* in UTC; naive datetimes (SQLite, import files) are UTC already."""
    if value is None:
        return None
    return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)


def ts(value: datetime | None, default: float) -> float:
    """POSIX time of *value* (naive: UTC), or *default* when there is none."""
    if value is None:
        return default
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def iso(value: datetime | float | None) -> str | None:
    """UTC ISO 8601 ending in Z (a float is a POSIX time; infinities are None)."""
    if value is None:
        return None
    if isinstance(value, float):
        if math.isinf(value):
            return None
        value = datetime.fromtimestamp(value, UTC)
    text = value.astimezone(UTC).replace(tzinfo=None).isoformat()
    return text + "Z"


@lru_cache(maxsize=4096)
def window(start: float, end: float) -> str:
    """A window of POSIX times as people read it ("from ... until ...", or "always")."""
    parts = [f"from {iso(start)}" if start != NO_START else "",
             f"until {iso(end)}" if end != NO_END else ""]
    return " ".join(p for p in parts if p) or "always"


def stamp(value: datetime | str, _utc: Any = UTC) -> float:
    """POSIX time of a datetime or of SQLite's text for one (naive: UTC)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return (value if value.tzinfo is not None else value.replace(tzinfo=_utc)).timestamp()


def when(at: datetime) -> float:
    """POSIX time of an incident time *at* (naive: UTC)."""
    return stamp(at)
