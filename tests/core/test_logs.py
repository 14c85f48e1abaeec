"""Structured logs carry their context (the message id) on every line."""

from __future__ import annotations

import json
import logging

from abuse_desk.core.logs import JsonFormatter, TextFormatter, log_context


def record(msg: str, **fields: object) -> logging.LogRecord:
    rec = logging.LogRecord("abuse_desk.workflow.pipeline", logging.INFO, __file__, 1, msg, (),
                            None)
    if fields:
        rec.fields = fields
    return rec


def test_text_lines_carry_the_context_and_per_call_fields() -> None:
    with log_context(message_id=42):
        line = TextFormatter().format(record("processed", subject="spam report"))
    assert line.endswith(' INFO workflow.pipeline processed message_id=42 subject="spam report"')


def test_context_nests_and_ends_with_its_block() -> None:
    fmt = TextFormatter()
    with log_context(message_id=1):
        with log_context(report=2):
            inner = fmt.format(record("x"))
        outer = fmt.format(record("y"))
    after = fmt.format(record("z"))
    assert inner.endswith("x message_id=1 report=2")
    assert outer.endswith("y message_id=1")
    assert after.endswith("z")


def test_values_cannot_forge_extra_fields_or_lines() -> None:
    line = TextFormatter().format(record("got", subject="a\nfake=1 level=ERROR"))
    assert "\n" not in line
    assert 'subject="a\\nfake=1 level=ERROR"' in line


def test_json_lines() -> None:
    with log_context(message_id=7):
        doc = json.loads(JsonFormatter().format(record("accepted", size=120)))
    assert doc["msg"] == "accepted"
    assert doc["message_id"] == 7
    assert doc["size"] == 120
    assert doc["level"] == "INFO"
