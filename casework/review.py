"""The review queue: reports the machine could not decide, and a specialist's decision on one.

A report is in the queue while it has review reasons, no specialist has decided it, and it is
not a duplicate merged into another. A decision (type, customer, or not abuse) re-runs the
report through the classifier with the decided values fixed, stores the outcome with the
specialist's name, and becomes a training example for the text model. A specialist can also
merge a report into an open case (:func:`merge_into_case`), and run the pipeline again on a
message no report could be made of (:func:`reprocess`). The web desk's review pages read the
queue, one report and one message through :func:`filter_queue`, :func:`report_detail` and
:func:`message_detail`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from ..classifier.categorize import NOT_ABUSE
from ..classifier.classify import Decision, MessageFacts
from ..classifier.runtime import ClassifierRuntime
from ..core.clock import Clock
from ..core.config import Config
from ..core.db import as_utc, write_transaction
from ..core.fields import iso_z
from ..core.headers import first_address
from ..core.models import Case, CaseState, Customer, Event, Message, MessageState, Report
from ..core.policy import TYPES
from ..parsers.base import ParsedReport
from ..workflow import cases
from ..workflow.acks import create_ack
from ..workflow.pipeline import Pipeline
from ..workflow.timeline import Workflow


class ReviewError(ValueError):
    """A decision that cannot be applied; the message says what to change."""


@dataclass(frozen=True)
class ReviewDecision:
    report_id: int
    decided_by: str
    type: str | None = None  # one of our types, or NOT_ABUSE
    customer: str | None = None  # the customer's external id
    all_rows: bool = False  # also every other queued row of the message for that customer
    not_ours: bool = False  # about no customer of ours: closed without a case


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


@dataclass(frozen=True)
class _Prepared:
    report_id: int
    message_id: int
    outcome: Decision
    final: bool
    overridden: list[str]
    previous_type: str | None
    text: str


MAX_ROWS = 5000


def _ending(outcome: Decision, final: bool) -> str:
    """What the decision made of the report, for the audit trail."""
    if outcome.not_abuse:
        return "closed: not abuse"
    if not final:
        return "still in review: " + ("set the customer" if outcome.customer_id is None
                                      else "set the type")
    if outcome.customer_id is None:
        return "closed: not a customer of ours"
    return "to its customer's case"


# ---- what the desk shows of the queue ---------------------------------------------------------

_REASON_CUT = re.compile(r"[:(\d]")


def reason_kind(reason: str) -> str:
    """A review reason without its particulars (what follows a colon, a parenthesis or the
    first number): "customers disagree: source_ip ... is C-1, ..." -> "customers disagree"."""
    return _REASON_CUT.split(reason, 1)[0].strip().rstrip(",;") or reason.strip()


@dataclass(frozen=True)
class QueueFilter:
    """What a specialist narrows the queue to; every field is optional."""

    reason: str = ""  # a substring of one of the item's review reasons (any case)
    category: str = ""  # a category, or "none" for items without one
    reporter: str = ""  # a substring of the From header (any case)
    older_than_hours: float | None = None  # received at least this long ago
    message: int | None = None  # only the rows of this message

    @property
    def active(self) -> bool:
        return bool(self.reason or self.category or self.reporter
                    or self.older_than_hours is not None or self.message is not None)


def filter_queue(items: list[dict[str, Any]], flt: QueueFilter,
                 now: datetime) -> list[dict[str, Any]]:
    """The items of :func:`queue` that *flt* lets through, in the same order."""
    reason, reporter = flt.reason.strip().lower(), flt.reporter.strip().lower()
    cutoff = (now - timedelta(hours=flt.older_than_hours)
              if flt.older_than_hours is not None else None)
    kept = []
    for item in items:
        if flt.message is not None and item["message_id"] != flt.message:
            continue
        if reason and not any(reason in r.lower() for r in item["review_reasons"]):
            continue
        if flt.category == "none" and item["category"] is not None:
            continue
        if flt.category not in ("", "none") and item["category"] != flt.category:
            continue
        if reporter and reporter not in (item["reporter"] or "").lower():
            continue
        if cutoff is not None:
            received = _parse_time(item["received_at"])
            if received is None or received > cutoff:
                continue
        kept.append(item)
    return kept


# Rows of one message shown under its heading before "and N more" (the queue page, the CLI).
GROUP_SHOWN = 3


def group_queue(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The items of :func:`queue` grouped by the message they came from, in the queue's order:
    a scanner's or a CERT's table of 115 rows is one entry with its rows, the kinds of reason
    among them (how many rows have each) and the customers they name (how many rows each,
    "none" for rows without one). Each group: message_id, received_at, reporter, subject,
    format, count, items, reasons [(kind, n)], customers [(customer, n)]."""
    groups: dict[int, dict[str, Any]] = {}
    for item in items:
        group = groups.get(item["message_id"])
        if group is None:
            group = groups[item["message_id"]] = {
                "message_id": item["message_id"], "received_at": item["received_at"],
                "reporter": item["reporter"], "subject": item["subject"],
                "format": item["format"], "items": []}
        group["items"].append(item)
    for group in groups.values():
        reasons: dict[str, int] = {}
        customers: dict[str, int] = {}
        for item in group["items"]:
            for kind in dict.fromkeys(reason_kind(r) for r in item["review_reasons"]):
                reasons[kind] = reasons.get(kind, 0) + 1
            who = item["customer_id"] or "none"
            customers[who] = customers.get(who, 0) + 1
        group["count"] = len(group["items"])
        group["reasons"] = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
        group["customers"] = sorted(customers.items(), key=lambda kv: (-kv[1], kv[0]))
    return list(groups.values())


