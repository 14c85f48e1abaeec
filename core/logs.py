"""Structured logs: every line carries the context it was written in (e.g. ``message_id``).

``with log_context(message_id=42): log.info("stored")`` gives
``2026-11-28T13:00:00.123Z INFO ingest.store stored message_id=42`` in text form, or one JSON
object a line with ``log.format = "json"``. Extra fields can be passed per call with
``log.info("...", extra={"fields": {...}})``.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "log_context", default=None)


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    token = _context.set({**(_context.get() or {}), **fields})
    try:
        yield
    finally:
        _context.reset(token)


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = dict(_context.get() or {})
    fields.update(getattr(record, "fields", None) or {})
    return fields


def _quote(value: Any) -> str:
    text = str(value)
    if not text or any(c in text for c in ' "=\n\r\t'):
        return json.dumps(text)
    return text


def _logger(record: logging.LogRecord) -> str:
    """The logger's name as lines show it: the part of the desk (``workflow.pipeline``),
    without the package every part is installed under."""
    return record.name.removeprefix("abuse_desk.")


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
        parts = [f"{ts}Z", record.levelname, _logger(record), record.getMessage()]
        parts += [f"{k}={_quote(v)}" for k, v in _fields(record).items()]
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": _logger(record),
            "msg": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiosmtpd logs every command line at INFO, mail content included at DEBUG: too chatty.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)
