"""The review queue: reports the machine could not decide, and a specialist's decision on one.

A report is in the queue while it has review reasons, no specialist has decided it, and it is
not a duplicate merged into another. A decision (type, customer, or not abuse) re-runs the
report through the classifier with the decided values fixed, stores the outcome with the
specialist's name, and becomes a training example for the text model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update

from abuse_desk.app import Desk
from abuse_desk.db import as_utc
from abuse_desk.models import Customer, Event, Message, MessageState, Report
from classifier.categorize import NOT_ABUSE
from classifier.classify import Decision, MessageFacts
from classifier.types import TYPES
from parsers.base import ParsedReport, iso_z
from parsers.headers import first_address
from workflow import cases, timeline
from workflow.notices import create_ack


class ReviewError(ValueError):
    """A decision that cannot be applied; the message says what to change."""


def queue(desk: Desk, limit: int | None = None) -> list[dict[str, Any]]:
    """What needs a person, oldest first: reports with review reasons, and messages no report
    could be made of (a parser failed or a limit was hit; ``report_id`` is None for those)."""
    items = _report_items(desk) + _message_items(desk)
    items.sort(key=lambda item: (item["received_at"] or "", item["message_id"]))
    return items[:limit] if limit is not None else items


def _message_items(desk: Desk) -> list[dict[str, Any]]:
    stmt = (select(Message.id, Message.received_at, Message.header_from, Message.header_subject,
                   Message.format, Message.error)
            .where(Message.state == MessageState.REVIEW).order_by(Message.received_at))
    with desk.engine.connect() as conn:
        return [{
            "report_id": None, "message_id": m.id, "received_at": iso_z(as_utc(m.received_at)),
            "format": m.format, "type_hint": None, "category": None, "type": None,
            "confidence": None, "customer_id": None, "source_ip": None, "source_port": None,
            "occurred_at": None, "reporter": m.header_from, "subject": m.header_subject,
            "review_reasons": [(m.error or "processing failed").splitlines()[0]],
        } for m in conn.execute(stmt)]


def _report_items(desk: Desk) -> list[dict[str, Any]]:
    stmt = (select(Report, Message.received_at, Message.header_from, Message.header_subject,
                   Customer.external_id)
            .join(Message, Message.id == Report.message_id)
            .outerjoin(Customer, Customer.id == Report.customer_id)
            .where(Report.review_reason.is_not(None), Report.reviewed_at.is_(None),
                   Report.duplicate_of.is_(None))
            .order_by(Message.received_at, Report.id))
    with desk.sessions() as session:
        return [{
            "report_id": report.id, "message_id": report.message_id,
            "received_at": iso_z(as_utc(received_at)), "format": report.format,
            "type_hint": report.type_hint, "category": report.category, "type": report.type,
            "confidence": report.confidence, "customer_id": external_id,
            "source_ip": report.source_ip, "source_port": report.source_port,
            "occurred_at": iso_z(as_utc(report.occurred_at)),
            "reporter": header_from, "subject": subject,
            "review_reasons": (report.review_reason or "").split("; "),
        } for report, received_at, header_from, subject, external_id in session.execute(stmt)]


@dataclass(frozen=True)
class ReviewDecision:
    report_id: int
    decided_by: str
    type: str | None = None  # one of our types, or NOT_ABUSE
    customer: str | None = None  # the customer's external id


def parsed_from_row(report: Report) -> ParsedReport:
    """The parsed report as stored, to run through the classifier again."""
    fields = report.fields or {}
    return ParsedReport(
        format=report.format, type_hint=report.type_hint, source_ip=report.source_ip,
        source_port=report.source_port, occurred_at=as_utc(report.occurred_at),
        occurred_raw=report.occurred_raw, urls=list(fields.get("urls", [])),
        domains=list(fields.get("domains", [])),
        reporter_address=fields.get("reporter_address"), reporter_org=fields.get("reporter_org"),
        evidence=fields.get("evidence"), incidents=int(fields.get("incidents") or 1),
        extra=dict(fields.get("extra") or {}))


def decide(desk: Desk, decision: ReviewDecision) -> Decision:
    """Apply a specialist's decision; returns the report's new classification."""
    if decision.type is None and decision.customer is None:
        raise ReviewError("say what you decided: a type, a customer, or not abuse")
    if decision.type is not None and decision.type != NOT_ABUSE and decision.type not in TYPES:
        raise ReviewError(f"unknown type {decision.type!r}; one of: {', '.join(TYPES)} "
                          f"or {NOT_ABUSE}")
    runtime = desk.classifier
    with desk.sessions() as session:
        report = session.get(Report, decision.report_id)
        if report is None:
            raise ReviewError(f"no report {decision.report_id}")
        message = session.get(Message, report.message_id)
        assert message is not None
        forced_customer = None
        if decision.customer is not None:
            customer = session.scalar(select(Customer).where(
                Customer.external_id == decision.customer))
            if customer is None:
                raise ReviewError(f"no customer {decision.customer!r}: import it first "
                                  "(abuse-desk customers import FILE.csv)")
            forced_customer = (customer.id, customer.external_id)
        parsed = parsed_from_row(report)
        facts = MessageFacts(raw=message.raw, from_address=first_address(message.header_from),
                             message_id=message.header_message_id,
                             subject=message.header_subject or "")
        previous_type = report.type
    classifier = runtime.classifier
    trust = classifier.assess_reporter(facts)
    kept_type = decision.type if decision.type is not None else previous_type
    outcome = classifier.classify(parsed, facts, trust, forced_type=kept_type,
                                  forced_customer=forced_customer)
    now = desk.clock()
    text = "\n".join(p for p in (facts.subject, parsed.evidence or "") if p)
    writer = desk.workflow.writer  # made (its key read) outside the transaction
    with desk.engine.begin() as conn:
        conn.execute(update(Report).where(Report.id == decision.report_id).values(
            category=outcome.category, type=outcome.type, confidence=outcome.confidence,
            customer_id=outcome.customer_id, decision=outcome.evidence,
            review_reason="; ".join(outcome.review_reasons) or None,
            reviewed_by=decision.decided_by, reviewed_at=now))
        conn.execute(insert(Event).values(
            at=now, actor_kind="specialist", actor=decision.decided_by, subject_type="report",
            subject_id=decision.report_id, action="review-decision",
            detail={"type": decision.type, "customer": decision.customer,
                    "previous_type": previous_type,
                    "remaining_reasons": outcome.review_reasons}))
        if decision.type is not None and text:
            runtime.learn(conn, text, decision.type, decision.decided_by, decision.report_id)
        # Decided and no reason left: the report joins (or opens) its customer's case.
        joined = cases.attach_reports(
            conn, desk.config.workflow, desk.workflow.calendar, [decision.report_id], now,
            cases.Actor("specialist", decision.decided_by))
        if joined:
            create_ack(conn, writer, report.message_id, joined[decision.report_id], now)
    timeline.kick(desk, joined.values())
    return outcome
