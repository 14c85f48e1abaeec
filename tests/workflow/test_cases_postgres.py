"""Cases and their timeline on PostgreSQL: the main scenario of ``test_cases.py`` (notice,
reminder, escalation with a fee, a reply threading into its case), and the concurrency only
PostgreSQL really exercises: the customer row lock that serializes claims, the conditional UPDATEs
that make a step or a notice run once, and ``FOR UPDATE SKIP LOCKED`` when claiming due steps.

Threads start together on a ``threading.Barrier``; nothing here asserts on timing."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from abuse_desk.app.wiring import Desk
from abuse_desk.core.db import as_utc
from abuse_desk.core.models import Case, Event, FeeEntry, Message, Notice, Report, TimelineStep
from abuse_desk.ingest.store import Envelope, insert_messages, message_row
from abuse_desk.workflow import cases, timeline
from abuse_desk.workflow.delivery import maildir_name
from sqlalchemy import event as sa_event
from sqlalchemy import func, select

from .workflow_support import (
    START,
    Clock,
    arf,
    case_by_id,
    deliver,
    message_row_of,
    notices_of,
    outbox,
    reports_of,
    steps_of,
    text_of,
    the_case,
    workflow_desk,
)

pytestmark = pytest.mark.service

# Thu 2026-12-03 10:00 EST: five business days after Tue 2026-11-24 10:00, skipping
# Thanksgiving, the desk's closure the day after and the weekend (as in test_cases.py).
DEADLINE = datetime(2026, 12, 3, 15, 0, tzinfo=UTC)


def pg_desk(tmp_path: Path, clock: Clock, postgres_url: str, **sections: dict[str, Any]) -> Desk:
    desk = workflow_desk(tmp_path, clock, database={"url": postgres_url}, **sections)
    assert desk.engine.dialect.name == "postgresql"
    return desk


@pytest.fixture
def desk(tmp_path: Path, clock: Clock, postgres_url: str) -> Iterator[Desk]:
    opened = pg_desk(tmp_path, clock, postgres_url)
    yield opened
    opened.close()


@pytest.fixture
def many_claims_desk(tmp_path: Path, clock: Clock, postgres_url: str) -> Iterator[Desk]:
    """Repeat claims set high: eight claims do not escalate the case."""
    opened = pg_desk(tmp_path, clock, postgres_url, workflow={"repeat_claims": 100})
    yield opened
    opened.close()


def events(desk: Desk, case_id: int) -> list[tuple[str, str, str]]:
    with desk.engine.connect() as conn:
        return [(e.actor_kind, e.actor, e.action) for e in conn.execute(
            select(Event).where(Event.subject_type == "case", Event.subject_id == case_id)
            .order_by(Event.id))]


def together(n: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` for i in 0..n-1 in *n* threads released at once; their results in
    order. An exception in any thread fails the test with it."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(30)
            results[i] = work(i)
        except BaseException as exc:  # reported below, in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "a thread is still running (a lock wait?)"
    if errors:
        raise errors[0]
    return results


def warm(desk: Desk) -> None:
    """Build the desk's lazily made parts (parsers, classifier, notice writer) before threads
    share it, so the threads race on the database only."""
    desk.examination.parsers  # noqa: B018
    desk.examination.classifier  # noqa: B018
    desk.workflow.writer  # noqa: B018
    desk.workflow.transport  # noqa: B018


def store(desk: Desk, raws: list[bytes]) -> list[int]:
    """Insert messages as SMTP would, without processing them."""
    with desk.engine.begin() as conn:
        return insert_messages(conn, [message_row(raw, Envelope(
            "sender@example.org", ["abuse@localhost"], received_at=desk.clock()))
                                      for raw in raws])


# ---- the main scenario -------------------------------------------------------------------------

def test_a_spam_case_is_notified_reminded_and_escalated_with_a_fee(desk: Desk,
                                                                   clock: Clock) -> None:
    case = the_case(desk, deliver(desk, arf("45.137.21.7")))
    assert (case.category, case.type, case.state, case.timeline_class, case.claims) == (
        "spam", "spam", "open", "standard", 1)
    assert case.reference == f"C-2026-{case.id:06d}"
    assert as_utc(case.deadline_at) == DEADLINE
    plan = [(s.kind, as_utc(s.due_at), s.state) for s in steps_of(desk, case.id)]
    assert plan == [("notice", START, "pending"),
                    ("reminder", DEADLINE - timedelta(hours=24), "pending"),
                    ("deadline", DEADLINE, "pending")]

    summary = desk.workflow.run_due()
    assert summary.steps == {"done": 1} and summary.notices == {"sent": 1}
    (mail,) = outbox(desk)
    assert mail["To"] == "noc@alpha.example"
    assert mail["Subject"].startswith(f"[Abuse Case {case.reference}] ")
    assert "Thursday, 3 December 2026, 10:00 EST" in text_of(mail)
    assert case_by_id(desk, case.id).state == "notified"
    (notice,) = notices_of(desk, case.id)
    assert (notice.kind, notice.state, notice.attempts) == ("notice", "sent", 1)

    clock.now = DEADLINE - timedelta(hours=24, seconds=1)
    assert desk.workflow.run_due().steps == {}
    clock.now = DEADLINE - timedelta(hours=24)
    assert desk.workflow.run_due().notices == {"sent": 1}
    assert [n.kind for n in notices_of(desk, case.id)] == ["notice", "reminder"]
    clock.now = DEADLINE - timedelta(seconds=1)
    assert desk.workflow.run_due().steps == {}
    assert case_by_id(desk, case.id).state == "notified"

    clock.now = DEADLINE
    desk.workflow.run_due()
    case = case_by_id(desk, case.id)
    assert (case.state, case.proposed_action) == ("escalated", "restrict")
    assert as_utc(case.escalated_at) == DEADLINE
    assert [n.kind for n in notices_of(desk, case.id)] == ["notice", "reminder", "escalation"]
    assert all(n.state == "sent" for n in notices_of(desk, case.id))
    assert len(outbox(desk)) == 3
    assert "USD 100.00" in text_of(outbox(desk)[-1])
    with desk.engine.connect() as conn:
        fees = list(conn.execute(select(FeeEntry).where(FeeEntry.case_id == case.id)))
    assert [(f.amount_cents, f.currency, f.state) for f in fees] == [(10_000, "USD",
                                                                       "assessed")]
    assert [s.state for s in steps_of(desk, case.id) if s.kind == "restrict"] == ["proposed"]
    assert [a for _, _, a in events(desk, case.id)][:2] == ["opened", "notified"]
    assert ("system", "timeline", "escalated") in events(desk, case.id)


def test_a_customer_reply_threads_into_its_case(desk: Desk) -> None:
    case = the_case(desk, deliver(desk, arf("45.137.21.7")))
    desk.workflow.run_due()
    (mail,) = outbox(desk)
    msg_id, subject = mail["Message-ID"], mail["Subject"]
    reply = (f"From: NOC <noc@alpha.example>\r\nTo: abuse@localhost\r\nSubject: Re: {subject}"
             f"\r\nIn-Reply-To: {msg_id}\r\nReferences: {msg_id}\r\n"
             "Message-ID: <r1@alpha.example>\r\n\r\nWe removed the spam script from "
             "45.137.21.7, sorry.\r\n").encode()
    message_id = deliver(desk, reply)
    assert reports_of(desk, message_id) == []  # never a new complaint
    row = message_row_of(desk, message_id)
    assert (row.disposition, row.case_id, row.state) == ("reply", case.id, "processed")
    assert case_by_id(desk, case.id).state == "customer-responded"
    assert ("customer", "noc@alpha.example", "customer-responded") in events(desk, case.id)


# ---- concurrency -------------------------------------------------------------------------------

def test_concurrent_claims_of_one_customer_join_one_case(many_claims_desk: Desk) -> None:
    desk = many_claims_desk
    ids = store(desk, [arf(f"45.137.21.{n + 10}", n) for n in range(1, 9)])
    warm(desk)
    outcomes = together(8, lambda i: desk.pipeline.process(ids[i]))
    assert outcomes == ["processed"] * 8
    with desk.engine.connect() as conn:
        reports = list(conn.execute(select(Report).where(Report.message_id.in_(ids))))
        all_cases = list(conn.execute(select(Case)))
        states = set(conn.execute(select(Message.state).where(Message.id.in_(ids))).scalars())
    assert states == {"processed"}
    assert len(reports) == 8
    assert {r.duplicate_of for r in reports} == {None}
    assert len({r.case_id for r in reports}) == 1 and reports[0].case_id is not None
    (case,) = all_cases
    assert (case.id, case.claims, case.state) == (reports[0].case_id, 8, "open")
    actions = [a for _, _, a in events(desk, case.id)]
    assert sorted(actions) == ["claim-added"] * 7 + ["opened"]
    # One first notice, one reminder, one deadline: the case was opened once.
    assert sorted(s.kind for s in steps_of(desk, case.id)) == ["deadline", "notice",
                                                                "reminder"]


def test_concurrent_runs_of_one_step_write_one_notice(desk: Desk) -> None:
    case = the_case(desk, deliver(desk, arf("45.137.21.7")))
    (step,) = [s for s in steps_of(desk, case.id) if s.kind == "notice"]
    warm(desk)
    outcomes = together(4, lambda _: desk.workflow.run_step(step.id))
    assert sorted(outcomes) == ["done", "skipped", "skipped", "skipped"]
    (notice,) = notices_of(desk, case.id)
    assert (notice.step_id, notice.kind, notice.state) == (step.id, "notice", "pending")
    assert case_by_id(desk, case.id).state == "notified"
    assert [a for _, _, a in events(desk, case.id)].count("notified") == 1
    (step,) = [s for s in steps_of(desk, case.id) if s.kind == "notice"]
    assert step.state == "done"


@pytest.mark.parametrize("limit", [timeline.CLAIM_BATCH, 7])
def test_concurrent_claims_of_due_steps_are_disjoint_and_complete(desk: Desk, clock: Clock,
                                                                   limit: int) -> None:
    first = the_case(desk, deliver(desk, arf("45.137.21.7")))
    second = the_case(desk, deliver(desk, arf("46.29.160.5")))  # another customer's case
    now = clock.now
    with desk.engine.begin() as conn:
        for n in range(48):  # with the two first notices: 50 due steps
            cases.add_step(conn, (first, second)[n % 2].id, "update",
                           now - timedelta(minutes=n), now, since=now.isoformat())
    with desk.engine.connect() as conn:
        due = set(conn.execute(select(TimelineStep.id).where(
            TimelineStep.due_at <= now, TimelineStep.state == "pending")).scalars())
        not_due = set(conn.execute(select(TimelineStep.id).where(
            TimelineStep.due_at > now)).scalars())
    assert len(due) == 50 and not_due  # the reminders and deadlines

    def claim(_: int) -> list[int]:
        claimed: list[int] = []
        while batch := desk.workflow.claim_due_steps(now, limit=limit):
            assert len(batch) <= limit
            claimed += batch
            if limit == timeline.CLAIM_BATCH:
                break  # one call, as the scheduler makes it
        return claimed

    a, b = together(2, claim)
    assert len(a) == len(set(a)) and len(b) == len(set(b))
    assert not set(a) & set(b)
    assert set(a) | set(b) == due
    with desk.engine.connect() as conn:
        states = dict(conn.execute(select(TimelineStep.id, TimelineStep.state)).all())
        leases = set(conn.execute(select(TimelineStep.lease_until).where(
            TimelineStep.id.in_(due))).scalars())
    assert {states[i] for i in due} == {"queued"}
    assert {states[i] for i in not_due} == {"pending"}
    assert {as_utc(x) for x in leases} == {
        now + timedelta(seconds=desk.config.workflow.step_lease_s)}
    assert desk.workflow.claim_due_steps(now) == []  # all leased


def test_concurrent_deliveries_of_one_notice_send_one_mail(desk: Desk) -> None:
    case = the_case(desk, deliver(desk, arf("45.137.21.7")))
    (step,) = [s for s in steps_of(desk, case.id) if s.kind == "notice"]
    assert desk.workflow.run_step(step.id) == "done"
    (notice,) = notices_of(desk, case.id)
    warm(desk)
    outcomes = together(4, lambda _: desk.workflow.deliver_notice(notice.id))
    assert sorted(outcomes) == ["sent", "skipped", "skipped", "skipped"]
    new = Path(desk.config.notify.maildir) / "new"
    assert [p.name for p in new.iterdir()] == [maildir_name(  # issue 18: <id>-<Message-ID hash>
        f"notice-{notice.id}", f"Message-ID: {notice.header_message_id}\r\n\r\n".encode())]
    (notice,) = notices_of(desk, case.id)
    assert (notice.state, notice.attempts) == ("sent", 1)
    with desk.engine.connect() as conn:
        sent_events = conn.execute(select(func.count()).select_from(Event).where(
            Event.subject_id == case.id, Event.action == "notice-sent")).scalar_one()
        pending = conn.execute(select(func.count()).select_from(Notice).where(
            Notice.state != "sent")).scalar_one()
    assert (sent_events, pending) == (1, 0)


# --- batches (issue 20): claims on several customers, written together ------------------------


def store_many(desk: Desk, raws: list[bytes]) -> list[int]:
    with desk.engine.begin() as conn:
        return insert_messages(conn, [message_row(raw, Envelope(
            "sender@example.org", ["abuse@localhost"], received_at=desk.clock())) for raw in raws])


def test_a_batch_locks_its_customers_at_once_in_one_order(desk: Desk) -> None:
    ids = store_many(desk, [arf("46.29.160.9", 1), arf("45.137.21.7", 2), arf("46.29.160.9", 3)])
    locks: list[tuple[str, Any]] = []

    def seen(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "FOR NO KEY UPDATE" in statement and "FROM customers" in statement:
            locks.append((statement, parameters))

    sa_event.listen(desk.engine, "before_cursor_execute", seen)
    assert desk.pipeline.process_many(ids) == ["processed"] * 3
    (statement, parameters), = locks  # one lock for the batch, none per report
    assert "ORDER BY customers.id" in statement
    assert sorted(parameters.values())[0] != sorted(parameters.values())[-1]  # both customers


def test_batches_naming_customers_in_opposite_orders_never_deadlock(
        desk: Desk, caplog: pytest.LogCaptureFixture) -> None:
    # Two workers' batches, each with claims on both customers, in opposite orders: taking the
    # locks as the claims come would make each wait on the other (PostgreSQL then aborts one,
    # and its messages are written again one by one).
    for round_ in range(4):
        first = store_many(desk, [arf(("46.29.160.9", "45.137.21.7")[n % 2], 100 * round_ + n)
                                  for n in range(6)])
        second = store_many(desk, [arf(("45.137.21.7", "46.29.160.9")[n % 2],
                                       100 * round_ + 50 + n) for n in range(6)])
        results = together(2, lambda i, batches=(first, second):
                           desk.pipeline.process_many(batches[i]))
        assert results == [["processed"] * 6] * 2
    assert "together failed" not in caplog.text


def test_two_copies_written_at_once_make_one_claim(desk: Desk) -> None:
    # A sender that lost our 250 sends the report again: the two copies may be written at the
    # same moment, one in a batch and one alone. The second must find the first's duplicate
    # keys (the customer's lock comes first in every write), not open a second claim.
    for round_ in range(4):
        copy = arf(f"45.137.21.{200 + round_}", 900 + round_)
        batch = store_many(desk, [copy] + [arf(f"45.137.21.{10 + 10 * round_ + n}", n)
                                          for n in range(5)])
        alone = store_many(desk, [copy])
        together(2, lambda i, work=(batch, alone): desk.pipeline.process_many(work[i]))
        copies = [r for m in (batch[0], alone[0]) for r in reports_of(desk, m)]
        assert sorted(r.duplicate_of is None for r in copies) == [False, True]
        assert [r.case_id is not None for r in copies if r.duplicate_of is None] == [True]


def test_a_batch_writes_its_messages_and_reports_set_wise(desk: Desk) -> None:
    ids = store_many(desk, [arf(ip, n) for n, ip in enumerate(
        ["45.137.21.7", "46.29.160.9", "45.137.21.8", "45.137.21.9", "46.29.160.10"], 1)])
    statements: list[str] = []
    sa_event.listen(desk.engine, "before_cursor_execute",
                    lambda conn, cursor, sql, *args: statements.append(" ".join(sql.split())))
    assert desk.pipeline.process_many(ids) == ["processed"] * 5
    # All the batch's reports in one INSERT, the messages moved to their outcomes in one
    # executemany (one per set of columns written), not a statement per message.
    assert sum(s.startswith("INSERT INTO reports") for s in statements) == 1
    assert sum(s.startswith("UPDATE messages SET state") for s in statements) == 1
    assert [len(reports_of(desk, i)) for i in ids] == [1] * 5
