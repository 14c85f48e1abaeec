"""Related conduct and fees as the acceptable use policy states them, walked through the timeline
with a pinned clock.

The policy gives the customer its time (five business days, 24 hours for prompt classes) to
correct an issue, and charges an administration fee per complaint only when the customer does not
cooperate. So: complaints about incidents before the customer was notified (plus
``workflow.occasion_grace_hours``) are one occasion, never a repeat; a repeat is conduct that goes
on after the deadline passed, or that returns after the customer said it was fixed; fees are
charged when the deadline passes without a resolution or an answer, or when the conduct returns
after "fixed", one per complaint, each ledger line with its reason."""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from abuse_desk.app.wiring import Desk
from abuse_desk.core.db import as_utc
from abuse_desk.core.models import Event, FeeEntry
from abuse_desk.workflow import cases
from sqlalchemy import select

from .workflow_support import (
    START,
    Clock,
    arf,
    case_by_id,
    deliver,
    notices_of,
    outbox,
    steps_of,
    text_of,
    the_case,
    workflow_desk,
)

# Thu 2026-12-03 10:00 EST: five business days after Tue 2026-11-24 10:00 (Thanksgiving, the
# desk's closure the day after and the weekend skipped).
DEADLINE = datetime(2026, 12, 3, 15, 0, tzinfo=START.tzinfo)
IP = "45.137.21.7"


def fbl(n: int, seen: datetime) -> bytes:
    """A report from the trusted feedback loop about spam from IP that arrived at its mailbox
    at *seen* (the incident's time)."""
    raw = arf(IP, n)
    start = raw.index(b"Arrival-Date: ")
    end = raw.index(b"\r\n", start)
    return raw[:start] + f"Arrival-Date: {format_datetime(seen)}".encode() + raw[end:]


def fees(desk: Desk, case_id: int) -> list[Any]:
    with desk.engine.connect() as conn:
        return list(conn.execute(select(FeeEntry).where(FeeEntry.case_id == case_id)
                                 .order_by(FeeEntry.id)))


def actions(desk: Desk, case_id: int) -> list[str]:
    with desk.engine.connect() as conn:
        return list(conn.execute(select(Event.action).where(
            Event.subject_type == "case", Event.subject_id == case_id)
            .order_by(Event.id)).scalars())


def kinds(desk: Desk, case_id: int) -> list[str]:
    return [s.kind for s in steps_of(desk, case_id)]


def customer_says(desk: Desk, case_id: int, fixed: bool, answer: str) -> None:
    """The customer's answer on the self-service page; "fixed" resolves the case."""
    now = desk.clock()
    who = cases.Actor("customer", "noc@alpha.example")
    with desk.engine.begin() as conn:
        cases.customer_responded(conn, case_id, now, who, via="self-service", answer=answer,
                                 fixed=fixed)
        if fixed:
            cases.resolve(conn, desk.config.workflow, case_id, now, who,
                          "the customer reported it fixed")


def test_three_feedback_reports_within_two_minutes_are_one_occasion(desk: Desk,
                                                                    clock: Clock) -> None:
    case = the_case(desk, deliver(desk, fbl(1, START - timedelta(minutes=10))))
    for n in (2, 3):
        clock.now += timedelta(minutes=1)
        deliver(desk, fbl(n, clock.now - timedelta(minutes=5)))
    desk.workflow.run_due()
    # Later reports about the same spam run, within the grace after the notice: still the same.
    clock.now = START + timedelta(hours=2)
    deliver(desk, fbl(4, START + timedelta(hours=1)))
    clock.now = DEADLINE - timedelta(minutes=1)
    desk.workflow.run_due()
    case = case_by_id(desk, case.id)
    assert (case.state, case.claims, case.proposed_action) == ("notified", 4, None)
    assert fees(desk, case.id) == []
    assert not {"escalation", "restrict", "terminate"} & set(kinds(desk, case.id))
    assert "escalated" not in actions(desk, case.id)
    customer = [n.kind for n in notices_of(desk, case.id)]
    assert "escalation" not in customer and customer[0] == "notice"


def test_a_deadline_passed_without_an_answer_escalates_and_charges_each_complaint(
        desk: Desk, clock: Clock) -> None:
    case = the_case(desk, deliver(desk, fbl(1, START - timedelta(minutes=10))))
    desk.workflow.run_due()  # notified at once
    clock.now += timedelta(minutes=2)
    deliver(desk, fbl(2, START - timedelta(minutes=5)))
    desk.workflow.run_due()
    clock.now = DEADLINE
    desk.workflow.run_due()
    case = case_by_id(desk, case.id)
    assert (case.state, case.proposed_action) == ("escalated", "restrict")
    ledger = fees(desk, case.id)
    assert [(f.amount_cents, f.currency, f.state) for f in ledger] == [(10_000, "USD",
                                                                        "assessed")] * 2
    for fee in ledger:
        assert fee.reason.startswith("no cooperation: the deadline of 2026-12-03 15:00 UTC "
                                     "passed without a resolution or an answer")
        assert "notified 2026-11-24 15:00 UTC" in fee.reason
    # The escalation mail says what happened: when notified, which deadline passed, the fees.
    text = text_of(outbox(desk)[-1])
    assert "WHAT HAPPENED" in text
    assert "we notified you of the case" in text
    assert "the deadline to correct the issue passed without a resolution or an" in text
    assert "2 complaints at USD 100.00, a total of USD 200.00" in text
    assert "with your cooperation" not in text
    # The case shows it, and the billing export carries it.
    shown = desk.cases.case_detail(case.reference)["fees"]
    assert all(f["reason"].startswith("no cooperation: the deadline") for f in shown)
    out = io.StringIO()
    assert desk.cases.export_fees(START, DEADLINE + timedelta(days=1), out) == 2
    header, first = out.getvalue().splitlines()[:2]
    assert header.endswith(",reason") and "no cooperation: the deadline" in first


