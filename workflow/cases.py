"""Cases: a customer's related conduct, its claims, its state, and the steps of its timeline.

Every function here takes an open connection inside the caller's transaction, so a case change is
committed together with what caused it (the reports that joined it, a specialist's decision, a
step that ran) and is never half-done. Every state change writes an audit event saying who and
why.

Joining: a report with a customer, a category and a type, not in review and not a duplicate,
joins the customer's case for related conduct (same type, or the same source IP or domain) whose
last claim is within ``workflow.related_window_days``; otherwise it opens a new case. The rows of
one message for one customer (a feed's table) go to one case together. A resolved case that gets
such a claim is reopened with a fresh notice and deadline (or escalated, when it is a repeat
after "fixed"; or only recorded, when it is about conduct before the fix). Concurrent workers
adding claims for one customer are serialized by a lock on the customer's row (PostgreSQL; on
SQLite the database's write lock already does that).

Related conduct is counted as the acceptable use policy means it: the customer has its time
(five business days, 24 hours for prompt classes) to correct an issue. Complaints about incidents
before the customer was notified, or within ``workflow.occasion_grace_hours`` after, are one
occasion with the first: however many arrive, they never escalate or charge anything on their
own. A *repeat* (:func:`repeat_of`) is conduct after that which returns after the customer said
it was fixed (the case was resolved on the customer's answer), or that goes on after the
deadline passed while the case is still unresolved. When the conduct happened is the report's
incident time (``occurred_at``), else its arrival.

Fees, one per complaint with its reason on the ledger line, only when the customer did not
cooperate: the deadline passed without a resolution or an answer (:func:`deadline_passed`
escalates and charges the case's complaints), or the conduct returned after "fixed"
(:func:`add_claim` reopens and escalates the case and charges the returning complaint). A
customer who answered and is working on it is cooperating: at the deadline the case is only
marked, and conduct that goes on after it escalates the case to the abuse team without a fee
or a proposed action until a specialist confirms. A specialist's escalation charges every
complaint of the case (the specialist's reason on each line).

Only claims of *authenticated* reporters (``reports.decision["authenticated"]``: trusted by
configuration, or DKIM aligned with the From domain; see
``classifier.classify.authentication``) count as repeats, are charged by the timeline and can
lead to a proposed (or automatic) restriction. Unauthenticated claims open a case, notify the
customer and appear on it; escalating on them is a specialist's decision (:func:`escalate` by a
person). A deadline that passes unanswered still escalates (the customer's silence, not a claim
count), but without an authenticated claim it charges nothing and proposes nothing until a
person confirms it.

Lifting a restriction (:func:`lift_approver`) is a supervisor's decision, or automatic where
``workflow.auto_actions`` makes the case's actions automatic; every path that could lift one
(resolving a restricted case, approving a restore) goes through it, whoever calls.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, func, insert, or_, select, update
from sqlalchemy import case as when

from ..classifier.categorize import NOT_ABUSE
from ..core.config import WorkflowConfig
from ..core.db import as_utc
from ..core.models import Case, CaseState, Customer, Event, FeeEntry, Message, Report, TimelineStep
from .calendar import BusinessCalendar

ACTIVE = (CaseState.OPEN, CaseState.NOTIFIED, CaseState.CUSTOMER_RESPONDED)
ESCALATED = (CaseState.ESCALATED, CaseState.RESTRICTED)
JOINABLE = (*ACTIVE, *ESCALATED, CaseState.RESOLVED)
ACTIONS = ("restrict", "terminate", "restore")
# Steps that send the customer a mail (the notice kind is the step kind).
MAIL_STEPS = ("notice", "reminder", "update", "escalation", "action", "resolved")


class CaseError(ValueError):
    """A case operation that cannot be done; the message says what to do instead."""


@dataclass(frozen=True)
class Actor:
    kind: str  # system, specialist, supervisor, customer
    name: str


SYSTEM = Actor("system", "timeline")
# Actors who are people of the desk (web roles; the command line takes the --by user's role).
PEOPLE = ("specialist", "supervisor")
AUTO_APPROVER = "config (workflow.auto_actions)"


def is_person(actor: Actor) -> bool:
    return actor.kind in PEOPLE


def reference(case_id: int, opened_at: datetime) -> str:
    return f"C-{opened_at.year}-{case_id:06d}"


def timeline_class(cfg: WorkflowConfig, type_: str) -> str:
    return "prompt" if type_ in cfg.prompt_types else "standard"


def deadline_for(cfg: WorkflowConfig, calendar: BusinessCalendar, cls: str,
                 start: datetime) -> datetime:
    if cls == "prompt":
        return start + timedelta(hours=cfg.prompt_hours)
    return calendar.add_business_days(start, cfg.business_days)


def reminder_for(cfg: WorkflowConfig, cls: str, deadline: datetime,
                 start: datetime) -> datetime | None:
    hours = cfg.prompt_reminder_before_hours if cls == "prompt" else cfg.reminder_before_hours
    if hours <= 0:
        return None
    at = deadline - timedelta(hours=hours)
    return at if at > start else None


def event(conn: Connection, now: datetime, actor: Actor, case_id: int, what: str,
          **detail: Any) -> None:
    """Write one audit event on a case: who did *what*, with the why in *detail*."""
    conn.execute(insert(Event).values(
        at=now, actor_kind=actor.kind, actor=actor.name, subject_type="case",
        subject_id=case_id, action=what, detail=detail))


def is_due(due_at: datetime, now: datetime) -> bool:
    """Whether a step due at *due_at* is work to hand to the broker at once."""
    return due_at <= now


def add_step(conn: Connection, case_id: int, kind: str, due_at: datetime, now: datetime,
             state: str = "pending", **detail: Any) -> int:
    return int(conn.execute(insert(TimelineStep).values(
        case_id=case_id, kind=kind, due_at=due_at, state=state, detail=detail,
        created_at=now).returning(TimelineStep.id)).scalar_one())


def cancel_steps(conn: Connection, case_id: int, kinds: Iterable[str], now: datetime,
                 why: str) -> int:
    return conn.execute(
        update(TimelineStep)
        .where(TimelineStep.case_id == case_id, TimelineStep.kind.in_(list(kinds)),
               TimelineStep.state.in_(("pending", "queued", "proposed")))
        .values(state="cancelled", done_at=now, error=why)).rowcount


def _lock_customer(conn: Connection, customer_id: int) -> None:
    conn.execute(select(Customer.id).where(Customer.id == customer_id)
                 .with_for_update(key_share=True))


def lock_customers(conn: Connection, customer_ids: Iterable[int]) -> frozenset[int]:
    """Lock the rows of *customer_ids* at once, in id order (claims on one customer's cases are
    serialized by that lock; taking a batch's in one order means two batches never wait on each
    other in a circle); returns those locked, for :func:`attach_reports`. SQLite, which has no
    row locks (its one writer is the lock), locks nothing here."""
    ids = sorted(set(customer_ids))
    if not ids or conn.dialect.name == "sqlite":
        return frozenset()
    conn.execute(select(Customer.id).where(Customer.id.in_(ids)).order_by(Customer.id)
                 .with_for_update(key_share=True))
    return frozenset(ids)


def _related_case(conn: Connection, cfg: WorkflowConfig, report: Any,
                  now: datetime) -> Any | None:
    since = now - timedelta(days=cfg.related_window_days)
    candidates = conn.execute(
        select(Case).where(Case.customer_id == report.customer_id,
                           Case.state.in_([s.value for s in JOINABLE]),
                           Case.last_claim_at >= since)
        .order_by(Case.last_claim_at.desc())).all()
    if not candidates:
        return None
    for case in candidates:
        if case.type == report.type:
            return case
    ids = [c.id for c in candidates]
    domains = set((report.fields or {}).get("domains") or [])
    for case_id, ip, fields in conn.execute(
            select(Report.case_id, Report.source_ip, Report.fields)
            .where(Report.case_id.in_(ids))):
        same_ip = report.source_ip is not None and ip == report.source_ip
        if same_ip or domains & set((fields or {}).get("domains") or []):
            return next(c for c in candidates if c.id == case_id)
    return None


def joinable(report: Any) -> bool:
    """Whether a report can be a claim on a case now."""
    return (report.customer_id is not None and report.type not in (None, NOT_ABUSE)
            and report.category is not None and not report.review_reason
            and report.duplicate_of is None and report.case_id is None)


@dataclass(frozen=True)
class Attached:
    """What :func:`attach_reports` did: *joined* is {report_id: case_id} for the reports that
    joined a case; *due* the cases it gave work that is due at once (a first notice, a reopened
    case's notice, an escalation), which the caller hands to the broker after its commit
    (``Workflow.kick``). A claim on an open case makes nothing due: its later steps are the
    scheduler's."""

    joined: dict[int, int]
    due: frozenset[int]

    @property
    def first_case(self) -> int | None:
        """The case of the message's first report that joined one (its acknowledgement's)."""
        return self.joined[min(self.joined)] if self.joined else None


def read_reports(conn: Connection, report_ids: Iterable[int]) -> list[Any]:
    """The rows of *report_ids*, in that order (what :func:`attach_reports` takes)."""
    ids = list(report_ids)
    rows = {row.id: row for row in conn.execute(select(Report).where(Report.id.in_(ids)))}
    return [rows[i] for i in ids if i in rows]


def attach_reports(conn: Connection, cfg: WorkflowConfig, calendar: BusinessCalendar,
                   reports: Iterable[Any], now: datetime,
                   actor: Actor = Actor("system", "pipeline"),
                   locked: frozenset[int] = frozenset()) -> Attached:
    """Put each joinable report of *reports* (rows of ``reports``, as :func:`read_reports`
    gives them or as the pipeline just wrote them) in its case (opening one where needed).

    The rows of one message for one customer (a scanner's or a CERT's table, a feedback loop's
    digest) are one complaint: the first finds (or opens) the case, the others join that same
    case whatever their type, so the customer gets one case and one notice listing them."""
    joined: dict[int, int] = {}
    due: set[int] = set()
    of_message: dict[tuple[int, int], int] = {}
    for report in reports:
        if not joinable(report):
            continue
        report_id = report.id
        if report.customer_id not in locked:  # (:func:`lock_customers` took it already)
            _lock_customer(conn, report.customer_id)
        key = (report.message_id, report.customer_id)
        if key in of_message:
            sibling = conn.execute(select(Case).where(Case.id == of_message[key])).one()
            if add_claim(conn, cfg, calendar, sibling, report, now, actor):
                due.add(sibling.id)
            joined[report_id] = sibling.id
            continue
        case = _related_case(conn, cfg, report, now)
        if case is None:
            case_id = open_case(conn, cfg, calendar, report, now, actor)
            due.add(case_id)  # its first notice
        else:
            case_id = case.id
            if add_claim(conn, cfg, calendar, case, report, now, actor):
                due.add(case_id)
        joined[report_id] = case_id
        of_message[key] = case_id
    return Attached(joined, frozenset(due))


def open_case(conn: Connection, cfg: WorkflowConfig, calendar: BusinessCalendar, report: Any,
              now: datetime, actor: Actor) -> int:
    """Open a case for *report*; returns its id. Its first notice is due at once."""
    cls = timeline_class(cfg, report.type)
    deadline = deadline_for(cfg, calendar, cls, now)
    case_id = int(conn.execute(insert(Case).values(
        reference=f"new-{report.id}-{now.timestamp()}", customer_id=report.customer_id,
        category=report.category, type=report.type, state=CaseState.OPEN.value,
        timeline_class=cls, claims=1, opened_at=now, deadline_at=deadline, updated_at=now,
        last_claim_at=now).returning(Case.id)).scalar_one())
    conn.execute(update(Case).where(Case.id == case_id).values(
        reference=reference(case_id, now)))
    conn.execute(update(Report).where(Report.id == report.id).values(case_id=case_id))
    _schedule_deadline(conn, cfg, case_id, cls, now, deadline)
    event(conn, now, actor, case_id, "opened", report_id=report.id, timeline_class=cls,
          deadline_at=deadline.isoformat())
    return case_id


def _schedule_deadline(conn: Connection, cfg: WorkflowConfig, case_id: int, cls: str,
                       now: datetime, deadline: datetime) -> None:
    """The notice now, the reminder and the deadline: in one INSERT (a case opens per new
    complaint, so this is on the pipeline's hot path)."""
    plan = [("notice", now)]
    reminder = reminder_for(cfg, cls, deadline, now)
    if reminder is not None:
        plan.append(("reminder", reminder))
    plan.append(("deadline", deadline))
    conn.execute(insert(TimelineStep), [
        {"case_id": case_id, "kind": kind, "due_at": due_at, "state": "pending", "detail": {},
         "created_at": now} for kind, due_at in plan])


def add_claim(conn: Connection, cfg: WorkflowConfig, calendar: BusinessCalendar, case: Any,
              report: Any, now: datetime, actor: Actor) -> bool:
    """*report* is a further claim on *case*; returns whether that gave the case work due at
    once (a reopened case's notice, an escalation)."""
    conn.execute(update(Report).where(Report.id == report.id).values(case_id=case.id))
    conn.execute(update(Case).where(Case.id == case.id).values(
        claims=Case.claims + 1, last_claim_at=now, updated_at=now))
    state = CaseState(case.state)
    repeat = repeat_of(conn, cfg, case, report, now)
    counts = is_authenticated(report) or is_person(actor)
    if state is CaseState.RESOLVED:
        if repeat is not None and counts:
            return _recurred(conn, cfg, case, report, now, actor, repeat)
        fixed = said_fixed_at(conn, case)
        if repeat is None and fixed is not None and incident_at(report) <= fixed:
            # A late complaint about conduct before the customer fixed it: the same occasion,
            # on the record; the customer is not told again.
            event(conn, now, actor, case.id, "claim-added", report_id=report.id,
                  note=f"about conduct before the customer said on {_day(fixed)} it was "
                       "fixed: the same occasion, the case stays resolved")
            return False
        deadline = deadline_for(cfg, calendar, case.timeline_class, now)
        conn.execute(update(Case).where(Case.id == case.id).values(
            state=CaseState.OPEN.value, deadline_at=deadline, resolved_at=None))
        _schedule_deadline(conn, cfg, case.id, case.timeline_class, now, deadline)
        detail: dict[str, Any] = {}
        if repeat is not None:
            detail["note"] = (f"{repeat.reason}; the reporter is not authenticated: a "
                              "specialist decides whether it is a repeat")
        event(conn, now, actor, case.id, "reopened", report_id=report.id,
              reason="a related claim within the window", deadline_at=deadline.isoformat(),
              **detail)
        return True  # its notice
    due = False
    event(conn, now, actor, case.id, "claim-added", report_id=report.id)
    if state in ACTIVE and timeline_class(cfg, report.type) == "prompt" != case.timeline_class:
        due = _make_prompt(conn, cfg, case, report, now, actor)
    if state in ESCALATED and (is_person(actor) or (
            is_authenticated(report) and not _awaiting_person(conn, case.id))):
        assess_fees(conn, cfg, case.id, now, [report.id],
                    reason=f"further complaint on a case escalated on "
                           f"{_day(case.escalated_at)} for not cooperating")
    if state is not CaseState.OPEN:  # an open case's first notice is still to go: it lists all
        pending = conn.execute(select(TimelineStep.id).where(
            TimelineStep.case_id == case.id, TimelineStep.kind == "update",
            TimelineStep.state.in_(("pending", "queued")))).first()
        if pending is None:
            at = now + timedelta(minutes=cfg.update_delay_minutes)
            add_step(conn, case.id, "update", at, now, since=now.isoformat())
            due = due or is_due(at, now)
    if state in ACTIVE and repeat is not None:
        if counts:
            # Conduct that goes on after the deadline while the customer is working on it: the
            # abuse team takes the case over, but a customer who answers is cooperating, so
            # nothing is charged or proposed until a specialist confirms.
            due = escalate(conn, cfg, case.id, now, SYSTEM, repeat.reason, charge=[],
                           facts=repeat.facts,
                           hold_note=("the customer answered and is working on it: nothing "
                                      "charged or proposed; a specialist decides (escalate the "
                                      "case to confirm)")) or due
        else:
            event(conn, now, actor, case.id, "escalation-held", report_id=report.id,
                  reason=f"{repeat.reason}; the reporter is not authenticated: a specialist "
                         "decides whether to escalate")
    return due


@dataclass(frozen=True)
class Repeat:
    """Why a claim is a repeat of conduct the customer was told about: what happened, and the
    dates the escalation mail and the fee ledger name."""

    kind: str  # "after-fixed" or "after-deadline"
    reason: str
    facts: dict[str, Any]


def _day(value: datetime | None) -> str:
    value = as_utc(value)
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else "?"


def incident_at(report: Any) -> datetime:
    """When the conduct a report is about happened: the time the reporter gives for it, unless
    that is missing or later than the report's arrival; else the arrival."""
    created = as_utc(report.created_at)
    occurred = as_utc(report.occurred_at)
    if occurred is not None and created is not None and occurred <= created:
        return occurred
    assert created is not None
    return created


def notified_at(conn: Connection, case_id: int) -> datetime | None:
    """When the customer was last notified of the case (its first notice, or the fresh one of
    a reopened case); None while the notice is still to go."""
    at = conn.execute(select(func.max(Event.at)).where(
        Event.subject_type == "case", Event.subject_id == case_id,
        Event.action == "notified")).scalar()
    return as_utc(at)


def said_fixed_at(conn: Connection, case: Any) -> datetime | None:
    """When the customer said the case's issue was fixed: the time a resolved case was resolved,
    when the customer answered it (or resolved it) after its last notice. None otherwise (a
    specialist closed it without the customer's word)."""
    resolved = as_utc(case.resolved_at)
    if CaseState(case.state) is not CaseState.RESOLVED or resolved is None:
        return None
    since = notified_at(conn, case.id) or as_utc(case.opened_at)
    answered = conn.execute(select(Event.id).where(
        Event.subject_type == "case", Event.subject_id == case.id,
        or_(Event.action == "customer-responded",
            (Event.action == "resolved") & (Event.actor_kind == "customer")),
        Event.at >= since, Event.at <= resolved).limit(1)).first()
    return resolved if answered is not None else None


def repeat_of(conn: Connection, cfg: WorkflowConfig, case: Any, report: Any,
              now: datetime) -> Repeat | None:
    """Whether *report* on *case* is a repeat, as the policy counts related conduct.

    Complaints about incidents before the customer was notified, or within
    ``workflow.occasion_grace_hours`` after, are one occasion with the first: never a repeat.
    A repeat is conduct after that which either returns after the customer said it was fixed
    (the case was resolved on the customer's word), or goes on after the customer had its time
    (the case's deadline passed while it is still unresolved)."""
    notified = notified_at(conn, case.id)
    if notified is None:
        return None
    grace_end = notified + timedelta(hours=cfg.occasion_grace_hours)
    incident = incident_at(report)
    if incident <= grace_end:
        return None
    facts: dict[str, Any] = {"notified_at": notified.isoformat(),
                             "incident_at": incident.isoformat(),
                             "report_id": report.id}
    fixed = said_fixed_at(conn, case)
    if fixed is not None:
        if incident <= fixed:
            return None
        return Repeat("after-fixed", (
            f"the conduct returned on {_day(incident)} after the customer said on "
            f"{_day(fixed)} that it was fixed (notified {_day(notified)})"),
            {**facts, "fixed_at": fixed.isoformat()})
    deadline = as_utc(case.deadline_at)
    if CaseState(case.state) in ACTIVE and deadline is not None and deadline <= now \
            and incident > deadline:
        return Repeat("after-deadline", (
            f"the conduct went on on {_day(incident)}, after the deadline of "
            f"{_day(deadline)} (notified {_day(notified)})"),
            {**facts, "deadline_at": deadline.isoformat()})
    return None


def _recurred(conn: Connection, cfg: WorkflowConfig, case: Any, report: Any, now: datetime,
              actor: Actor, repeat: Repeat) -> bool:
    """The conduct came back after the customer said it was fixed: the case is reopened and
    escalated at once, the returning complaint charged (not the first occasion's, which the
    customer cooperated on). Returns whether it escalated (work due at once)."""
    conn.execute(update(Case).where(Case.id == case.id).values(
        state=CaseState.NOTIFIED.value, resolved_at=None))
    event(conn, now, actor, case.id, "reopened", report_id=report.id, reason=repeat.reason,
          repeat=True)
    return escalate(conn, cfg, case.id, now, SYSTEM, repeat.reason, charge=[report.id],
                    fee_reason=f"recurrence: {repeat.reason}", facts=repeat.facts)


def deadline_passed(conn: Connection, cfg: WorkflowConfig, case: Any, now: datetime) -> str:
    """The case's deadline passed unresolved. Without an answer from the customer it escalates,
    and each authenticated complaint is charged with that reason; a customer who answered and
    is working on it is cooperating: no escalation and no fee, the case says the deadline
    passed and a specialist decides. Returns "escalated" or "answered"."""
    deadline = as_utc(case.deadline_at) or now
    notified = notified_at(conn, case.id)
    facts = {"deadline_at": deadline.isoformat(),
             "notified_at": notified.isoformat() if notified else None}
    if CaseState(case.state) is CaseState.CUSTOMER_RESPONDED:
        event(conn, now, SYSTEM, case.id, "deadline-passed", **facts,
              note=("the customer answered and is working on it: not escalated, nothing "
                    "charged; a specialist decides (extend the deadline, escalate or resolve)"))
        return "answered"
    reason = (f"the deadline of {_day(deadline)} passed without a resolution or an answer "
              f"(notified {_day(notified)})")
    escalate(conn, cfg, case.id, now, SYSTEM, reason, fee_reason=f"no cooperation: {reason}",
             facts=facts)
    return "escalated"


def _make_prompt(conn: Connection, cfg: WorkflowConfig, case: Any, report: Any, now: datetime,
                 actor: Actor) -> bool:
    """A claim that needs prompt resolution joined a standard case: the case gets the prompt
    deadline when that is sooner. Returns whether a step it added is due at once."""
    deadline = now + timedelta(hours=cfg.prompt_hours)
    current = as_utc(case.deadline_at)
    if current is not None and current <= deadline:
        conn.execute(update(Case).where(Case.id == case.id).values(timeline_class="prompt"))
        return False
    conn.execute(update(Case).where(Case.id == case.id).values(
        timeline_class="prompt", deadline_at=deadline))
    cancel_steps(conn, case.id, ("reminder", "deadline"), now, "prompt claim joined")
    reminder = reminder_for(cfg, "prompt", deadline, now)
    if reminder is not None:
        add_step(conn, case.id, "reminder", reminder, now)
    add_step(conn, case.id, "deadline", deadline, now)
    event(conn, now, actor, case.id, "deadline-shortened", report_id=report.id,
          type=report.type, deadline_at=deadline.isoformat())
    return is_due(deadline, now) or (reminder is not None and is_due(reminder, now))


def authenticated_clause() -> ColumnElement[bool]:
    """SQL: the report's reporter is authenticated (reports from before the flag existed: when
    they were trusted)."""
    return or_(Report.decision["authenticated"].as_boolean(), Report.trusted.is_(True))


def is_authenticated(report: Any) -> bool:
    """The same for a ``reports`` row."""
    decision = report.decision if isinstance(report.decision, dict) else {}
    return bool(decision.get("authenticated")) or report.trusted is True


@dataclass(frozen=True)
class ClaimCount:
    """A case's complaints (mails, each counted once) by whether their reporter proved who
    it is."""

    authenticated: int
    unauthenticated: int

    @property
    def total(self) -> int:
        return self.authenticated + self.unauthenticated


def count_claims(conn: Connection, case_id: int, since: datetime | None = None) -> ClaimCount:
    """The case's complaints (since *since*), in one query."""
    stmt = select(func.count(func.distinct(Report.message_id)),
                  func.count(func.distinct(when((authenticated_clause(), Report.message_id)))),
                  ).where(Report.case_id == case_id)
    if since is not None:
        stmt = stmt.where(Report.created_at >= since)
    total, authenticated = conn.execute(stmt).one()
    return ClaimCount(int(authenticated), int(total) - int(authenticated))


def unauthenticated_note(count: ClaimCount) -> str:
    return (f"{count.unauthenticated} unauthenticated claim"
            f"{'' if count.unauthenticated == 1 else 's'}: a specialist decides whether to "
            "escalate")


def assess_fees(conn: Connection, cfg: WorkflowConfig, case_id: int, now: datetime,
                report_ids: Iterable[int] | None = None, reason: str = "") -> int:
    """One fee per complaint (report) of the case that has none yet, each ledger line with
    *reason* (why the customer is charged); returns how many."""
    if cfg.fee_amount_cents <= 0:
        return 0
    if report_ids is None:
        report_ids = list(conn.execute(select(Report.id).where(
            Report.case_id == case_id)).scalars())
    report_ids = list(report_ids)
    charged = set(conn.execute(select(FeeEntry.report_id).where(
        FeeEntry.report_id.in_(report_ids))).scalars())
    rows = [{"case_id": case_id, "report_id": rid, "amount_cents": cfg.fee_amount_cents,
             "currency": cfg.fee_currency, "assessed_at": now, "state": "assessed",
             "reason": reason[:1000] or None}
            for rid in report_ids if rid not in charged]
    if rows:
        conn.execute(insert(FeeEntry), rows)
    return len(rows)


def _proposed_action(conn: Connection, customer_id: int, case_id: int) -> str:
    """Restrict first; terminate when the customer was already restricted on another case."""
    before = conn.execute(select(Case.id).where(
        Case.customer_id == customer_id, Case.id != case_id,
        Case.state.in_((CaseState.RESTRICTED.value, CaseState.TERMINATED.value)))).first()
    return "terminate" if before is not None else "restrict"


def is_automatic(cfg: WorkflowConfig, case: Any) -> bool:
    auto = set(cfg.auto_actions)
    return bool({"all", case.timeline_class, case.type} & auto)


def _awaiting_person(conn: Connection, case_id: int) -> bool:
    """Whether the case's escalation was made without an authenticated claim or a person
    (its deadline passed), so nothing was charged or proposed and a person may confirm it."""
    last = conn.execute(select(Event.action, Event.detail).where(
        Event.subject_type == "case", Event.subject_id == case_id,
        Event.action.in_(("escalated", "escalation-confirmed")))
        .order_by(Event.id.desc()).limit(1)).first()
    return (last is not None and last.action == "escalated"
            and bool((last.detail or {}).get("awaiting_person")))


def escalate(conn: Connection, cfg: WorkflowConfig, case_id: int, now: datetime, actor: Actor,
             reason: str, *, charge: Iterable[int] | None = None, fee_reason: str = "",
             facts: dict[str, Any] | None = None, hold_note: str = "") -> bool:
    """Escalate: the customer told, fees per complaint, a restriction or termination proposed
    (or scheduled, where config makes it automatic). False when already escalated or closed.

    What the escalation may cause depends on what caused it. A person's escalation accepts
    every complaint of the case: each is charged and an action proposed. The timeline's
    charges only complaints of authenticated reporters: *charge* (the complaints the customer
    did not cooperate on; an empty list when the customer is cooperating), or every
    authenticated complaint of the case. It proposes an action only when it charged one;
    otherwise it records that a person must decide (*hold_note* says why), and a person's
    escalation of that case later confirms it (charges, proposes). *facts* (dates: notified,
    deadline, said fixed) go to the escalation mail; *fee_reason* on each fee line."""
    case = conn.execute(select(Case).where(Case.id == case_id)).one()
    state = CaseState(case.state)
    person = is_person(actor)
    confirming = (state is CaseState.ESCALATED and person
                  and _awaiting_person(conn, case_id))
    if state not in ACTIVE and not confirming:
        return False
    if person:
        accepted = list(conn.execute(select(Report.id).where(
            Report.case_id == case_id)).scalars())
        fee_reason = fee_reason or f"escalated by {actor.kind} {actor.name}: {reason}"
    else:
        stmt = select(Report.id).where(Report.case_id == case_id, authenticated_clause())
        if charge is not None:
            stmt = stmt.where(Report.id.in_(list(charge)))
        accepted = list(conn.execute(stmt).scalars())
    backed = person or bool(accepted)
    action = _proposed_action(conn, case.customer_id, case_id) if backed else None
    values: dict[str, Any] = {"state": CaseState.ESCALATED.value, "updated_at": now,
                              "proposed_action": action}
    if not confirming:
        values["escalated_at"] = now
    conn.execute(update(Case).where(Case.id == case_id).values(**values))
    fees = assess_fees(conn, cfg, case_id, now, accepted, reason=fee_reason or reason)
    if not confirming:
        cancel_steps(conn, case_id, ("reminder", "deadline"), now, "escalated")
    facts = dict(facts or {})
    if not facts.get("notified_at"):
        notified = notified_at(conn, case_id)
        facts["notified_at"] = notified.isoformat() if notified else None
    add_step(conn, case_id, "escalation", now, now, reason=reason, charged=fees,
             cooperating=not backed, **facts)
    auto = False
    if action is not None:
        auto = is_automatic(cfg, case)
        add_step(conn, case_id, action, now, now, state="pending" if auto else "proposed",
                 reason=reason, approved_by=AUTO_APPROVER if auto else None)
    detail: dict[str, Any] = {"reason": reason, "fees": fees, "proposed_action": action,
                              "automatic": auto, "accepted_claims": len(accepted)}
    if not backed:
        detail["awaiting_person"] = True
        detail["note"] = hold_note or ("no authenticated claim: nothing charged or proposed; a "
                                       "specialist decides (escalate the case to confirm)")
    event(conn, now, actor, case_id, "escalation-confirmed" if confirming else "escalated",
          **detail)
    return True


def _case(conn: Connection, case_id: int) -> Any:
    case = conn.execute(select(Case).where(Case.id == case_id)).first()
    if case is None:
        raise CaseError(f"no case {case_id}")
    return case


def find_case(conn: Connection, ref: str) -> Any:
    """A case by its reference (C-2026-000123) or its number."""
    ref = ref.strip()
    stmt = select(Case).where(Case.reference == ref.upper()) if not ref.isdigit() else (
        select(Case).where(Case.id == int(ref)))
    case = conn.execute(stmt).first()
    if case is None:
        raise CaseError(f"no case {ref!r}: `abuse-desk cases list` shows them")
    return case


def may_resolve(cfg: WorkflowConfig, state: CaseState, actor: Actor) -> str | None:
    """None when *actor* may resolve a case in *state*; otherwise why not. A customer (the
    self-service page) resolves only a case that is not escalated, and only where
    ``workflow.customer_can_resolve`` allows; their "fixed" never lifts a restriction."""
    if state in (CaseState.RESOLVED, CaseState.CLOSED):
        return f"it is already {state.value}"
    if state is CaseState.TERMINATED:
        return "it is terminated; restore the service first"
    if actor.kind == "customer":
        if not cfg.customer_can_resolve:
            return "customers do not resolve cases here (workflow.customer_can_resolve)"
        if state not in ACTIVE:
            return f"it is {state.value}: the abuse team decides"
    return None


def lift_approver(cfg: WorkflowConfig, case: Any, actor: Actor) -> str | None:
    """The one rule for lifting a restriction: who approves it when *actor* asks. A supervisor
    approves it; where ``workflow.auto_actions`` makes the case's actions automatic, the
    configuration does (for anyone of the desk); otherwise nobody, and it waits for a
    supervisor. A customer never lifts one."""
    if actor.kind == "supervisor":
        return actor.name
    if actor.kind != "customer" and is_automatic(cfg, case):
        return AUTO_APPROVER
    return None


def resolve(conn: Connection, cfg: WorkflowConfig, case_id: int, now: datetime, actor: Actor,
            reason: str) -> str:
    """Resolve the case; returns "resolved", or "restore-proposed" when the case is restricted
    and *actor* may not lift the restriction: then a restore (that resolves the case once it
    is done) waits for a supervisor and the case stays restricted."""
    case = _case(conn, case_id)
    state = CaseState(case.state)
    why = may_resolve(cfg, state, actor)
    if why is not None:
        raise CaseError(f"case {case.reference} cannot be resolved: {why}")
    if state is CaseState.RESTRICTED:
        approver = lift_approver(cfg, case, actor)
        if approver is None:
            return _propose_restore(conn, case, now, actor, reason)
    else:
        approver = None
    conn.execute(update(Case).where(Case.id == case_id).values(
        state=CaseState.RESOLVED.value, resolved_at=now, updated_at=now, proposed_action=None))
    cancel_steps(conn, case_id, ("reminder", "deadline", "update", "restrict", "terminate"),
                 now, f"resolved by {actor.name}")
    if state is CaseState.RESTRICTED:
        cancel_steps(conn, case_id, ("restore",), now, "restore approved on resolve")
        add_step(conn, case_id, "restore", now, now, reason="case resolved",
                 approved_by=approver)
    add_step(conn, case_id, "resolved", now, now)
    event(conn, now, actor, case_id, "resolved", reason=reason, previous_state=state.value)
    return "resolved"


def _propose_restore(conn: Connection, case: Any, now: datetime, actor: Actor,
                     reason: str) -> str:
    proposed = conn.execute(select(TimelineStep.id).where(
        TimelineStep.case_id == case.id, TimelineStep.kind == "restore",
        TimelineStep.state.in_(("proposed", "pending", "queued", "running")))).first()
    if proposed is None:
        add_step(conn, case.id, "restore", now, now, state="proposed",
                 reason=reason or "case resolved", proposed_by=actor.name, resolve=True)
    event(conn, now, actor, case.id, "restore-proposed", reason=reason,
          note="the restriction stays until a supervisor approves the restore")
    return "restore-proposed"


def customer_responded(conn: Connection, case_id: int, now: datetime, actor: Actor,
                       **detail: Any) -> bool:
    """A customer's answer: open/notified cases move to customer-responded; the answer is
    recorded on the case in any state."""
    case = _case(conn, case_id)
    moved = CaseState(case.state) in (CaseState.OPEN, CaseState.NOTIFIED)
    values: dict[str, Any] = {"updated_at": now}
    if moved:
        values["state"] = CaseState.CUSTOMER_RESPONDED.value
    conn.execute(update(Case).where(Case.id == case_id).values(**values))
    event(conn, now, actor, case_id, "customer-responded", state_changed=moved, **detail)
    return moved


def approve_action(conn: Connection, case_id: int, now: datetime, actor: Actor,
                   action: str | None = None, reason: str = "") -> int:
    """A supervisor approves the proposed restriction, termination or restore (or orders
    *action* directly); returns the step that will carry it out. A restore (lifting a
    restriction) is refused to anyone but a supervisor, whoever calls; the web desk and the API
    ask for a supervisor for every approval."""
    case = _case(conn, case_id)
    if action is None:
        action = case.proposed_action
        if action is None and conn.execute(select(TimelineStep.id).where(
                TimelineStep.case_id == case_id, TimelineStep.kind == "restore",
                TimelineStep.state == "proposed")).first() is not None:
            action = "restore"
        if action is None:
            raise CaseError(f"case {case.reference} has no proposed action; name one: "
                            f"{', '.join(ACTIONS)}")
    if action not in ACTIONS:
        raise CaseError(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
    state = CaseState(case.state)
    if action == "restore" and state not in (CaseState.RESTRICTED, CaseState.TERMINATED):
        raise CaseError(f"case {case.reference} is {state.value}: nothing to restore")
    if action == "restore" and actor.kind != "supervisor":
        raise CaseError(f"only a supervisor lifts a restriction; {actor.name} is "
                        f"{actor.kind}: a supervisor approves the restore of {case.reference}")
    if action != "restore" and state in (CaseState.TERMINATED, CaseState.CLOSED):
        raise CaseError(f"case {case.reference} is {state.value}")
    proposed = conn.execute(select(TimelineStep.id, TimelineStep.detail).where(
        TimelineStep.case_id == case_id, TimelineStep.kind == action,
        TimelineStep.state == "proposed")).first()
    if proposed is not None:
        detail = {**(proposed.detail or {}), "approved_by": actor.name}
        detail["reason"] = reason or detail.get("reason") or ""
        conn.execute(update(TimelineStep).where(TimelineStep.id == proposed.id).values(
            state="pending", due_at=now, detail=detail))
        step_id = int(proposed.id)
    else:
        step_id = add_step(conn, case_id, action, now, now, approved_by=actor.name,
                           reason=reason)
    event(conn, now, actor, case_id, "action-approved", action=action, step_id=step_id,
          reason=reason)
    return step_id


def extend_deadline(conn: Connection, cfg: WorkflowConfig, case_id: int, until: datetime,
                    now: datetime, actor: Actor, reason: str) -> None:
    case = _case(conn, case_id)
    if CaseState(case.state) not in ACTIVE:
        raise CaseError(f"case {case.reference} is {case.state}: no deadline to extend")
    if not reason:
        raise CaseError("say why the deadline is extended (--reason)")
    conn.execute(update(Case).where(Case.id == case_id).values(deadline_at=until,
                                                               updated_at=now))
    cancel_steps(conn, case_id, ("reminder", "deadline"), now, "deadline extended")
    reminder = reminder_for(cfg, case.timeline_class, until, now)
    if reminder is not None:
        add_step(conn, case_id, "reminder", reminder, now)
    add_step(conn, case_id, "deadline", until, now)
    event(conn, now, actor, case_id, "deadline-extended", reason=reason,
          previous=str(as_utc(case.deadline_at)) if case.deadline_at else None,
          deadline_at=until.isoformat())


def waive_fee(conn: Connection, fee_id: int, now: datetime, actor: Actor, reason: str) -> int:
    """Waive one fee (or, with a case's fees, see :func:`waive_case_fees`); returns its case."""
    if not reason:
        raise CaseError("say why the fee is waived (--reason)")
    fee = conn.execute(select(FeeEntry).where(FeeEntry.id == fee_id)).first()
    if fee is None:
        raise CaseError(f"no fee {fee_id}")
    if fee.state != "assessed":
        raise CaseError(f"fee {fee_id} is already {fee.state}")
    conn.execute(update(FeeEntry).where(FeeEntry.id == fee_id).values(
        state="waived", waived_by=actor.name, waive_reason=reason))
    event(conn, now, actor, fee.case_id, "fee-waived", fee_id=fee_id, reason=reason,
          amount_cents=fee.amount_cents, currency=fee.currency)
    return int(fee.case_id)


def waive_case_fees(conn: Connection, case_id: int, now: datetime, actor: Actor,
                    reason: str) -> int:
    ids = list(conn.execute(select(FeeEntry.id).where(
        FeeEntry.case_id == case_id, FeeEntry.state == "assessed")).scalars())
    if not ids:
        raise CaseError("this case has no assessed fee to waive")
    for fee_id in ids:
        waive_fee(conn, fee_id, now, actor, reason)
    return len(ids)


def attach_message(conn: Connection, message_id: int, case_id: int) -> None:
    conn.execute(update(Message).where(Message.id == message_id).values(case_id=case_id))
