"""Time is an input: one clock, and no other reader of the wall clock in the product."""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from abuse_desk.core.clock import as_aware_utc, fixed_clock, parse_instant, system_clock

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("abuse_desk", "ingest", "parsers", "classifier", "workflow", "web")
CLOCK_MODULE = ROOT / "abuse_desk" / "clock.py"

# (module or class, attribute) calls that read the wall clock. time.monotonic and
# time.perf_counter measure durations and are fine anywhere.
WALL_CLOCK_READS = {
    ("datetime", "now"), ("datetime", "utcnow"), ("datetime", "today"), ("date", "today"),
    ("time", "time"), ("time", "time_ns"), ("time", "localtime"), ("time", "gmtime"),
    ("time", "ctime"), ("time", "asctime"), ("time", "strftime"),
    ("func", "now"), ("func", "current_timestamp"), ("func", "localtimestamp"),
}


def wall_clock_reads(path: Path, root: Path = ROOT) -> list[str]:
    """Each call in *path* that reads the wall clock, as "file:line: name"."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            name = owner.attr if isinstance(owner, ast.Attribute) else \
                owner.id if isinstance(owner, ast.Name) else None
            if (name, node.func.attr) in WALL_CLOCK_READS:
                found.append(f"{path.relative_to(root)}:{node.lineno}: {name}.{node.func.attr}")
        # SQL text that asks the database for its time mixes two clocks in one decision
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value.upper()
            if any(word in text for word in ("CURRENT_TIMESTAMP", "NOW()", "LOCALTIMESTAMP")):
                found.append(f"{path.relative_to(root)}:{node.lineno}: SQL {node.value[:40]!r}")
    return found


def test_only_the_clock_module_reads_the_wall_clock() -> None:
    files = [p for package in PRODUCT for p in sorted((ROOT / package).rglob("*.py"))]
    assert len(files) > 50  # the product was found
    reads = [hit for p in files if p != CLOCK_MODULE for hit in wall_clock_reads(p)]
    assert reads == [], "read the time from the Clock passed in (abuse_desk/clock.py)"


def test_the_scan_finds_what_it_looks_for(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import time, datetime\nfrom sqlalchemy import func\n"
                      "a = datetime.datetime.now()\nb = time.time()\nc = func.now()\n"
                      "d = time.monotonic()\ne = 'SELECT now()'\n")
    assert [hit.split(": ", 1)[1] for hit in wall_clock_reads(sample, tmp_path)] == [
        "datetime.now", "time.time", "func.now", "SQL 'SELECT now()'"]


def test_the_system_clock_is_aware_utc() -> None:
    now = system_clock()
    assert now.tzinfo is UTC


def test_a_fixed_clock_stands_still_in_utc() -> None:
    at = datetime(2027, 3, 14, 3, 30, tzinfo=timezone(timedelta(hours=-4)))
    clock = fixed_clock(at)
    assert clock() == clock() == datetime(2027, 3, 14, 7, 30, tzinfo=UTC)
    assert clock().tzinfo is UTC


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-12-03T15:00:00Z", datetime(2026, 12, 3, 15, tzinfo=UTC)),
    ("2026-12-03T10:00:00-05:00", datetime(2026, 12, 3, 15, tzinfo=UTC)),
    ("2026-12-03 15:00", datetime(2026, 12, 3, 15, tzinfo=UTC)),  # no zone: UTC
    ("2028-02-29", datetime(2028, 2, 29, tzinfo=UTC)),
])
def test_instants_are_read_as_utc(text: str, expected: datetime) -> None:
    assert parse_instant(text) == expected


def test_a_bad_instant_says_what_is_expected() -> None:
    with pytest.raises(ValueError, match=r"'soon' is not ISO 8601 \(e\.g\. 2026-03-01T12"):
        parse_instant("soon")


def test_naive_values_are_taken_as_utc() -> None:
    assert as_aware_utc(datetime(2026, 1, 1)) == datetime(2026, 1, 1, tzinfo=UTC)