def queue_lines(items: list[dict[str, Any]], every_row: bool = False) -> list[str]:
    """The queue as ``abuse-desk review list`` prints it: an item a line, the rows of one
    message under one heading (its first rows, then how to list them all) unless
    *every_row*."""
    lines = []
    for group in group_queue(items):
        indent = "  "
        if group["count"] > 1:
            reasons = ", ".join(f"{kind} ({n})" for kind, n in group["reasons"])
            customers = ", ".join(f"{c} ({n})" for c, n in group["customers"])
            lines.append(f"  message {group['message_id']} ({group['format']}, received "
                         f"{group['received_at']}, from {group['reporter'] or '-'}): "
                         f"{group['count']} rows; {reasons}; customers {customers}")
            indent = "    "
        shown = group["items"] if every_row else group["items"][:GROUP_SHOWN]
        for item in shown:
            what = (f"report {item['report_id']}" if item["report_id"] is not None
                    else f"message {item['message_id']}")
            lines.append(f"{indent}{what} ({item['format']}, {item['source_ip'] or '-'}, "
                         f"received {item['received_at']}): "
                         f"{'; '.join(item['review_reasons'])}")
        more = group["count"] - len(shown)
        if more:
            lines.append(f"{indent}... and {more} more: abuse-desk review list --message "
                         f"{group['message_id']}")
    return lines


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return as_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))


# ---- one report, as a specialist reads it -----------------------------------------------------

VIA_TEXT = {"source_ip": "source IP", "url": "URL host", "domain": "domain",
            "email": "address", "hook": "the resolver hook for IP",
            "specialist": "a specialist's decision"}


def how_found(match: dict[str, Any], occurred: str | None) -> str:
    """How a candidate customer was found, as a sentence fragment:
    "45.137.21.0/24 by source IP 45.137.21.9 at the incident's time (2026-11-24T13:51:00Z)"
    (*occurred* as the reader wants it written)."""
    via, value, resource = match.get("via"), match.get("value"), match.get("resource")
    if via == "specialist":
        return "decided by a specialist"
    if via == "hook":
        return f"the resolver hook ({resource}) for IP {value}"
    text = f"{resource} by {VIA_TEXT.get(str(via), str(via))} {value}"
    if via == "source_ip":
        text += f" at the incident's time ({occurred})" if occurred else " (no incident time)"
    return text


