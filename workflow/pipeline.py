"""What the ``process_message`` actor does with one stored message.

Idempotent: the work is computed outside any transaction, then written in one transaction that
starts by moving the message from ``received`` to its outcome. A second delivery of the same id
finds the message no longer ``received`` and does nothing; two concurrent deliveries are
serialized by that first UPDATE (a row lock on PostgreSQL, the write lock on SQLite) and only one
sees a row to change. A crash before the commit leaves the message ``received`` for the sweeper.

The parsers (``parsers/``) turn the message into a disposition and reports, stored in the same
transaction. Failures split in two: a failure on the *content* (a parser raising, input past a
limit, nothing understood) moves the message to ``review`` with its reason and traceback, for a
person; a failure of the *system* (database unreachable) raises, so dramatiq retries and the
sweeper re-sends after that.
"""

from __future__ import annotations

import json
import logging
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from abuse_desk import metrics
from abuse_desk.app import Desk
from abuse_desk.logs import log_context
from abuse_desk.models import DuplicateKey, Event, Message, MessageState, Report
from classifier.classify import Decision, MessageFacts
from classifier.runtime import upsert
from parsers.base import ParseResult
from parsers.headers import first_address, read_top_headers

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    state: MessageState
    values: dict[str, Any] = field(default_factory=dict)  # columns of the message
    reason: str | None = None  # why it needs a person
    result: ParseResult | None = None
    decisions: list[Decision] = field(default_factory=list)


def _examine(desk: Desk, raw: bytes) -> Outcome:
    """The pure part: what the message says. Never raises on content."""
    try:
        headers = read_top_headers(raw)
    except Exception as exc:  # a parser bug or hostile input: a person looks at it
        log.warning("header reading failed: %s: %s", exc.__class__.__name__, exc)
        return Outcome(MessageState.REVIEW,
                       reason=f"headers unreadable: {exc.__class__.__name__}: {exc}")
    values: dict[str, Any] = {
        "header_message_id": headers.message_id,
        "header_from": headers.from_,
        "header_subject": headers.subject,
        "header_date": headers.date,
    }
    result = desk.parsers.parse(raw, desk.config.parsers)
    values["disposition"] = result.disposition.value
    values["format"] = result.format
    if result.review_reasons and not result.reports:
        reason = "; ".join(result.review_reasons)
        if result.errors:
            reason += "\n" + "\n".join(result.errors)  # the traceback of a parser bug
        return Outcome(MessageState.REVIEW, values, reason, result)
    if not result.reports:
        return Outcome(MessageState.PROCESSED, values, None, result)
    facts = MessageFacts(raw=raw, from_address=first_address(headers.from_),
                         message_id=headers.message_id, subject=headers.subject or "")
    classifier = desk.classifier.classifier
    try:
        trust = classifier.assess_reporter(facts)
        decisions = [classifier.classify(report, facts, trust) for report in result.reports]
    except SQLAlchemyError:
        raise  # the system, not the content: dramatiq retries
    except Exception as exc:  # a classifier bug on this content: a person looks at it
        log.warning("classifier failed: %s: %s", exc.__class__.__name__, exc, exc_info=True)
        return Outcome(MessageState.REVIEW, values,
                       f"classifier failed: {exc.__class__.__name__}: {exc}\n"
                       + traceback.format_exc(limit=20), result)
    return Outcome(MessageState.PROCESSED, values, None, result, decisions)



def report_rows(message_id: int, result: ParseResult, decisions: list[Decision],
                now: datetime) -> list[dict[str, Any]]:
    """The rows of the ``reports`` table for *result* and the classifier's *decisions*; the
    message-level review reasons are repeated on each report so none is lost."""
    rows = []
    for seq, (report, decision) in enumerate(zip(result.reports, decisions, strict=True)):
        reasons = [*result.review_reasons, *decision.review_reasons]
        rows.append({
            "message_id": message_id, "seq": seq, "format": report.format,
            "type_hint": report.type_hint, "source_ip": report.source_ip,
            "source_port": report.source_port, "occurred_at": report.occurred_at,
            "occurred_raw": report.occurred_raw,
            "fields": {
                "urls": report.urls, "domains": report.domains,
                "reporter_address": report.reporter_address,
                "reporter_org": report.reporter_org, "evidence": report.evidence,
                "incidents": report.incidents, "inferred": report.inferred,
                "warnings": report.warnings, "extra": _jsonable(report.extra),
            },
            "review_reason": "; ".join(dict.fromkeys(reasons)) or None,
            "created_at": now,
            "category": decision.category, "type": decision.type,
            "confidence": decision.confidence, "customer_id": decision.customer_id,
            "decision": _jsonable(decision.evidence), "fingerprint": decision.fingerprint,
            "trusted": decision.trusted,
        })
    return rows


def merge_duplicates(conn: Any, report_ids: list[int], decisions: list[Decision],
                     now: datetime, window: timedelta) -> int:
    """Point each report that repeats an earlier one (same fingerprint, same reporter
    Message-ID, same ACNS case) at the first, and count it there; record the keys of the
    others. Returns how many were duplicates."""
    merged = 0
    for report_id, decision in zip(report_ids, decisions, strict=True):
        if not decision.duplicate_keys:
            continue
        first = conn.execute(
            select(DuplicateKey.report_id)
            .where(DuplicateKey.key.in_(decision.duplicate_keys),
                   DuplicateKey.created_at >= now - window,
                   DuplicateKey.report_id != report_id)
            .order_by(DuplicateKey.created_at).limit(1)).scalar()
        if first is not None:
            conn.execute(update(Report).where(Report.id == report_id).values(
                duplicate_of=first, review_reason=None))
            conn.execute(update(Report).where(Report.id == first).values(
                duplicates=Report.duplicates + 1))
            merged += 1
            continue
        for key in decision.duplicate_keys:
            upsert(conn, DuplicateKey.__table__,
                   {"key": key[:255], "report_id": report_id, "created_at": now},
                   "key", ["report_id", "created_at"])
    return merged


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


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

        outcome = _examine(desk, row.raw)
        state, result = outcome.state, outcome.result
        now = desk.clock()
        if outcome.reason:
            detail: dict[str, Any] = {"reason": outcome.reason}
        elif result is not None:
            detail = {"disposition": result.disposition.value, "format": result.format,
                      "parser": result.parser, "reports": len(result.reports),
                      **({"reply": _jsonable(result.extra)} if result.extra else {})}
        else:
            detail = {}
        with desk.engine.begin() as conn:
            claimed = conn.execute(
                update(Message)
                .where(Message.id == message_id, Message.state == MessageState.RECEIVED)
                .values(state=state.value, processed_at=now, error=outcome.reason,
                        **outcome.values))
            if claimed.rowcount != 1:
                log.info("processed by another delivery meanwhile")
                return "skipped"
            if state is MessageState.PROCESSED and result is not None and result.reports:
                ids = list(conn.execute(
                    insert(Report).returning(Report.id, sort_by_parameter_order=True),
                    report_rows(message_id, result, outcome.decisions, now)).scalars())
                detail["duplicates"] = merge_duplicates(
                    conn, ids, outcome.decisions, now,
                    timedelta(days=desk.config.classifier.duplicate_window_days))
            conn.execute(insert(Event).values(
                at=now, actor_kind="system", actor="pipeline", subject_type="message",
                subject_id=message_id, action=state.value, detail=detail))
        metrics.PROCESSED.labels(state.value).inc()
        log.info("%s", state.value, extra={"fields": {
            "subject": outcome.values.get("header_subject"),
            "format": outcome.values.get("format"),
            "reports": len(result.reports) if result else 0}})
        return state.value
