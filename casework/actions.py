"""What a person does to a case, the same from the command line, the web desk and the API.

:func:`apply` takes a case (reference or number), an action and who does it, makes the change in
one transaction (every change is an audit event under that person's name), hands what is due
to the workers, and says what it did. Callers check roles first: ``SUPERVISOR_ACTIONS`` need a
supervisor on the web desk and the API. The rules of what a claim may cause and who lifts a
restriction are below, in ``workflow.cases`` (``escalate``, ``resolve``, ``approve_action``),
so they hold whichever way a person comes in: a specialist resolving a restricted case proposes
the restore to a supervisor, and only a supervisor's approval (or ``workflow.auto_actions``)
lifts it.

``message`` writes the specialist's text (``reason``) to the customer: a notice of kind
``message`` that the timeline delivers like the others (``workflow.notices.create_message``).

Who acts is always someone the desk knows (:func:`account_actor`): the web desk and the API
act as the signed-in account or the token's, the command line's ``--by NAME`` as the enabled
account NAME, with its role. A name that is no account, or a disabled one, is refused (it
used to act as a specialist under any name, so the audit trail could say
"specialist:nobody-such"). The desk's own identity, ``system``, is never taken from a person:
only the timeline (the scheduler, ``abuse-desk timeline run``) acts as it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, select

from ..core.config import WorkflowConfig
from ..core.db import as_utc, write_transaction
from ..core.fields import iso_z
from ..core.models import FeeEntry, Notice, User
from ..workflow import cases, notices
from ..workflow.timeline import Workflow

ACTIONS = ("resolve", "escalate", "approve", "extend", "waive-fee", "note", "message")
SUPERVISOR_ACTIONS = frozenset({"approve", "waive-fee"})
MAX_TEXT = 10_000


ACCOUNTS_HINT = ("`abuse-desk users list` shows the accounts; `abuse-desk users add NAME --role "
                 "specialist` makes one")


def account_actor(engine: Engine, name: str) -> cases.Actor:
    """The person *name* names, acting with the role of their desk account (``abuse-desk
    users``); :class:`workflow.cases.CaseError` when *name* is no enabled account."""
    wanted = name.strip().lower()
    if not wanted:
        raise cases.CaseError(f"say who acts: --by NAME, the name of a desk account; "
                              f"{ACCOUNTS_HINT}")
    with engine.connect() as conn:
        row = conn.execute(select(User.name, User.role, User.disabled)
                           .where(User.name == wanted)).first()
    if row is None:
        why = ("is the desk's own identity (the timeline's), not a person's account"
               if wanted == cases.SYSTEM.kind else "is not an account of the desk")
        raise cases.CaseError(f"{name.strip()[:64]!r} {why}: name the person who acts; "
                              f"{ACCOUNTS_HINT}")
    if row.disabled:
        raise cases.CaseError(f"the account {row.name!r} is disabled: name an enabled account "
                              f"(`abuse-desk users list`), or enable it with `abuse-desk users "
                              f"enable {row.name}`")
    if row.role not in cases.PEOPLE:
        raise cases.CaseError(f"the account {row.name!r} has the role {row.role!r}, which cannot "
                              f"act on cases: `abuse-desk users role {row.name} specialist`")
    return cases.Actor(row.role, row.name)


def provisioning_note(cfg: WorkflowConfig) -> str:
    """What an approved restrict, terminate or restore does with *cfg*: where it goes, or that
    it is only recorded (said by the approve dialog, the command line and the API)."""
    if cfg.action_hook_url or cfg.action_hook_command:
        hook = "workflow.action_hook_url" if cfg.action_hook_url else "action_hook_command"
        return (f"it goes to the provisioning system ({hook}) when the timeline runs its step; "
                "the case shows the answer")
    return ("recorded on the case only: no provisioning hook is configured "
            "(workflow.action_hook_url or action_hook_command), so carry it out on the "
            "customer's service yourself")


@dataclass(frozen=True)
class Request:
    action: str
    reason: str = ""
    until: datetime | None = None  # extend: the new deadline
    business_days: int | None = None  # extend: or this many business days from now
    fee_id: int | None = None  # waive-fee: one fee (else every assessed fee of the case)
    approve: str | None = None  # approve: restrict or terminate (else the proposed one)
    subject: str = ""  # message: the subject after the case tag (else a standard one)


def apply(workflow: Workflow, ref: str, request: Request, who: cases.Actor) -> str:
    """Do *request* to case *ref* as *who*, on *workflow*'s database at its clock; returns a
    sentence saying what was done. Raises :class:`workflow.cases.CaseError` with what to do
    instead."""
    action = request.action
    if action not in ACTIONS:
        raise cases.CaseError(f"unknown action {action!r}; one of: {', '.join(ACTIONS)}")
    reason = request.reason.strip()[:MAX_TEXT]
    if action in ("extend", "waive-fee", "note") and not reason:
        raise cases.CaseError(f"{action} needs a reason (it goes in the audit trail)")
    if action == "message" and not notices.message_text(request.reason).strip():
        raise cases.CaseError("write the message to send to the customer")
    now = workflow.clock()
    wf = workflow.config.workflow
    with write_transaction(workflow.engine) as conn:
        case = cases.find_case(conn, ref)
        if action == "resolve":
            if cases.resolve(conn, wf, case.id, now, who, reason) == "restore-proposed":
                said = (f"{case.reference}: restore proposed; the restriction stays until a "
                        "supervisor approves it, then the case is resolved")
            else:
                said = f"{case.reference} resolved"
        elif action == "escalate":
            if not cases.escalate(conn, wf, case.id, now, who, reason):
                raise cases.CaseError(f"case {case.reference} is {case.state}: only open, "
                                      "notified or customer-responded cases escalate (or an "
                                      "escalation no authenticated claim backed)")
            said = f"{case.reference} escalated"
        elif action == "approve":
            cases.approve_action(conn, case.id, now, who, request.approve, reason)
            said = (f"{case.reference}: {request.approve or case.proposed_action} approved; "
                    + provisioning_note(wf))
        elif action == "extend":
            until = request.until
            if until is None:
                if request.business_days is None or request.business_days < 1:
                    raise cases.CaseError("say until when, or by how many business days")
                until = workflow.calendar.add_business_days(now, request.business_days)
            # Stored as UTC: a column without a zone (SQLite) would keep the wall time.
            until = as_utc(until).astimezone(UTC)  # type: ignore[union-attr]
            if until <= now:
                raise cases.CaseError("the new deadline must be in the future")
            cases.extend_deadline(conn, wf, case.id, until, now, who, reason)
            said = f"{case.reference}: deadline now {iso_z(until)}"
        elif action == "waive-fee":
            if request.fee_id is not None:
                fee_case = conn.execute(select(FeeEntry.case_id).where(
                    FeeEntry.id == request.fee_id)).scalar()
                if fee_case != case.id:
                    raise cases.CaseError(f"fee {request.fee_id} is not a fee of "
                                          f"{case.reference}")
                cases.waive_fee(conn, request.fee_id, now, who, reason)
                said = f"{case.reference}: fee {request.fee_id} waived"
            else:
                count = cases.waive_case_fees(conn, case.id, now, who, reason)
                said = f"{case.reference}: {count} fee(s) waived"
        elif action == "message":
            try:
                notice_id = notices.create_message(conn, workflow.writer, case.id,
                                                   request.reason, now, request.subject)
            except ValueError as exc:  # NoAddress too
                raise cases.CaseError(str(exc)) from None
            to_addr, subject = conn.execute(select(Notice.to_addr, Notice.subject).where(
                Notice.id == notice_id)).one()
            cases.event(conn, now, who, case.id, "message-to-customer", notice_id=notice_id,
                        to=to_addr, subject=subject,
                        text=notices.message_text(request.reason))
            said = f"{case.reference}: message to {to_addr} queued"
        else:  # note
            cases.event(conn, now, who, case.id, "note", text=reason)
            said = f"{case.reference}: note added"
    workflow.kick([case.id])
    return said
