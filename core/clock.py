"""The desk's one source of "now".

Everything that reads the current wall-clock time (a message's arrival, a deadline, a token's
expiry, a fee's month, a customer's validity window, a cached resolver answer) takes it from a
``Clock``: a callable that returns an aware UTC datetime. The composition root builds one
(``system_clock``, or ``fixed_clock`` for ``--now``) and passes it down; tests pass their own.
Nothing else calls ``datetime.now``, ``time.time`` or the database's ``now()`` for a
decision. Durations (timeouts, rate windows, time budgets) are measured with
``time.monotonic``, which no wall-clock change can move.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """The wall clock of this host, in UTC."""
    return datetime.now(UTC)


def fixed_clock(at: datetime) -> Clock:
    """A clock that stands still at *at* (``--now``; an instant for a one-shot command)."""
    instant = as_aware_utc(at)
    return lambda: instant


def as_aware_utc(value: datetime) -> datetime:
    """*value* as an aware UTC datetime (a naive one is taken to be UTC already)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def parse_instant(text: str) -> datetime:
    """An ISO 8601 instant ("2026-12-03T15:00:00Z", "2026-12-03 10:00-05:00"); one without
    a zone is UTC. ValueError says what was expected."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{text!r} is not ISO 8601 (e.g. 2026-03-01T12:00:00Z or "
                         "2026-03-01)") from None
    return as_aware_utc(parsed)


def instant_arg(text: str) -> datetime:
    """``parse_instant`` as an argparse ``type=`` (its error is argparse's)."""
    import argparse

    try:
        return parse_instant(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
