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

import functools
import json
import logging
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from abuse_desk import metrics
from abuse_desk.app import Desk
from abuse_desk.db import as_utc
from abuse_desk.logs import log_context
from abuse_desk.models import DuplicateKey, Event, Message, MessageState, Report
from classifier.classify import Decision, MessageFacts
from classifier.types import Evidence
from parsers.base import Disposition, ParseResult
from parsers.guards import case_reference
from parsers.headers import first_address, read_top_headers
from workflow import cases, replies, timeline
from workflow.notices import create_ack

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    state: MessageState
    values: dict[str, Any] = field(default_factory=dict)  # columns of the message
    reason: str | None = None  # why it needs a person
    result: ParseResult | None = None
    decisions: list[Decision] = field(default_factory=list)


def _examine(desk: Desk, raw: bytes, received_at: datetime) -> Outcome:
    """The pure part: what the message (received at *received_at*) says. Never raises on
    content."""
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
                         message_id=headers.message_id, received_at=received_at,
                         subject=headers.subject or "")
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
        keys = [{"key": key, "report_id": report_id, "created_at": now}
                for key in dict.fromkeys(k[:255] for k in decision.duplicate_keys)]
        if keys:
            conn.execute(_key_upsert(conn.dialect.name), keys)
    return merged


@functools.lru_cache(maxsize=4)
def _key_upsert(dialect_name: str) -> Any:
    """INSERT ... ON CONFLICT (key) DO UPDATE of one duplicate key, built once (building the
    statement anew for every key cost more than running it); executed with one parameter set
    per key."""
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    stmt = dialect.insert(DuplicateKey.__table__)
    return stmt.on_conflict_do_update(
        index_elements=["key"],
        set_={"report_id": stmt.excluded.report_id, "created_at": stmt.excluded.created_at})


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


# ---- the sender, and mail about our own mails (workflow/replies.py) ---------------------------

def _check_sender(desk: Desk, row: Any, outcome: Outcome) -> dict[str, Any] | None:
    """Outside any transaction: whether the From of a report (or a reply) is authenticated,
    and a case tag in its Subject: proven by an authenticated customer address, the message
    becomes the customer's reply; otherwise it stays what the parsers made of it, and the tag
    is returned as a hint for specialists."""
    result = outcome.result
    if result is None or result.disposition not in (Disposition.REPORT, Disposition.REPLY):
        return None
    auth = desk.workflow.authenticator.check(
        row.raw, mail_from=row.mail_from, peer_ip=row.peer_ip, helo=row.helo).to_json()
    outcome.values["sender_authentication"] = auth
    tokens = replies.envelope_reply_tokens(row.rcpt_tos)
    if tokens and result.disposition is Disposition.REPORT:  # sent to a notice's Reply-To
        with desk.engine.connect() as conn:
            known = replies.known_reply_token(conn, tokens)
        if known:
            outcome.state, outcome.reason, outcome.decisions = MessageState.PROCESSED, None, []
            outcome.result = ParseResult(
                disposition=Disposition.REPLY, format="reply", parser="reply",
                extra={"case_reference": case_reference(outcome.values.get("header_subject")),
                       "reply_tokens": tokens})
            outcome.values.update(disposition=Disposition.REPLY.value, format="reply")
            return None
    subject = outcome.values.get("header_subject")
    if case_reference(subject) is None:
        return None
    with desk.engine.connect() as conn:
        tag = replies.case_tag(conn, subject, auth, desk.clock())
    if tag is None:
        return None
    if result.disposition is Disposition.REPLY:  # the fallback when no mail of ours matches
        if tag.case_id is not None:
            result.extra["contact_case"] = tag.case_id
        return None
    if tag.case_id is None and tag.exists:
        if outcome.state is MessageState.REVIEW and outcome.reason:
            outcome.reason += (f"\n(the Subject names case {tag.reference}; not threaded: "
                               f"{tag.why_not})")
        return tag.hint()
    # The customer, writing with the case tag: its answer, not a complaint against itself. A
    # tag naming no case at all: a reply that matches nothing, for a person (attach_reply).
    outcome.state, outcome.reason, outcome.decisions = MessageState.PROCESSED, None, []
    outcome.result = ParseResult(disposition=Disposition.REPLY, format="reply", parser="reply",
                                 extra={"case_reference": tag.reference,
                                        "contact_case": tag.case_id})
    outcome.values.update(disposition=Disposition.REPLY.value, format="reply")
    return None


