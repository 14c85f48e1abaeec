"""What the ``process_message`` actor does with one stored message.

Idempotent: the work is computed outside any transaction, then written in one transaction that
starts by moving the message from ``received`` to its outcome. A second delivery of the same id
finds the message no longer ``received`` and does nothing; two concurrent deliveries are
serialized by that first UPDATE (a row lock on PostgreSQL, the write lock on SQLite) and only one
sees a row to change. A crash before the commit leaves the message ``received`` for the sweeper.

Failures split in two: a failure on the *content* (a parser raising) moves the message to
``review`` with its reason, for a person; a failure of the *system* (database unreachable)
raises, so dramatiq retries and the sweeper re-sends after that.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import insert, select, update

from abuse_desk import metrics
from abuse_desk.app import Desk
from abuse_desk.logs import log_context
from abuse_desk.models import Event, Message, MessageState
from parsers.headers import read_top_headers

log = logging.getLogger(__name__)


def _examine(raw: bytes) -> tuple[MessageState, dict[str, Any], str | None]:
    """The pure part: what the message says. Never raises on content."""
    try:
        headers = read_top_headers(raw)
    except Exception as exc:  # a parser bug or hostile input: a person looks at it
        log.warning("header reading failed: %s: %s", exc.__class__.__name__, exc)
        return MessageState.REVIEW, {}, f"headers unreadable: {exc.__class__.__name__}: {exc}"
    values = {
        "header_message_id": headers.message_id,
        "header_from": headers.from_,
        "header_subject": headers.subject,
        "header_date": headers.date,
    }
    return MessageState.PROCESSED, values, None


def process_message(desk: Desk, message_id: int) -> str:
    """Process one message; returns the outcome ("processed", "review", "skipped")."""
    with log_context(message_id=message_id):
        with desk.engine.connect() as conn:
            row = conn.execute(
                select(Message.state, Message.raw).where(Message.id == message_id)).first()
        if row is None:
            log.warning("no such message: nothing to process")
            return "skipped"
        if row.state != MessageState.RECEIVED:
            log.info("already %s: nothing to do", row.state)
            return "skipped"

        outcome, values, reason = _examine(row.raw)
        now = desk.clock()
        with desk.engine.begin() as conn:
            claimed = conn.execute(
                update(Message)
                .where(Message.id == message_id, Message.state == MessageState.RECEIVED)
                .values(state=outcome.value, processed_at=now, error=reason, **values))
            if claimed.rowcount != 1:
                log.info("processed by another delivery meanwhile")
                return "skipped"
            conn.execute(insert(Event).values(
                at=now, actor_kind="system", actor="pipeline", subject_type="message",
                subject_id=message_id, action=outcome.value,
                detail={"reason": reason} if reason else {}))
        metrics.PROCESSED.labels(outcome.value).inc()
        log.info("%s", outcome.value, extra={"fields": {"subject": values.get("header_subject")}})
        return outcome.value