def candidates(report: Report, names: dict[str, str], current: str | None,
               when: Callable[[str | None], str] | None = None) -> list[dict[str, Any]]:
    """The customers the classifier found for *report*, from its stored evidence, each with
    how it was found; the one the report names now first. *when* writes the incident's time
    (default: ISO 8601)."""
    decision = report.decision or {}
    occurred = iso_z(as_utc(report.occurred_at))
    if occurred is not None and when is not None:
        occurred = when(occurred)
    found: dict[str, dict[str, Any]] = {}
    for match in decision.get("matches") or []:
        external = str(match.get("customer"))
        entry = found.setdefault(external, {
            "customer": external, "name": names.get(external, ""),
            "chosen": external == current, "ways": []})
        entry["ways"].append(how_found(match, occurred))
    if current is not None and current not in found:
        found[current] = {"customer": current, "name": names.get(current, ""), "chosen": True,
                          "ways": ["named on the report (no match stored)"]}
    return sorted(found.values(), key=lambda c: (not c["chosen"], c["customer"]))


# ---- merge a report into a case ----------------------------------------------------------------

@dataclass(frozen=True)
class Merged:
    """What :func:`merge_into_case` did: the report is a claim on the case."""

    report_id: int
    case_id: int
    reference: str
    customer: str
    category: str
    type: str
    state: str  # the case's state afterwards
    deadline_at: datetime | None
    reopened: bool


def _check_joinable(case: Any) -> None:
    state = CaseState(case.state)
    if state not in cases.JOINABLE:
        raise ReviewError(f"case {case.reference} is {state.value}: it takes no more claims. "
                          "Set the customer instead: the report opens a new case")


# ---- messages no report could be made of ------------------------------------------------------

@dataclass(frozen=True)
class Reprocessed:
    message_id: int
    state: str  # the message's state afterwards: processed or review (again)
    error: str | None
    reports: list[dict[str, Any]]  # id, review_reason, case reference (or None)
    case: str | None = None  # the case a reply or bounce was attached to