def test_conduct_returning_after_fixed_is_a_repeat_and_charged(desk: Desk,
                                                               clock: Clock) -> None:
    case = the_case(desk, deliver(desk, fbl(1, START - timedelta(minutes=10))))
    desk.workflow.run_due()
    clock.now = START + timedelta(days=1)
    customer_says(desk, case.id, fixed=True, answer="We removed the spam script.")
    fixed_at = clock.now
    assert case_by_id(desk, case.id).state == "resolved"
    # A late report about the old spam run (before "fixed"): the same occasion, not reopened.
    clock.now += timedelta(hours=3)
    deliver(desk, fbl(2, START + timedelta(minutes=30)))
    assert case_by_id(desk, case.id).state == "resolved"
    assert fees(desk, case.id) == []
    # The spam comes back two days later: a repeat, escalated and charged at once.
    clock.now = fixed_at + timedelta(days=2)
    returned = deliver(desk, fbl(3, clock.now - timedelta(minutes=20)))
    case = case_by_id(desk, case.id)
    assert (case.state, case.proposed_action) == ("escalated", "restrict")
    (fee,) = fees(desk, case.id)  # the returning complaint only
    assert fee.report_id == the_report_id(desk, returned)
    assert fee.reason.startswith("recurrence: the conduct returned on ")
    assert "after the customer said on 2026-11-25 15:00 UTC that it was fixed" in fee.reason
    desk.workflow.run_due()
    text = text_of(outbox(desk)[-1])
    assert "you told us the issue was fixed" in text
    assert "the conduct returned" in text
    assert "Because the conduct returned after you told us it was fixed" in text
    assert "1 complaint at USD 100.00" in text


def test_a_customer_who_answered_and_is_working_pays_no_fee(desk: Desk, clock: Clock) -> None:
    case = the_case(desk, deliver(desk, fbl(1, START - timedelta(minutes=10))))
    desk.workflow.run_due()
    clock.now = START + timedelta(days=2)
    customer_says(desk, case.id, fixed=False, answer="We are cleaning the server.")
    clock.now = DEADLINE
    desk.workflow.run_due()
    case = case_by_id(desk, case.id)
    assert (case.state, case.proposed_action) == ("customer-responded", None)
    assert fees(desk, case.id) == []
    assert "deadline-passed" in actions(desk, case.id)
    assert "escalation" not in [n.kind for n in notices_of(desk, case.id)]
    # Complaints about the spam before the deadline still change nothing.
    clock.now = DEADLINE + timedelta(hours=1)
    deliver(desk, fbl(2, DEADLINE - timedelta(hours=3)))
    assert case_by_id(desk, case.id).state == "customer-responded"
    # The spam goes on after the deadline: the abuse team takes over, still without a fee.
    clock.now = DEADLINE + timedelta(hours=5)
    deliver(desk, fbl(3, DEADLINE + timedelta(hours=4)))
    case = case_by_id(desk, case.id)
    assert (case.state, case.proposed_action) == ("escalated", None)
    assert fees(desk, case.id) == []
    desk.workflow.run_due()
    text = text_of(outbox(desk)[-1])
    assert "the conduct was still going on" in text
    assert "no fee is charged" in text and "ADMINISTRATION FEE" not in text
    # A specialist who confirms the escalation decides about fees (as for any escalation).
    with desk.engine.begin() as conn:
        assert cases.escalate(conn, desk.config.workflow, case.id, clock.now,
                              cases.Actor("specialist", "sam"), "no progress for a week")
    assert {f.reason for f in fees(desk, case.id)} == {
        "escalated by specialist sam: no progress for a week"}


def test_the_grace_is_configurable(tmp_path: Path, clock: Clock) -> None:
    desk = workflow_desk(tmp_path, clock, workflow={"occasion_grace_hours": 0})
    case = the_case(desk, deliver(desk, fbl(1, START - timedelta(minutes=10))))
    desk.workflow.run_due()
    clock.now = START + timedelta(hours=2)
    customer_says(desk, case.id, fixed=True, answer="fixed")
    clock.now += timedelta(hours=2)
    deliver(desk, fbl(2, clock.now - timedelta(minutes=30)))  # after the fix, no grace
    assert case_by_id(desk, case.id).state == "escalated"
    assert as_utc(case_by_id(desk, case.id).escalated_at) == clock.now


def the_report_id(desk: Desk, message_id: int) -> int:
    from .workflow_support import reports_of

    (report,) = reports_of(desk, message_id)
    return int(report.id)
