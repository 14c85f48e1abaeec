"""What the web desk and the CLI show of cases: the case list, one case in full, the fees
export. Both read the same rows the same way, so the page and the command always agree."""

from __future__ import annotations

import csv
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from ..core.clock import Clock
from ..core.config import WorkflowConfig
from ..core.db import as_utc
from ..core.fields import iso_z
from ..core.models import (
    Case,
    CaseState,
    Customer,
    Event,
    FeeEntry,
    Message,
    Notice,
    Report,
    TimelineStep,
)
from ..workflow import cases


def money(cents: int) -> str:
    return f"{cents / 100:.2f}"


def csv_safe(text: str) -> str:
    """No formula injection into the spreadsheet billing opens the export in."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


class CaseQueries:
    """The case list, one case in full and the fees export, as the web desk and the CLI show
    them; "overdue" is at *clock*'s now."""

    def __init__(self, config: WorkflowConfig, engine: Engine, sessions: sessionmaker[Session],
                 clock: Clock) -> None:
        self.config = config
        self.engine = engine
        self.sessions = sessions
        self.clock = clock

    def case_rows(self, state: str | None = None, customer: str | None = None,
                  overdue: bool = False, limit: int | None = None, *,
                  category: str | None = None, offset: int = 0,
                  case_id: int | None = None) -> list[dict[str, Any]]:
        """Cases, newest first, filtered; *offset* and *limit* page through them (the web desk),
        *case_id* picks one (``case_detail``)."""
        reports = (select(Report.case_id, func.count().label("n"))
                   .where(Report.case_id.is_not(None)).group_by(Report.case_id).subquery())
        fees = (select(FeeEntry.case_id, func.sum(FeeEntry.amount_cents).label("cents"),
                       func.max(FeeEntry.currency).label("currency"))
                .where(FeeEntry.state == "assessed").group_by(FeeEntry.case_id).subquery())
        stmt = (select(Case, Customer.external_id, reports.c.n, fees.c.cents, fees.c.currency)
                .join(Customer, Customer.id == Case.customer_id)
                .outerjoin(reports, reports.c.case_id == Case.id)
                .outerjoin(fees, fees.c.case_id == Case.id)
                .order_by(Case.id.desc()))
        if state:
            stmt = stmt.where(Case.state == state)
        if customer:
            stmt = stmt.where(Customer.external_id == customer)
        if category:
            stmt = stmt.where(Case.category == category)
        if case_id is not None:
            stmt = stmt.where(Case.id == case_id)
        if overdue:
            stmt = stmt.where(Case.state.in_([s.value for s in cases.ACTIVE]),
                              Case.deadline_at < self.clock())
        if offset:
            stmt = stmt.offset(offset)
        if limit is not None:
            stmt = stmt.limit(limit)
        with self.sessions() as session:
            return [{
                "id": case.reference, "number": case.id, "customer_id": external_id,
                "category": case.category, "type": case.type, "state": case.state,
                "timeline_class": case.timeline_class,
                "opened_at": iso_z(as_utc(case.opened_at)),
                "deadline_at": iso_z(as_utc(case.deadline_at)),
                "report_count": int(n or 0), "claims": case.claims,
                "fee_total": money(int(cents or 0)),
                "fee_currency": currency or self.config.fee_currency,
                "proposed_action": case.proposed_action,
            } for case, external_id, n, cents, currency in session.execute(stmt)]

    def case_detail(self, ref: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            case = cases.find_case(conn, ref)
            (row,) = self.case_rows(case_id=case.id)
            steps = conn.execute(select(TimelineStep).where(TimelineStep.case_id == case.id)
                                 .order_by(TimelineStep.due_at, TimelineStep.id)).all()
            notices = conn.execute(select(
                Notice.id, Notice.kind, Notice.to_addr, Notice.subject, Notice.state,
                Notice.header_message_id, Notice.created_at, Notice.sent_at, Notice.attempts,
                Notice.error, Notice.receipt, Notice.bounced_at, Notice.step_id)
                .where(Notice.case_id == case.id).order_by(Notice.id)).all()
            replies = conn.execute(select(
                Message.id, Message.received_at, Message.header_from, Message.header_subject,
                Message.format).where(Message.case_id == case.id).order_by(Message.id)).all()
            fees = conn.execute(select(FeeEntry).where(FeeEntry.case_id == case.id)
                                .order_by(FeeEntry.id)).all()
            events = conn.execute(select(Event).where(Event.subject_type == "case",
                                                      Event.subject_id == case.id)
                                  .order_by(Event.at, Event.id)).all()
            claims = cases.count_claims(conn, case.id)
        with self.sessions() as session:
            reports = session.execute(
                select(Report, Message.received_at, Message.header_from)
                .join(Message, Message.id == Report.message_id)
                .where(Report.case_id == case.id).order_by(Report.id)).all()
        note = None
        escalations = [e for e in events if e.action in ("escalated", "escalation-confirmed")]
        if claims.unauthenticated and case.state in [s.value for s in cases.ACTIVE]:
            note = cases.unauthenticated_note(claims)
        elif (case.state == CaseState.ESCALATED.value and escalations
              and escalations[-1].action == "escalated"
              and (escalations[-1].detail or {}).get("awaiting_person")):
            note = str((escalations[-1].detail or {}).get("note") or (
                "escalated without an authenticated claim: nothing charged or proposed; "
                "a specialist decides (escalate the case to confirm)"))
        return {
            **row,
            "escalated_at": iso_z(as_utc(case.escalated_at)),
            "resolved_at": iso_z(as_utc(case.resolved_at)),
            "claims_authenticated": claims.authenticated,
            "claims_unauthenticated": claims.unauthenticated,
            "escalation_note": note,
            "reports": [{
                "id": r.id, "message_id": r.message_id, "format": r.format,
                "category": r.category, "type": r.type, "source_ip": r.source_ip,
                "source_port": r.source_port, "occurred_at": iso_z(as_utc(r.occurred_at)),
                "received_at": iso_z(as_utc(received)), "reporter": sender,
                "duplicates": r.duplicates, "authenticated": cases.is_authenticated(r)}
                for r, received, sender in reports],
            "steps": [{
                "id": s.id, "kind": s.kind, "state": s.state, "due_at": iso_z(as_utc(s.due_at)),
                "done_at": iso_z(as_utc(s.done_at)), "attempts": s.attempts, "error": s.error,
                "detail": s.detail} for s in steps],
            "notices": [{
                "id": n.id, "kind": n.kind, "to": n.to_addr, "subject": n.subject, "state": n.state,
                "message_id": n.header_message_id, "created_at": iso_z(as_utc(n.created_at)),
                "sent_at": iso_z(as_utc(n.sent_at)), "attempts": n.attempts, "error": n.error,
                "receipt": n.receipt, "bounced_at": iso_z(as_utc(n.bounced_at)),
                "step_id": n.step_id} for n in notices],
            "replies": [{
                "message_id": m.id, "received_at": iso_z(as_utc(m.received_at)),
                "from": m.header_from, "subject": m.header_subject,
                "kind": "bounce" if m.format == "bounce" else "reply"} for m in replies],
            "fees": [{
                "id": f.id, "report_id": f.report_id, "amount": money(f.amount_cents),
                "currency": f.currency, "state": f.state,
                "assessed_at": iso_z(as_utc(f.assessed_at)), "waived_by": f.waived_by,
                "waive_reason": f.waive_reason, "reason": f.reason} for f in fees],
            "events": [{
                "at": iso_z(as_utc(e.at)), "actor_kind": e.actor_kind, "actor": e.actor,
                "action": e.action, "detail": e.detail} for e in events],
        }

    def export_fees(self, start: datetime, end: datetime, out: Any,
                    include_waived: bool = False) -> int:
        stmt = (select(FeeEntry, Case.reference, Customer.external_id, Customer.name)
                .join(Case, Case.id == FeeEntry.case_id)
                .join(Customer, Customer.id == Case.customer_id)
                .where(FeeEntry.assessed_at >= start, FeeEntry.assessed_at < end)
                .order_by(FeeEntry.assessed_at, FeeEntry.id))
        if not include_waived:
            stmt = stmt.where(FeeEntry.state == "assessed")
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["fee_id", "assessed_at", "case", "customer_id", "customer_name",
                         "report_id", "amount", "currency", "state", "waived_by", "waive_reason",
                         "reason"])
        count = 0
        with self.sessions() as session:
            for fee, ref, external_id, name in session.execute(stmt):
                writer.writerow([fee.id, iso_z(as_utc(fee.assessed_at)), ref, external_id,
                                 csv_safe(name), fee.report_id, money(fee.amount_cents),
                                 fee.currency, fee.state, csv_safe(fee.waived_by or ""),
                                 csv_safe(fee.waive_reason or ""), csv_safe(fee.reason or "")])
                count += 1
        return count