class Review:
    """What a specialist does with the review queue: the queue, a report in full, decisions,
    merges and re-runs. *classifier* classifies a report again with the decision fixed (and
    learns from it); *pipeline* re-runs a message; new case work goes out through *workflow*."""

    def __init__(self, config: Config, engine: Engine, sessions: sessionmaker[Session],
                 clock: Clock, classifier: ClassifierRuntime, workflow: Workflow,
                 pipeline: Pipeline) -> None:
        self.config = config
        self.engine = engine
        self.sessions = sessions
        self.clock = clock
        self.classifier = classifier
        self.workflow = workflow
        self.pipeline = pipeline

    def queue(self, limit: int | None = None) -> list[dict[str, Any]]:
        """What needs a person, oldest first: reports with review reasons, and messages no report
        could be made of (a parser failed or a limit was hit; ``report_id`` is None for those)."""
        items = self._report_items() + self._message_items()
        items.sort(key=lambda item: (item["received_at"] or "", item["message_id"]))
        return items[:limit] if limit is not None else items

    def _message_items(self) -> list[dict[str, Any]]:
        stmt = (select(Message.id, Message.received_at, Message.header_from, Message.header_subject,
                       Message.format, Message.error)
                .where(Message.state == MessageState.REVIEW).order_by(Message.received_at))
        with self.engine.connect() as conn:
            return [{
                "report_id": None, "message_id": m.id, "received_at": iso_z(as_utc(m.received_at)),
                "format": m.format, "type_hint": None, "category": None, "type": None,
                "confidence": None, "customer_id": None, "source_ip": None, "source_port": None,
                "occurred_at": None, "reporter": m.header_from, "subject": m.header_subject,
                "review_reasons": [(m.error or "processing failed").splitlines()[0]],
            } for m in conn.execute(stmt)]

    def _report_items(self) -> list[dict[str, Any]]:
        stmt = (select(Report, Message.received_at, Message.header_from, Message.header_subject,
                       Customer.external_id)
                .join(Message, Message.id == Report.message_id)
                .outerjoin(Customer, Customer.id == Report.customer_id)
                .where(Report.review_reason.is_not(None), Report.reviewed_at.is_(None),
                       Report.duplicate_of.is_(None))
                .order_by(Message.received_at, Report.id))
        with self.sessions() as session:
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

    def decide(self, decision: ReviewDecision) -> Decision:
        """Apply a specialist's decision; returns the report's new classification.

        A decision ends the review item when the report is then not abuse, has no reason left, or
        the specialist has fixed both its type and its customer (in this decision or an earlier
        one on the same report): the reasons still left (a reporter whose signature could not be
        checked or does not verify, a copyright notice, a classification the machine was unsure
        of) are overridden, kept in the report's evidence as ``overridden_reasons``, and the report
        is handled like any other: it joins its customer's case or opens one (audited as the
        specialist's). A decision that leaves the type or the customer open keeps the item in the
        queue, with what is still needed.

        With ``all_rows`` the same decision is made, in the same transaction, on every other row of
        the report's message still in the queue for the same customer (a feed's table): they go
        to one case together, and the customer gets one notice listing them."""
        if decision.not_ours:
            if decision.customer is not None:
                raise ReviewError("a report is either about a customer or not ours, not both")
            return self._not_ours(decision)
        if decision.type is None and decision.customer is None:
            raise ReviewError("say what you decided: a type, a customer, not ours, or not abuse")
        if decision.type is not None and decision.type != NOT_ABUSE and decision.type not in TYPES:
            raise ReviewError(f"unknown type {decision.type!r}; one of: {', '.join(TYPES)} "
                              f"or {NOT_ABUSE}")
        first = self._prepare(decision)
        prepared = [first]
        if decision.all_rows and first.final and first.outcome.customer_id is not None:
            for sibling in self._siblings(decision.report_id, first.outcome.customer_id):
                prepared.append(self._prepare(replace(
                    decision, report_id=sibling, all_rows=False,
                    type=first.outcome.evidence["specialist"]["type"],
                    customer=first.outcome.external_id)))
        now = self.clock()
        writer = self.workflow.writer  # made (its key read) outside the transaction
        runtime = self.classifier
        with self.engine.begin() as conn:
            for one in prepared:
                outcome = one.outcome
                conn.execute(update(Report).where(Report.id == one.report_id).values(
                    category=outcome.category, type=outcome.type, confidence=outcome.confidence,
                    customer_id=outcome.customer_id, decision=outcome.evidence,
                    review_reason="; ".join(outcome.review_reasons) or None,
                    reviewed_by=decision.decided_by, reviewed_at=now if one.final else None))
                detail: dict[str, Any] = {
                    "type": decision.type, "customer": decision.customer,
                    "previous_type": one.previous_type,
                    "remaining_reasons": outcome.review_reasons,
                    "overridden_reasons": one.overridden, "outcome": _ending(outcome, one.final)}
                if one.report_id != decision.report_id:
                    detail["with_row"] = decision.report_id
                conn.execute(insert(Event).values(
                    at=now, actor_kind="specialist", actor=decision.decided_by,
                    subject_type="report", subject_id=one.report_id, action="review-decision",
                    detail=detail))
                if decision.type is not None and one.text and one is first:  # one example
                    runtime.learn(conn, one.text, decision.type, decision.decided_by,
                                  one.report_id)
            # Decided and no reason left: the reports join (or open) their customer's case; the
            # rows of one message for one customer go to the same case (cases.attach_reports).
            attached = cases.attach_reports(
                conn, self.config.workflow, self.workflow.calendar,
                cases.read_reports(conn, [one.report_id for one in prepared]), now,
                cases.Actor("specialist", decision.decided_by))
            if attached.first_case is not None:
                create_ack(conn, writer, first.message_id, attached.first_case, now)
        self.workflow.kick(set(attached.joined.values()))
        return first.outcome

    def _siblings(self, report_id: int, customer_id: int) -> list[int]:
        """The other rows of *report_id*'s message still in the queue for *customer_id*."""
        with self.engine.connect() as conn:
            message_id = conn.execute(select(Report.message_id).where(
                Report.id == report_id)).scalar_one()
            return list(conn.execute(select(Report.id).where(
                Report.message_id == message_id, Report.id != report_id,
                Report.customer_id == customer_id, Report.review_reason.is_not(None),
                Report.reviewed_at.is_(None), Report.case_id.is_(None),
                Report.duplicate_of.is_(None)).order_by(Report.id).limit(MAX_ROWS)).scalars())


    # How many rows of one message one decision takes along (a feed's table for one customer).

    def _prepare(self, decision: ReviewDecision) -> _Prepared:
        """Classify one report again with the decision fixed; nothing written yet."""
        runtime = self.classifier
        with self.sessions() as session:
            report = session.get(Report, decision.report_id)
            if report is None:
                raise ReviewError(f"no report {decision.report_id}")
            message = session.get(Message, report.message_id)
            assert message is not None
            prior = dict((report.decision or {}).get("specialist") or {})
            decided_type = decision.type or prior.get("type")
            decided_customer = decision.customer or prior.get("customer")
            forced_customer = None
            if decided_customer is not None:
                customer = session.scalar(select(Customer).where(
                    Customer.external_id == decided_customer))
                if customer is None:
                    raise ReviewError(f"no customer {decided_customer!r}: import it first "
                                      "(abuse-desk customers import FILE.csv)")
                forced_customer = (customer.id, customer.external_id)
            parsed = parsed_from_row(report)
            facts = MessageFacts(raw=message.raw, from_address=first_address(message.header_from),
                                 message_id=message.header_message_id,
                                 received_at=as_utc(message.received_at) or self.clock(),
                                 subject=message.header_subject or "")
            previous_type = report.type
            message_id = report.message_id
        classifier = runtime.classifier
        trust = classifier.assess_reporter(facts)
        kept_type = decided_type if decided_type is not None else previous_type
        outcome = classifier.classify(parsed, facts, trust, forced_type=kept_type,
                                      forced_customer=forced_customer)
        evidence = dict(outcome.evidence)
        evidence["specialist"] = {"type": decided_type, "customer": decided_customer,
                                  "by": decision.decided_by}
        both = (decided_type is not None and decided_customer is not None
                and outcome.type is not None and outcome.customer_id is not None)
        final = outcome.not_abuse or not outcome.review_reasons or both
        overridden = list(outcome.review_reasons) if final else []
        if overridden:
            evidence["overridden_reasons"] = overridden
            outcome = replace(outcome, review_reasons=[], evidence=evidence)
        else:
            outcome = replace(outcome, evidence=evidence)
        text = "\n".join(p for p in (facts.subject, parsed.evidence or "") if p)
        return _Prepared(decision.report_id, message_id, outcome, final, overridden, previous_type,
                         text)

    def _not_ours(self, decision: ReviewDecision) -> Decision:
        """The specialist found the report is about no customer of ours (an address or a domain
        we do not serve, a reporter's mistake): it is closed without a case, audited. A type
        decided with it is kept (and taught to the text model)."""
        first = self._prepare(replace(decision, not_ours=False, customer=None,
                                       type=decision.type or NOT_ABUSE))
        now = self.clock()
        with self.engine.begin() as conn:
            row = conn.execute(select(Report.type, Report.category, Report.decision).where(
                Report.id == decision.report_id)).one()
            kept_type = decision.type if decision.type not in (None, NOT_ABUSE) else row.type
            evidence = {**(row.decision or {}), "not_ours": {"by": decision.decided_by}}
            conn.execute(update(Report).where(Report.id == decision.report_id).values(
                customer_id=None, type=kept_type, decision=evidence, review_reason=None,
                reviewed_by=decision.decided_by, reviewed_at=now))
            conn.execute(insert(Event).values(
                at=now, actor_kind="specialist", actor=decision.decided_by, subject_type="report",
                subject_id=decision.report_id, action="review-decision",
                detail={"type": decision.type, "customer": None, "not_ours": True,
                        "previous_type": first.previous_type,
                        "overridden_reasons": first.outcome.evidence.get("overridden_reasons", []),
                        "outcome": "closed: not a customer of ours"}))
            if decision.type not in (None, NOT_ABUSE) and first.text:
                self.classifier.learn(conn, first.text, str(decision.type), decision.decided_by,
                                      decision.report_id)
        return replace(first.outcome, customer_id=None, external_id=None, review_reasons=[],
                       type=kept_type, evidence=evidence)

    def next_in_queue(self, after: dict[str, Any] | None,
                      skip: tuple[int | None, int] | None = None,
                      items: list[dict[str, Any]] | None = None) -> dict[str, Any] | None:
        """The queue's item that follows *after* (an item as :func:`queue` gave it, before it was
        decided), else the queue's first; *skip* is (report id, message id) of an item not to give
        back; *items* the queue when the caller has just read it. None when the queue is empty."""
        items = [i for i in (self.queue() if items is None else items)
                 if skip is None or (i["report_id"], i["message_id"]) != skip]
        if not items:
            return None
        if after is not None:
            key = (after["received_at"] or "", after["message_id"], after["report_id"] or 0)
            for item in items:
                if (item["received_at"] or "", item["message_id"], item["report_id"] or 0) > key:
                    return item
        return items[0]

    def queue_item(self, report_id: int | None, message_id: int,
                   items: list[dict[str, Any]] | None = None) -> dict[str, Any] | None:
        """The queue's item for a report (or a message without report), None if not queued."""
        for item in self.queue() if items is None else items:
            if item["report_id"] == report_id and (report_id is not None
                                                   or item["message_id"] == message_id):
                return item
        return None

    def report_detail(self, report_id: int,
                      when: Callable[[str | None], str] | None = None) -> dict[str, Any] | None:
        """Everything the report page shows of one report (the raw message as bytes); None if
        there is no such report. *when* writes times in the candidates' explanations."""
        with self.sessions() as session:
            report = session.get(Report, report_id)
            if report is None:
                return None
            message = session.execute(
                select(Message.id, Message.raw, Message.received_at, Message.header_from,
                       Message.header_subject, Message.header_date, Message.header_message_id,
                       Message.mail_from, Message.size)
                .where(Message.id == report.message_id)).one()
            current = session.scalar(select(Customer.external_id).where(
                Customer.id == report.customer_id)) if report.customer_id is not None else None
            case = session.execute(select(Case.reference, Case.state, Case.deadline_at).where(
                Case.id == report.case_id)).first() if report.case_id is not None else None
            wanted = {str(m.get("customer")) for m in (report.decision or {}).get("matches") or []}
            if current is not None:
                wanted.add(current)
            names = {ext: name for ext, name in session.execute(
                select(Customer.external_id, Customer.name)
                .where(Customer.external_id.in_(sorted(wanted))))} if wanted else {}
            fields = dict(report.fields or {})
            in_queue = bool(report.review_reason and report.reviewed_at is None
                            and report.duplicate_of is None)
            return {
                "id": report.id, "message_id": report.message_id, "seq": report.seq,
                "format": report.format, "type_hint": report.type_hint,
                "category": report.category, "type": report.type, "confidence": report.confidence,
                "source_ip": report.source_ip, "source_port": report.source_port,
                "occurred_at": iso_z(as_utc(report.occurred_at)),
                "occurred_raw": report.occurred_raw,
                "urls": list(fields.get("urls") or []),
                "domains": list(fields.get("domains") or []),
                "reporter_address": fields.get("reporter_address"),
                "reporter_org": fields.get("reporter_org"), "evidence": fields.get("evidence"),
                "incidents": fields.get("incidents"), "extra": fields.get("extra") or {},
                "warnings": list(fields.get("warnings") or []),
                "inferred": list(fields.get("inferred") or []),
                "review_reasons": (report.review_reason or "").split("; ")
                if report.review_reason else [],
                "in_queue": in_queue, "customer": current,
                "customer_name": names.get(current, "") if current else "",
                "candidates": candidates(report, names, current, when),
                "disagreements": list((report.decision or {}).get("disagreements") or []),
                "evidence_named": report.decision or {},
                "case": ({"reference": case.reference, "state": case.state,
                          "deadline_at": iso_z(as_utc(case.deadline_at))}
                         if case is not None else None),
                "duplicate_of": report.duplicate_of, "duplicates": report.duplicates or 0,
                "trusted": report.trusted, "reviewed_by": report.reviewed_by,
                "reviewed_at": iso_z(as_utc(report.reviewed_at)),
                "created_at": iso_z(as_utc(report.created_at)),
                "received_at": iso_z(as_utc(message.received_at)),
                "reporter": message.header_from, "subject": message.header_subject,
                "date": message.header_date, "header_message_id": message.header_message_id,
                "mail_from": message.mail_from, "size": message.size, "raw": message.raw,
            }

    def decidable(self, report_id: int) -> None:
        """Raise ReviewError when a decision on the report would change nothing it should: it is
        already a claim on a case, or a copy of another report (decide that one)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(Report.case_id, Report.duplicate_of, Case.reference)
                               .outerjoin(Case, Case.id == Report.case_id)
                               .where(Report.id == report_id)).first()
        if row is None:
            raise ReviewError(f"no report {report_id}")
        if row.case_id is not None:
            raise ReviewError(f"report {report_id} is already a claim on case {row.reference}: "
                              "change the case instead")
        if row.duplicate_of is not None:
            raise ReviewError(f"report {report_id} is a copy of report {row.duplicate_of}: "
                              "decide that one")

    def merge_into_case(self, report_id: int, case_ref: str, decided_by: str) -> Merged:
        """A specialist attaches a report to an open case as a claim: the report takes the case's
        customer, category and type, is marked reviewed (whatever reasons it still had: the
        specialist looked at them), teaches the text model the case's type, and joins the case
        as any claim does (``workflow.cases.add_claim``: a resolved case reopens, an escalated one
        assesses the claim's fee). A closed or terminated case takes no claim."""
        case_ref = case_ref.strip()
        if not case_ref:
            raise ReviewError("name the case to merge into, e.g. C-2026-000123")
        self.decidable(report_id)
        with self.engine.connect() as conn:
            try:
                case = cases.find_case(conn, case_ref[:64])
            except cases.CaseError:
                raise ReviewError(f"no case {case_ref[:64]!r}: the Cases page lists them") from None
            external = conn.execute(select(Customer.external_id).where(
                Customer.id == case.customer_id)).scalar_one()
        _check_joinable(case)
        runtime = self.classifier
        with self.sessions() as session:
            report = session.get(Report, report_id)
            assert report is not None
            message = session.get(Message, report.message_id)
            assert message is not None
            parsed = parsed_from_row(report)
            facts = MessageFacts(raw=message.raw, from_address=first_address(message.header_from),
                                 message_id=message.header_message_id,
                                 received_at=as_utc(message.received_at) or self.clock(),
                                 subject=message.header_subject or "")
            previous = {"type": report.type, "customer_id": report.customer_id,
                        "reasons": report.review_reason}
            message_id = report.message_id
        classifier = runtime.classifier
        outcome = classifier.classify(parsed, facts, classifier.assess_reporter(facts),
                                      forced_type=case.type,
                                      forced_customer=(case.customer_id, external))
        evidence = dict(outcome.evidence)
        evidence["merged_into"] = {"case": case.reference, "by": decided_by,
                                   "overridden_reasons": outcome.review_reasons}
        now = self.clock()
        text = "\n".join(p for p in (facts.subject, parsed.evidence or "") if p)
        actor = cases.Actor("specialist", decided_by)
        writer = self.workflow.writer  # made (its key read) outside the transaction
        with write_transaction(self.engine) as conn:
            conn.execute(select(Customer.id).where(Customer.id == case.customer_id)
                         .with_for_update(key_share=True))  # serializes claims, as attach_reports
            fresh = conn.execute(select(Case).where(Case.id == case.id)).one()
            _check_joinable(fresh)
            claimed = conn.execute(update(Report).where(
                Report.id == report_id, Report.case_id.is_(None),
                Report.duplicate_of.is_(None)).values(
                category=fresh.category, type=fresh.type, confidence=1.0,
                customer_id=fresh.customer_id, decision=evidence, review_reason=None,
                reviewed_by=decided_by, reviewed_at=now))
            if claimed.rowcount != 1:
                raise ReviewError(f"report {report_id} joined a case meanwhile; reload it")
            row = conn.execute(select(Report).where(Report.id == report_id)).one()
            cases.add_claim(conn, self.config.workflow, self.workflow.calendar, fresh, row, now,
                            actor)
            conn.execute(insert(Event).values(
                at=now, actor_kind=actor.kind, actor=decided_by, subject_type="report",
                subject_id=report_id, action="review-merge",
                detail={"case": fresh.reference, "customer": external, "type": fresh.type,
                        "previous_type": previous["type"],
                        "previous_reasons": previous["reasons"],
                        "overridden_reasons": outcome.review_reasons}))
            if text:
                runtime.learn(conn, text, fresh.type, decided_by, report_id)
            create_ack(conn, writer, message_id, fresh.id, now)
            after = conn.execute(select(Case.state, Case.deadline_at).where(
                Case.id == fresh.id)).one()
        self.workflow.kick([fresh.id])
        return Merged(report_id, fresh.id, fresh.reference, external, fresh.category, fresh.type,
                      after.state, as_utc(after.deadline_at),
                      reopened=CaseState(fresh.state) is CaseState.RESOLVED)

    def message_detail(self, message_id: int) -> dict[str, Any] | None:
        """A stored message as the desk shows it (raw bytes included); None if there is none."""
        with self.sessions() as session:
            m = session.get(Message, message_id)
            if m is None:
                return None
            reports = list(session.execute(select(Report.id, Report.review_reason, Report.case_id,
                                                  Report.reviewed_at)
                                           .where(Report.message_id == message_id)
                                           .order_by(Report.seq)))
            return {
                "id": m.id, "state": m.state, "error": m.error, "format": m.format,
                "disposition": m.disposition, "origin": m.origin, "size": m.size,
                "mail_from": m.mail_from, "rcpt_tos": list(m.rcpt_tos or []), "peer_ip": m.peer_ip,
                "received_at": iso_z(as_utc(m.received_at)),
                "processed_at": iso_z(as_utc(m.processed_at)),
                "header_from": m.header_from, "header_subject": m.header_subject,
                "header_date": m.header_date, "header_message_id": m.header_message_id,
                "case_id": m.case_id, "raw": m.raw,
                "reports": [{"id": r.id, "review_reason": r.review_reason, "case_id": r.case_id,
                             "reviewed": r.reviewed_at is not None} for r in reports],
            }

    def reprocess(self, message_id: int, actor: cases.Actor) -> Reprocessed:
        """Run the pipeline again on a message waiting for review (after a parser fix, a customer
        import, a case it replies to now existing): the message goes back to ``received``, with an
        audit event under *actor*'s name, and is processed here and now. Should that fail on the
        system's side, it stays ``received`` and the sweeper sends it to the workers."""
        now = self.clock()
        with write_transaction(self.engine) as conn:
            row = conn.execute(select(Message.state, Message.error).where(
                Message.id == message_id)).first()
            if row is None:
                raise ReviewError(f"no message {message_id}")
            moved = conn.execute(update(Message).where(
                Message.id == message_id, Message.state == MessageState.REVIEW.value).values(
                state=MessageState.RECEIVED.value, error=None, processed_at=None,
                enqueued_at=now))
            if moved.rowcount != 1:
                raise ReviewError(f"message {message_id} is {row.state}, not waiting for review: "
                                  "nothing to reprocess")
            if conn.execute(select(Report.id).where(Report.message_id == message_id)).first():
                raise ReviewError(f"message {message_id} has reports already: review those")
            conn.execute(insert(Event).values(
                at=now, actor_kind=actor.kind, actor=actor.name, subject_type="message",
                subject_id=message_id, action="reprocess",
                detail={"previous_error": (row.error or "").splitlines()[0][:500]
                        if row.error else None}))
        self.pipeline.process(message_id)
        with self.engine.connect() as conn:
            state, error, case_ref = conn.execute(
                select(Message.state, Message.error, Case.reference)
                .outerjoin(Case, Case.id == Message.case_id).where(Message.id == message_id)).one()
            reports = [{"id": r.id, "review_reason": r.review_reason, "case": r.reference,
                        "duplicate_of": r.duplicate_of}
                       for r in conn.execute(
                           select(Report.id, Report.review_reason, Report.duplicate_of,
                                  Case.reference)
                           .outerjoin(Case, Case.id == Report.case_id)
                           .where(Report.message_id == message_id).order_by(Report.seq))]
        return Reprocessed(message_id, state, error, reports, case_ref)
