"""The scheduler's timeline duty (`Scheduler.due_work`) and `timeline.kick`, with a desk whose
broker is a recording function: what is due is sent once and leased, sent again when the lease
runs out, and what is not due (or only proposed) is never sent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from abuse_desk.app.wiring import Desk
from abuse_desk.core.models import Notice, TimelineStep
from abuse_desk.workflow import cases
from abuse_desk.workflow.scheduler import Scheduler
from sqlalchemy import event as sa_event
from sqlalchemy import update

from .workflow_support import (
    START,
    Clock,
    arf,
    case_by_id,
    deliver,
    notices_of,
    person,
    steps_of,
    the_case,
)

Sent = list[tuple[str, int]]


def recording(desk: Desk) -> Sent:
    """Give *desk* a broker that records what it is sent."""
    sent: Sent = []
    desk.workflow.send = lambda name, ident: sent.append((name, ident))
    return sent


def scheduler(desk: Desk) -> Scheduler:
    return Scheduler(desk.engine, desk.clock, desk.config.pipeline, desk.workflow)


def step(desk: Desk, case_id: int, kind: str) -> Any:
    (found,) = [s for s in steps_of(desk, case_id) if s.kind == kind]
    return found


def utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def lease_s(desk: Desk) -> timedelta:
    return timedelta(seconds=desk.config.workflow.step_lease_s)


# ---- steps -----------------------------------------------------------------------------------

def test_without_a_broker_nothing_is_sent_or_claimed(desk: Desk) -> None:
    case = the_case(desk, deliver(desk, arf("45.137.21.7")))
    assert desk.workflow.send is None
    assert scheduler(desk).due_work() == 0
    assert step(desk, case.id, "notice").state == "pending"


def test_a_due_step_is_sent_once_then_again_after_its_lease(desk: Desk, clock: Clock) -> None:
    case = the_case(desk, deliver(desk, arf("45.137.21.7")))  # no broker yet: nothing kicked
    notice_step = step(desk, case.id, "notice")
    sent = recording(desk)

    assert scheduler(desk).due_work() == 1
    assert sent == [("run_step", notice_step.id)]
    claimed = step(desk, case.id, "notice")
    assert claimed.state == "queued"
    assert utc(claimed.lease_until) == START + lease_s(desk)

    # Leased: a second tick right after, and one just before the lease ends, send nothing.
    assert scheduler(desk).due_work() == 0
    clock.now = START + lease_s(desk) - timedelta(seconds=1)
    assert scheduler(desk).due_work() == 0
    assert sent == [("run_step", notice_step.id)]

    # The worker holding it died: when the lease runs out it is sent again, and leased again.
    clock.now = START + lease_s(desk)
    assert scheduler(desk).due_work() == 1
    assert sent == [("run_step", notice_step.id)] * 2
    assert scheduler(desk).due_work() == 0
    assert len(sent) == 2


def test_steps_not_yet_due_are_not_sent(desk: Desk, clock: Clock) -> None:
    case = the_case(desk, deliver(desk, arf("45.137.21.7")))
    reminder = step(desk, case.id, "reminder")
    deadline = step(desk, case.id, "deadline")
    sent = recording(desk)
    desk.workflow.run_step(step(desk, case.id, "notice").id)  # the first notice is done
    sent.clear()  # (its kick sent the notice; not what this test is about)

    clock.now = utc(reminder.due_at) - timedelta(seconds=1)
    scheduler(desk).due_work()
    assert [s for s in sent if s[0] == "run_step"] == []

    clock.now = utc(reminder.due_at)
    scheduler(desk).due_work()
    assert [s for s in sent if s[0] == "run_step"] == [("run_step", reminder.id)]
    assert step(desk, case.id, "deadline").state == "pending"

    assert desk.workflow.run_step(reminder.id) == "done"
    clock.now = utc(deadline.due_at) - timedelta(seconds=1)
    sent.clear()
    scheduler(desk).due_work()
    assert [s for s in sent if s[0] == "run_step"] == []
    clock.now = utc(deadline.due_at)
    scheduler(desk).due_work()
    assert [s for s in sent if s[0] == "run_step"] == [("run_step", deadline.id)]


def test_a_done_step_is_never_sent_again(desk: Desk, clock: Clock) -> None:
    case = the_case(desk, deliver(desk, arf("45.137.21.7")))
    notice_step = step(desk, case.id, "notice")
    sent = recording(desk)
    assert scheduler(desk).due_work() == 1
    assert desk.workflow.run_step(notice_step.id) == "done"
    clock.now += lease_s(desk) * 3
    sent.clear()
    scheduler(desk).due_work()
    assert ("run_step", notice_step.id) not in sent


def test_proposed_action_steps_are_never_sent(desk: Desk, clock: Clock) -> None:
    case = the_case(desk, deliver(desk, arf("45.137.21.7", 1)))
    with desk.engine.begin() as conn:  # a specialist escalates: a restriction is proposed
        cases.escalate(conn, desk.config.workflow, case.id, clock.now,
                       cases.Actor("specialist", "sam"), "confirmed spam run")
    assert case_by_id(desk, case.id).state == "escalated"
    restrict = step(desk, case.id, "restrict")
    assert restrict.state == "proposed"
    assert utc(restrict.due_at) <= clock.now  # due by its time: only the proposal holds it

    sent = recording(desk)
    scheduler(desk).due_work()
    assert ("run_step", step(desk, case.id, "escalation").id) in sent
    for _ in range(3):
        clock.now += timedelta(days=2)
        scheduler(desk).due_work()
    assert ("run_step", restrict.id) not in sent
    assert step(desk, case.id, "restrict").state == "proposed"

    # Approved, it is sent (and only then).
    with desk.engine.begin() as conn:
        cases.approve_action(conn, case.id, clock.now, cases.Actor("specialist", "alice"))
    sent.clear()
    scheduler(desk).due_work()
    assert ("run_step", restrict.id) in sent


def test_an_action_whose_worker_died_is_sent_again_once_per_lease(desk: Desk,
                                                                  clock: Clock) -> None:
    """A running action whose lease ran out is claimed again; the claim is a lease like any
    other, so the next tick right after does not send it a second time."""
    case = the_case(desk, deliver(desk, arf("45.137.21.7", 1)))
    with desk.engine.begin() as conn:
        cases.escalate(conn, desk.config.workflow, case.id, clock.now, cases.SYSTEM, "test")
        step_id = cases.approve_action(conn, case.id, clock.now,
                                       cases.Actor("specialist", "alice"))
        # What _run_action leaves behind when its worker dies mid-call.
        conn.execute(update(TimelineStep).where(TimelineStep.id == step_id).values(
            state="running", attempts=1, lease_until=clock.now + lease_s(desk)))
    sent = recording(desk)
    scheduler(desk).due_work()
    assert ("run_step", step_id) not in sent  # its worker may still be at it

    clock.now += lease_s(desk)
    sent.clear()
    scheduler(desk).due_work()
    assert sent.count(("run_step", step_id)) == 1
    scheduler(desk).due_work()
    scheduler(desk).due_work()
    assert sent.count(("run_step", step_id)) == 1


# ---- notices ---------------------------------------------------------------------------------

def test_a_due_notice_is_sent_once_then_again_after_its_lease(desk: Desk, clock: Clock) -> None:
    case = the_case(desk, deliver(desk, arf("45.137.21.7")))
    assert desk.workflow.run_step(step(desk, case.id, "notice").id) == "done"  # no broker yet
    (notice,) = notices_of(desk, case.id)
    assert notice.state == "pending"
    sent = recording(desk)

    assert scheduler(desk).due_work() == 1
    assert sent == [("deliver_notice", notice.id)]
    (leased,) = notices_of(desk, case.id)
    assert leased.state == "pending"
    assert utc(leased.lease_until) == START + lease_s(desk)
    assert scheduler(desk).due_work() == 0

    clock.now = START + lease_s(desk) - timedelta(seconds=1)
    assert scheduler(desk).due_work() == 0
    clock.now = START + lease_s(desk)
    assert scheduler(desk).due_work() == 1
    assert sent == [("deliver_notice", notice.id)] * 2

    # Delivered, it is never sent again.
    assert desk.workflow.deliver_notice(notice.id) == "sent"
    clock.now += lease_s(desk) * 3
    assert scheduler(desk).due_work() == 0
    assert len(sent) == 2


def test_a_notice_waiting_for_its_retry_is_not_sent_before_it(desk: Desk, clock: Clock) -> None:
    case = the_case(desk, deliver(desk, arf("45.137.21.7")))
    desk.workflow.run_step(step(desk, case.id, "notice").id)
    (notice,) = notices_of(desk, case.id)
    retry_at = START + timedelta(minutes=10)
    with desk.engine.begin() as conn:  # as deliver_notice leaves it after a 4xx
        conn.execute(update(Notice).where(Notice.id == notice.id).values(
            attempts=1, error="451 try later", next_attempt_at=retry_at))
    sent = recording(desk)
    assert scheduler(desk).due_work() == 0
    clock.now = retry_at - timedelta(seconds=1)
    assert scheduler(desk).due_work() == 0
    clock.now = retry_at
    assert scheduler(desk).due_work() == 1
    assert sent == [("deliver_notice", notice.id)]


# ---- kick ------------------------------------------------------------------------------------

def test_kick_sends_a_new_cases_due_work_at_once(desk: Desk) -> None:
    sent = recording(desk)
    case = the_case(desk, deliver(desk, arf("45.137.21.7")))  # the pipeline kicks the case
    notice_step = step(desk, case.id, "notice")
    assert sent == [("run_step", notice_step.id)]
    assert notice_step.state == "queued"
    assert scheduler(desk).due_work() == 0  # kicked work is leased like the scheduler's

    # The step's worker writes the notice, leased in the same transaction, and hands it to
    # the broker in turn (without a kick: it knows the notice it wrote).
    sent.clear()
    commits: list[int] = []
    sa_event.listen(desk.engine, "commit", lambda conn: commits.append(1))
    assert desk.workflow.run_step(notice_step.id) == "done"
    assert len(commits) == 1
    (notice,) = notices_of(desk, case.id)
    assert sent == [("deliver_notice", notice.id)]
    assert scheduler(desk).due_work() == 0


def test_a_batch_kicks_the_due_work_of_all_its_cases_at_once(desk: Desk) -> None:
    from abuse_desk.ingest.store import Envelope, insert_messages, message_row

    sent = recording(desk)
    kicked: list[list[int]] = []
    kick = desk.workflow.kick
    desk.workflow.kick = lambda case_ids: (kicked.append(sorted(case_ids)), kick(case_ids))
    with desk.engine.begin() as conn:
        ids = insert_messages(conn, [message_row(arf(ip, n), Envelope(
            "fbl@mailbox.example", ["abuse@localhost"], received_at=desk.clock()))
            for n, ip in enumerate(["45.137.21.7", "46.29.160.9"], 1)])
    assert desk.pipeline.process_many(ids) == ["processed", "processed"]
    cases = [the_case(desk, i) for i in ids]
    assert kicked == [sorted(c.id for c in cases)]  # one claim for the batch, both cases
    assert sorted(sent) == sorted(("run_step", step(desk, c.id, "notice").id) for c in cases)


def test_kick_sends_only_the_named_cases(desk: Desk) -> None:
    alpha = the_case(desk, deliver(desk, arf("45.137.21.7")))
    beta = the_case(desk, deliver(desk, person(
        "Phishing at shop.beta.example",
        "A phishing page stealing bank logins at http://shop.beta.example/secure/login", "b1")))
    sent = recording(desk)
    desk.workflow.kick([beta.id])
    beta_work = {("run_step", s.id) for s in steps_of(desk, beta.id)} | {
        ("deliver_notice", n.id) for n in notices_of(desk, beta.id)}
    (ack,) = notices_of(desk, beta.id)  # the acknowledgement to the person who complained
    alpha_notice = step(desk, alpha.id, "notice")
    assert sorted(sent) == sorted([("run_step", step(desk, beta.id, "notice").id),
                                   ("deliver_notice", ack.id)])
    assert set(sent) <= beta_work
    assert step(desk, alpha.id, "notice").state == "pending"

    sent.clear()
    desk.workflow.kick([])
    desk.workflow.kick([beta.id])  # already leased
    assert sent == []
    desk.workflow.kick([alpha.id])
    assert sent == [("run_step", alpha_notice.id)]


def test_kick_without_a_broker_leaves_the_work_to_the_scheduler(desk: Desk) -> None:
    case = the_case(desk, deliver(desk, arf("45.137.21.7")))
    desk.workflow.kick([case.id])
    assert step(desk, case.id, "notice").state == "pending"
    sent = recording(desk)
    assert scheduler(desk).due_work() == 1
    assert sent == [("run_step", step(desk, case.id, "notice").id)]
