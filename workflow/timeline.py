"""The timeline: due steps run, notices go out, actions reach the provisioning system.

Steps are rows with ``due_at``; the scheduler claims what is due (``queued`` with a lease) and
sends its id to the ``run_step`` actor; notices likewise to ``deliver_notice``. Both actors are
idempotent and re-check the case before acting:

- A mail step (notice, reminder, update, escalation, action, resolved) is done in one
  transaction that moves the step to ``done`` only if it is still ``pending``/``queued`` and
  writes its notice row (``notices.step_id`` is unique): one notice per step, however often the
  step is delivered. If the case has moved on (a reminder for a resolved case) it is ``skipped``
  with the reason.
- A deadline step escalates a case that is still unresolved and unanswered, charging its
  complaints (``cases.deadline_passed``); a case the customer answered is only marked (the
  customer is cooperating); one whose deadline was extended is left alone (the extension
  scheduled its own step).
- An action step (restrict, terminate, restore) is claimed with a lease, the provisioning hook is
  called outside any transaction, and the result recorded; a failure retries with backoff, a
  crash is taken up again when the lease runs out. ``proposed`` steps wait for a supervisor's
  approval; a restore proposed by a specialist's resolve resolves the case once it is done.
- A notice is claimed (``sending`` with a lease), handed to the transport under the stable key
  ``notice-<id>``, then marked ``sent``; temporary failures retry with backoff up to
  ``notify.max_attempts``, permanent ones mark it ``failed`` on its case.

The clock is the desk's (injected): ``abuse-desk timeline run --now ISO`` runs everything due at
that instant through the same functions.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, or_, select, update
from sqlalchemy.exc import SQLAlchemyError

from ..core.broker import Send
from ..core.clock import Clock
from ..core.config import Config
from ..core.db import as_utc
from ..core.logs import log_context
from ..core.models import Case, CaseState, Customer, Notice, TimelineStep
from . import cases, mailer
from .calendar import BusinessCalendar
from .delivery import DeliveryError, Transport, make_transport, retry_delay
from .notices import Writer, create_notice, mail_event
from .provisioning import HookError, call_hook
from .tokens import envelope_sender, secret_key

log = logging.getLogger(__name__)

CLAIM_BATCH = 200


# ---- steps ---------------------------------------------------------------------------------

def _lock_case(conn: Connection, case_id: int) -> Any:
    return conn.execute(select(Case).where(Case.id == case_id).with_for_update()).one()


# Which case states each mail or deadline step runs in (None: any); due in another state, the
# step is skipped with the reason ("case is resolved"): a reminder never reaches a resolved case.
MAIL_STEP_STATES: dict[str, frozenset[CaseState] | None] = {
    "notice": frozenset({CaseState.OPEN}),
    "reminder": frozenset({CaseState.NOTIFIED, CaseState.CUSTOMER_RESPONDED}),
    "update": frozenset({CaseState.NOTIFIED, CaseState.CUSTOMER_RESPONDED,
                         CaseState.ESCALATED, CaseState.RESTRICTED}),
    "escalation": frozenset({CaseState.ESCALATED}),
    "resolved": frozenset({CaseState.RESOLVED}),
    "action": None,  # the customer is told of an action whatever the case became since
    "deadline": frozenset(cases.ACTIVE),
}


def _mail_step(conn: Connection, wf: Workflow, case: Any, step: Any,
               now: datetime) -> tuple[str | None, int | None]:
    """(why skipped, or None; the notice written, if any) for a mail or deadline step: a
    deadline escalates the case unless it was extended; every other kind writes its notice
    (the first notice also marks the case notified)."""
    state = CaseState(case.state)
    kind = step.kind
    if kind not in MAIL_STEP_STATES:
        return f"unknown step kind {kind!r}", None
    allowed = MAIL_STEP_STATES[kind]
    if allowed is not None and state not in allowed:
        return f"case is {state.value}", None
    if kind == "deadline":
        deadline = as_utc(case.deadline_at)
        if deadline is not None and deadline > now:
            return "deadline was extended", None
        cases.deadline_passed(conn, wf.config.workflow, case, now)
        return None, None
    notice = create_notice(conn, wf.writer, case.id, kind, step.id, now,
                           dict(step.detail or {}))
    if kind == "notice":
        conn.execute(update(Case).where(Case.id == case.id).values(
            state=CaseState.NOTIFIED.value, updated_at=now))
        cases.event(conn, now, cases.SYSTEM, case.id, "notified", notice_id=notice)
    return None, notice


@dataclass
class RunSummary:
    steps: dict[str, int] = field(default_factory=dict)
    notices: dict[str, int] = field(default_factory=dict)

    def count(self, table: dict[str, int], outcome: str) -> None:
        table[outcome] = table.get(outcome, 0) + 1


class Workflow:
    """Runs timelines: due steps, notices, actions. Built once per process, with everything it
    uses; *send* hands work to the broker (``send("run_step", id)``), None where there is no
    worker (the scheduler, or ``abuse-desk timeline run``, picks the work up instead). Reads
    the notices' key (``notify.secret_key`` or the database's): the schema must be there."""

    def __init__(self, config: Config, engine: Engine, clock: Clock,
                 send: Send | None = None) -> None:
        self.config = config
        self.engine = engine
        self.clock = clock
        self.send = send
        self.calendar = BusinessCalendar.from_config(config.workflow)
        self.writer = Writer(config=config, calendar=self.calendar,
                             templates=mailer.Templates(config.notify.templates_dir),
                             secret=secret_key(engine, config))
        self.transport: Transport = make_transport(config.notify, config.smtp.hostname)

    def run_step(self, step_id: int) -> str:
        """Run one due step; returns done, skipped, retry, failed or not-due."""
        with log_context(step_id=step_id):
            with self.engine.connect() as conn:
                step = conn.execute(select(TimelineStep).where(TimelineStep.id == step_id)).first()
            if step is None:
                return "skipped"
            if step.kind in cases.ACTIONS:
                return self._run_action(step_id)
            now = self.clock()
            notice_id = None
            try:
                skipped, notice_id = self._run_mail_step(step, now)
            except SQLAlchemyError:
                raise  # the system, not the step: dramatiq retries, the lease covers the rest
            except Exception as exc:  # a template or data problem: visible on the case, not a loop
                log.exception("step %s of case %d failed", step.kind, step.case_id)
                with self.engine.begin() as conn:
                    failed = conn.execute(update(TimelineStep).where(
                        TimelineStep.id == step_id, TimelineStep.state.in_(("pending", "queued")))
                        .values(state="failed", done_at=now,
                                error=f"{exc.__class__.__name__}: {exc}"[:2000])).rowcount
                    if failed:
                        cases.event(conn, now, cases.SYSTEM, step.case_id, "step-failed",
                                    step_id=step_id, kind=step.kind,
                                    error=f"{exc.__class__.__name__}: {exc}"[:500])
                return "failed"
            if skipped == "not claimed":
                return "skipped"
            log.info("step %s %s", step.kind, "skipped: " + skipped if skipped else "done")
            if notice_id is not None:
                self._send_notice(notice_id)
            return "skipped" if skipped else "done"

    def _send_notice(self, notice_id: int) -> None:
        """Hand the notice a step just wrote (leased in the step's transaction, as a kick
        would have: the scheduler leaves it alone) to the broker, without a kick's two
        transactions to find it."""
        if self.send is None:
            return
        try:
            self.send("deliver_notice", notice_id)
        except Exception as exc:  # its lease runs out and the scheduler sends it
            log.warning("could not hand notice %d to the broker now (%s: %s); the scheduler "
                        "will", notice_id, exc.__class__.__name__, exc)


    def _run_mail_step(self, step: Any, now: datetime) -> tuple[str | None, int | None]:
        with self.engine.begin() as conn:
            claimed = conn.execute(
                update(TimelineStep)
                .where(TimelineStep.id == step.id,
                       TimelineStep.state.in_(("pending", "queued")),
                       TimelineStep.due_at <= now)
                .values(state="done", done_at=now, lease_until=None)).rowcount
            if claimed != 1:
                return "not claimed", None
            case = _lock_case(conn, step.case_id)
            skipped, notice_id = _mail_step(conn, self, case, step, now)
            if skipped is not None:
                conn.execute(update(TimelineStep).where(TimelineStep.id == step.id).values(
                    state="skipped", error=skipped))
            if notice_id is not None and self.send is not None:
                conn.execute(update(Notice).where(Notice.id == notice_id).values(
                    lease_until=now + timedelta(seconds=self.config.workflow.step_lease_s)))
        return skipped, notice_id


    def _run_action(self, step_id: int) -> str:
        wf_cfg = self.config.workflow
        now = self.clock()
        lease = now + timedelta(seconds=wf_cfg.step_lease_s)
        with self.engine.begin() as conn:
            claimed = conn.execute(
                update(TimelineStep)
                .where(TimelineStep.id == step_id, TimelineStep.due_at <= now,
                       or_(TimelineStep.state.in_(("pending", "queued")),
                           and_(TimelineStep.state == "running", TimelineStep.lease_until <= now)))
                .values(state="running", lease_until=lease,
                        attempts=TimelineStep.attempts + 1)).rowcount
            if claimed != 1:
                return "skipped"
            step = conn.execute(select(TimelineStep).where(TimelineStep.id == step_id)).one()
            case = conn.execute(select(Case).where(Case.id == step.case_id)).one()
            customer = conn.execute(select(Customer).where(Customer.id == case.customer_id)).one()
        action = step.kind
        reason = (step.detail or {}).get("reason") or ""
        payload = {"action": action, "case": case.reference, "customer_id": customer.external_id,
                   "customer_name": customer.name, "reason": reason}
        try:
            answer = call_hook(wf_cfg, payload)
        except HookError as exc:
            failed = step.attempts >= self.config.notify.max_attempts
            delay = retry_delay(step.attempts, self.config.notify.retry_base_s,
                                self.config.notify.retry_max_s)
            with self.engine.begin() as conn:
                conn.execute(update(TimelineStep).where(
                    TimelineStep.id == step_id, TimelineStep.state == "running").values(
                    state="failed" if failed else "pending", lease_until=None, error=str(exc),
                    due_at=now if failed else now + timedelta(seconds=delay)))
                cases.event(conn, now, cases.SYSTEM, case.id, f"{action}-failed", error=str(exc),
                            attempts=step.attempts, final=failed)
            log.warning("%s for %s failed (attempt %d): %s", action, case.reference,
                        step.attempts, exc)
            return "failed" if failed else "retry"
        now = self.clock()
        with self.engine.begin() as conn:
            done = conn.execute(update(TimelineStep).where(
                TimelineStep.id == step_id, TimelineStep.state == "running").values(
                state="done", done_at=now, lease_until=None, error=None,
                detail={**(step.detail or {}), "answer": answer})).rowcount
            if done != 1:
                return "skipped"
            case = _lock_case(conn, case.id)
            state = CaseState(case.state)
            new_state = {"restrict": CaseState.RESTRICTED, "terminate": CaseState.TERMINATED}.get(
                action)
            if action == "restore":
                new_state = CaseState.ESCALATED if state in (
                    CaseState.RESTRICTED, CaseState.TERMINATED) else None
            values: dict[str, Any] = {"updated_at": now}
            if new_state is not None and not (action == "restrict"
                                               and state is CaseState.TERMINATED):
                values["state"] = new_state.value
            if action in ("restrict", "terminate"):
                values["proposed_action"] = None
            conn.execute(update(Case).where(Case.id == case.id).values(**values))
            past = {"restrict": "restricted", "terminate": "terminated", "restore": "restored"}
            detail = step.detail or {}
            cases.event(conn, now, cases.SYSTEM, case.id, past[action], answer=answer,
                        approved_by=detail.get("approved_by"), reason=reason)
            cases.add_step(conn, case.id, "action", now, now, action=action, reason=reason)
            if action == "restore" and detail.get("resolve") and new_state is CaseState.ESCALATED:
                # A specialist resolved the restricted case; a supervisor approved lifting it.
                cases.resolve(conn, wf_cfg, case.id, now,
                              cases.Actor("supervisor", str(detail.get("approved_by") or "")),
                              f"{reason} (resolved by {detail.get('proposed_by')}, restore "
                              f"approved by {detail.get('approved_by')})")
        self.kick([case.id])
        return "done"


    # ---- notices -------------------------------------------------------------------------------

    def deliver_notice(self, notice_id: int) -> str:
        """Send one notice; returns sent, retry, failed or skipped."""
        notify = self.config.notify
        now = self.clock()
        lease = now + timedelta(seconds=self.config.workflow.step_lease_s)
        with log_context(notice_id=notice_id):
            with self.engine.begin() as conn:
                claimed = conn.execute(
                    update(Notice)
                    .where(Notice.id == notice_id,
                           or_(Notice.next_attempt_at.is_(None), Notice.next_attempt_at <= now),
                           or_(Notice.state == "pending",
                               and_(Notice.state == "sending", Notice.lease_until <= now)))
                    .values(state="sending", lease_until=lease,
                            attempts=Notice.attempts + 1)).rowcount
                if claimed != 1:
                    return "skipped"
                row = conn.execute(select(Notice.raw, Notice.to_addr, Notice.attempts,
                                          Notice.case_id, Notice.kind, Notice.bounce_token,
                                          Notice.message_id)
                                   .where(Notice.id == notice_id)).one()
            try:
                receipt = self.transport.send(  # from its VERP address: bounces match it
                    mail_from=envelope_sender(self.config, row.bounce_token), to=row.to_addr,
                    raw=row.raw or b"", key=f"notice-{notice_id}")
            except (DeliveryError, ValueError) as exc:
                if isinstance(exc, ValueError):  # a notice no transport can take: not retried
                    exc = DeliveryError(f"cannot be sent: {exc}", permanent=True)
                final = exc.permanent or row.attempts >= notify.max_attempts
                delay = retry_delay(row.attempts, notify.retry_base_s, notify.retry_max_s)
                with self.engine.begin() as conn:
                    conn.execute(update(Notice).where(Notice.id == notice_id).values(
                        state="failed" if final else "pending", lease_until=None, error=str(exc),
                        next_attempt_at=None if final else now + timedelta(seconds=delay)))
                    if final:
                        mail_event(conn, now, row.case_id, row.message_id, "notice-failed",
                                   notice_id=notice_id, kind=row.kind, to=row.to_addr,
                                   error=str(exc), attempts=row.attempts)
                log.warning("notice %d to %s %s: %s", notice_id, row.to_addr,
                            "failed" if final else f"will retry in {delay:.0f} s", exc)
                return "failed" if final else "retry"
            with self.engine.begin() as conn:
                conn.execute(update(Notice).where(Notice.id == notice_id).values(
                    state="sent", sent_at=self.clock(), lease_until=None, error=None,
                    receipt=receipt))
                mail_event(conn, now, row.case_id, row.message_id, "notice-sent",
                           notice_id=notice_id, kind=row.kind, to=row.to_addr)
            log.info("notice %d (%s) sent to %s", notice_id, row.kind, row.to_addr)
            return "sent"


    # ---- what is due ----------------------------------------------------------------------------

    def claim_due_steps(self, now: datetime, case_ids: Iterable[int] | None = None,
                        limit: int = CLAIM_BATCH) -> list[int]:
        """Claim due steps (``queued`` with a lease) for the broker; steps whose lease ran out
        (a worker died holding them) are claimed again."""
        lease = now + timedelta(seconds=self.config.workflow.step_lease_s)
        due = (select(TimelineStep.id)
               .where(TimelineStep.due_at <= now,
                      or_(TimelineStep.state == "pending",
                          and_(TimelineStep.state.in_(("queued", "running")),
                               TimelineStep.lease_until <= now)))
               .order_by(TimelineStep.due_at, TimelineStep.id).limit(limit))
        if case_ids is not None:
            due = due.where(TimelineStep.case_id.in_(list(case_ids)))
        with self.engine.begin() as conn:
            ids = list(conn.execute(due.with_for_update(skip_locked=True)).scalars())
            if ids:
                # A running action whose lease ran out (its worker died) is queued again with a
                # fresh lease: its actor claims queued steps, and the next tick leaves it alone.
                conn.execute(update(TimelineStep).where(TimelineStep.id.in_(ids)).values(
                    state="queued", lease_until=lease))
        return ids


    def claim_due_notices(self, now: datetime, case_ids: Iterable[int] | None = None,
                          limit: int = CLAIM_BATCH) -> list[int]:
        lease = now + timedelta(seconds=self.config.workflow.step_lease_s)
        due = (select(Notice.id)
               .where(or_(and_(Notice.state == "pending",
                               or_(Notice.next_attempt_at.is_(None), Notice.next_attempt_at <= now),
                               or_(Notice.lease_until.is_(None), Notice.lease_until <= now)),
                          and_(Notice.state == "sending", Notice.lease_until <= now)))
               .order_by(Notice.id).limit(limit))
        if case_ids is not None:
            due = due.where(Notice.case_id.in_(list(case_ids)))
        with self.engine.begin() as conn:
            ids = list(conn.execute(due.with_for_update(skip_locked=True)).scalars())
            if ids:
                conn.execute(update(Notice).where(Notice.id.in_(ids), Notice.state == "pending")
                             .values(lease_until=lease))
        return ids


    def kick(self, case_ids: Iterable[int]) -> None:
        """Hand what just became due for these cases to the broker at once, instead of at the
        scheduler's next tick. Without a broker (tests, `timeline run`) this does nothing."""
        send = self.send
        if send is None:
            return
        case_ids = list(case_ids)
        if not case_ids:
            return
        now = self.clock()
        try:
            for step_id in self.claim_due_steps(now, case_ids):
                send("run_step", step_id)
            for notice_id in self.claim_due_notices(now, case_ids):
                send("deliver_notice", notice_id)
        except Exception as exc:  # the scheduler picks them up when their lease runs out
            log.warning("could not hand due steps to the broker now (%s: %s); the scheduler will",
                        exc.__class__.__name__, exc)


    def run_due(self, rounds: int = 20) -> RunSummary:
        """Run every step and deliver every notice due at the desk's clock, in this process,
        until nothing more is due (an escalation makes new steps due at once)."""
        summary = RunSummary()
        for _ in range(rounds):
            now = self.clock()
            with self.engine.connect() as conn:
                steps = list(conn.execute(
                    select(TimelineStep.id).where(TimelineStep.state.in_(("pending", "queued")),
                                                  TimelineStep.due_at <= now)
                    .order_by(TimelineStep.due_at, TimelineStep.id)).scalars())
                notices = list(conn.execute(
                    select(Notice.id).where(Notice.state == "pending", or_(
                        Notice.next_attempt_at.is_(None), Notice.next_attempt_at <= now))
                    .order_by(Notice.id)).scalars())
            if not steps and not notices:
                break
            for step_id in steps:
                summary.count(summary.steps, self.run_step(step_id))
            for notice_id in notices:
                summary.count(summary.notices, self.deliver_notice(notice_id))
        return summary
