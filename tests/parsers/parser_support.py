"""Helpers for the format parsers' tests: a parsed report summarised as the fields its tests
compare in one assertion."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from abuse_desk.core.fields import iso_z
from abuse_desk.parsers.base import ParsedReport

# What summary() gives by default: a report's fields, occurred_at as ISO 8601 (UTC, Z).
SUMMARY_FIELDS = (
    "format", "type_hint", "source_ip", "source_port", "occurred_at", "occurred_raw", "urls",
    "domains", "reporter_address", "reporter_org", "inferred", "warnings", "review_reasons",
)


def summary(report: ParsedReport, fields: Sequence[str] = SUMMARY_FIELDS) -> dict[str, Any]:
    """*report*'s *fields* by name, ``occurred_at`` written with ``iso_z``."""
    return {name: iso_z(report.occurred_at) if name == "occurred_at" else getattr(report, name)
            for name in fields}