def _with_sender(rows: list[dict[str, Any]], auth: dict[str, Any] | None,
                 hint: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Report rows with the sender's authentication (and a case tag's hint) in their
    ``decision``: what a rule reading one report (escalation) needs to know of its sender."""
    for row in rows:
        if auth is not None:
            row["decision"]["sender_authentication"] = auth
            if auth.get("authenticated") and not row["decision"].get("authenticated"):
                # One notion of "authenticated" for the escalation rule (workflow.cases): the
                # classifier's (a trusted reporter, aligned DKIM) or the sender's (our MTA's
                # Authentication-Results, aligned DKIM or SPF).
                row["decision"]["authenticated"] = True
                row["decision"]["authentication"] = Evidence(
                    f"auth:{auth.get('how') or 'sender'}", 1.0,
                    f"{auth.get('how')} for {auth.get('domain')} "
                    f"({auth.get('source') or 'checked by the desk'})").to_json()
        if hint is not None:
            row["decision"]["case_reference_hint"] = hint
    return rows


def process_message(desk: Desk, message_id: int) -> str:
    """Process one message; returns the outcome ("processed", "review", "skipped")."""
    with log_context(message_id=message_id):
        with desk.engine.connect() as conn:
            row = conn.execute(
                select(Message.state, Message.raw, Message.received_at, Message.mail_from,
                       Message.rcpt_tos, Message.peer_ip, Message.helo)
                .where(Message.id == message_id)).first()
        if row is None:
            log.warning("no such message: nothing to process")
            return "skipped"
        if row.state != MessageState.RECEIVED:
            log.info("already %s: nothing to do", row.state)
            return "skipped"

        outcome = _examine(desk, row.raw, as_utc(row.received_at) or desk.clock())
        hint = _check_sender(desk, row, outcome)
        state, result = outcome.state, outcome.result
        if result is not None and (result.reports or result.disposition is not
                                   Disposition.REPORT):
            desk.workflow.writer  # noqa: B018 - made (its key read) outside the transaction
        now = desk.clock()
        if outcome.reason:
            detail: dict[str, Any] = {"reason": outcome.reason}
        elif result is not None:
            detail = {"disposition": result.disposition.value, "format": result.format,
                      "parser": result.parser, "reports": len(result.reports),
                      **({"reply": _jsonable(result.extra)} if result.extra else {})}
        else:
            detail = {}
        if hint is not None:
            detail["case_reference_hint"] = hint
        due: set[int] = set()
        with desk.engine.begin() as conn:
            cases.take_due(conn)  # nothing left over from an earlier failed transaction
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
                    _with_sender(report_rows(message_id, result, outcome.decisions, now),
                                 outcome.values.get("sender_authentication"), hint)).scalars())
                detail["duplicates"] = merge_duplicates(
                    conn, ids, outcome.decisions, now,
                    timedelta(days=desk.config.classifier.duplicate_window_days))
                joined = cases.attach_reports(conn, desk.config.workflow,
                                              desk.workflow.calendar, ids, now)
                if joined:
                    detail["cases"] = sorted(set(joined.values()))
                    first_case = joined[min(joined)]
                    if create_ack(conn, desk.workflow.writer, message_id, first_case, now):
                        detail["acknowledged"] = True
                        cases.mark_due(conn, first_case)
            elif state is MessageState.PROCESSED and result is not None and (
                    result.disposition is Disposition.REPLY or result.format == "bounce"):
                if result.format == "bounce":
                    threaded = replies.attach_bounce(conn, message_id, result, now,
                                                     mail_from=row.mail_from,
                                                     rcpt_tos=row.rcpt_tos)
                else:
                    sender = first_address(outcome.values.get("header_from")) or "unknown"
                    threaded = replies.attach_reply(conn, message_id, sender, result, now,
                                                    rcpt_tos=row.rcpt_tos)
                if threaded.note:
                    detail["threaded"] = threaded.note
                    if threaded.case_id is None:  # a DSN that proves nothing: counted here
                        log.info("%s", threaded.note)
                if threaded.case_id is not None:
                    detail["case"] = threaded.case_id
                elif threaded.review is not None:
                    conn.execute(update(Message).where(Message.id == message_id).values(
                        state=MessageState.REVIEW.value, error=threaded.review))
                    state = MessageState.REVIEW
                    detail["reason"] = threaded.review
            conn.execute(insert(Event).values(
                at=now, actor_kind="system", actor="pipeline", subject_type="message",
                subject_id=message_id, action=state.value, detail=detail))
            due = cases.take_due(conn)
        # Only the cases this message gave work due now: a claim on an open case, or a reply,
        # makes nothing due (a later step is the scheduler's), and asking cost two transactions.
        timeline.kick(desk, due)
        metrics.PROCESSED.labels(state.value).inc()
        log.info("%s", state.value, extra={"fields": {
            "subject": outcome.values.get("header_subject"),
            "format": outcome.values.get("format"),
            "reports": len(result.reports) if result else 0}})
        return state.value
