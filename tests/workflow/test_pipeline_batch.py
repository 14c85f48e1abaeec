"""process_messages: a group commit's messages written in one transaction, with the guarantees of
one message at a time (each once in effect, a failure in one never costs the others)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from abuse_desk.app.wiring import Desk
from abuse_desk.core.db import as_utc
from abuse_desk.core.models import Message
from abuse_desk.ingest.store import Envelope, insert_messages, message_row
from abuse_desk.workflow.actors import declare_actors
from abuse_desk.workflow.pipeline import attempt_lease_s
from sqlalchemy import event, select, update
from sqlalchemy.exc import IntegrityError

from tests.workflow.workflow_support import (
    Clock,
    arf,
    case_by_id,
    person,
    reports_of,
    steps_of,
    workflow_desk,
)


def store(desk: Desk, *raws: bytes) -> list[int]:
    with desk.engine.begin() as conn:
        return insert_messages(conn, [message_row(raw, Envelope(
            "sender@example.org", ["abuse@localhost"], received_at=desk.clock()))
            for raw in raws])


def states(desk: Desk, ids: list[int]) -> list[tuple[str, int]]:
    with desk.engine.connect() as conn:
        rows = {r.id: (r.state, r.attempts) for r in conn.execute(
            select(Message.id, Message.state, Message.attempts).where(Message.id.in_(ids)))}
    return [rows[i] for i in ids]


def mixed() -> list[bytes]:
    return [arf("45.137.21.7", 1), arf("46.29.160.9", 2), arf("45.137.21.7", 3),
            person("Spam from 45.137.21.8", "45.137.21.8 spammed me.", "p1"),
            b"From: x@example.org\r\nSubject: hello\r\n\r\nnot a complaint at all\r\n"]


def summary(desk: Desk, ids: list[int]) -> list[Any]:
    """What each message became: its state, and per report its customer, type and case's
    customer, claims and timeline (ids left out: two desks number rows alike anyway)."""
    out = []
    for message_id in ids:
        reports = []
        for report in reports_of(desk, message_id):
            case = case_by_id(desk, report.case_id) if report.case_id else None
            reports.append((report.customer_id, report.type, report.review_reason,
                            case.claims if case else None, case.state if case else None,
                            [s.kind for s in steps_of(desk, case.id)] if case else None))
        out.append((states(desk, [message_id])[0][0], reports))
    return out


def beside_one_by_one(tmp_path: Path, clock: Clock) -> tuple[Desk, list[int], Desk, list[int]]:
    """Two desks with the same messages: the first processed them one by one (its desk and
    ids first), the second only stored them (for a batch)."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one_by_one = workflow_desk(tmp_path / "a", clock)
    batched = workflow_desk(tmp_path / "b", clock)
    singles = store(one_by_one, *mixed())
    for message_id in singles:
        one_by_one.pipeline.process(message_id)
    return one_by_one, singles, batched, store(batched, *mixed())


def test_a_batch_is_written_as_the_messages_one_by_one(tmp_path: Path, clock: Clock) -> None:
    one_by_one, singles, batched, ids = beside_one_by_one(tmp_path, clock)
    assert batched.pipeline.process_many(ids) == [
        "processed", "processed", "processed", "processed", "processed"]
    assert summary(batched, ids) == summary(one_by_one, singles)
    # the first, third and the person's complaint are three claims on Alpha's one open case
    # (45.137.21.0/24); the second is Gamma's case
    claims = [r[0][3] for _, r in summary(batched, ids)[:4]]
    assert claims == [3, 1, 3, 3]
    one_by_one.engine.dispose()
    batched.engine.dispose()


def test_a_batch_is_one_write_transaction(desk: Desk) -> None:
    ids = store(desk, *mixed())
    commits: list[int] = []
    event.listen(desk.engine, "commit", lambda conn: commits.append(1))
    desk.pipeline.process_many(ids)
    # one transaction records the attempts (a worker that dies is counted), one writes them all
    assert len(commits) == 2


def test_a_batch_skips_what_another_delivery_wrote_meanwhile(
        tmp_path: Path, clock: Clock) -> None:
    one_by_one, singles, batched, ids = beside_one_by_one(tmp_path, clock)
    assert batched.pipeline.process(ids[2]) == "processed"  # another worker's delivery
    assert batched.pipeline.process_many(ids) == [
        "processed", "processed", "skipped", "processed", "processed"]
    # the claims, cases and timelines differ from one by one only in which came first
    assert sorted(map(repr, summary(batched, ids))) == sorted(map(repr, summary(one_by_one,
                                                                                singles)))
    assert [len(reports_of(batched, i)) for i in ids] == [
        len(reports_of(one_by_one, i)) for i in singles]


def test_a_batch_delivered_twice_is_written_once(desk: Desk) -> None:
    ids = store(desk, *mixed())
    desk.pipeline.process_many(ids)
    first = summary(desk, ids)
    assert desk.pipeline.process_many(ids) == ["skipped"] * len(ids)
    assert desk.pipeline.process_many([ids[0], ids[0]]) == ["skipped", "skipped"]
    assert summary(desk, ids) == first


@pytest.mark.parametrize("failure", [
    IntegrityError("INSERT INTO reports", {}, Exception("a constraint")),  # the database's word
    RuntimeError("a bug on this message's content"),  # ours
])
def test_one_message_that_cannot_be_written_does_not_cost_the_others(
        desk: Desk, monkeypatch: pytest.MonkeyPatch, failure: Exception) -> None:
    ids = store(desk, *mixed())
    bad = ids[1]
    pipeline = desk.pipeline
    real = pipeline._insert_reports

    def insert_reports(conn: Any, messages: list[tuple[int, Any, Any]], *args: Any) -> Any:
        if any(message_id == bad for message_id, _, _ in messages):
            raise failure
        return real(conn, messages, *args)

    monkeypatch.setattr(pipeline, "_insert_reports", insert_reports)
    with pytest.raises(type(failure)):
        pipeline.process_many(ids)
    after = states(desk, ids)
    assert [state for state, _ in after] == [
        "processed", "received", "processed", "processed", "processed"]
    # the failure was ours, not the message's: its attempt is given back
    assert after[1] == ("received", 0)

    # the broker's retry of the batch: only that message is tried again
    monkeypatch.setattr(pipeline, "_insert_reports", real)
    assert pipeline.process_many(ids) == [
        "skipped", "processed", "skipped", "skipped", "skipped"]
    assert len(reports_of(desk, bad)) == 1


def test_an_examination_that_fails_gives_back_the_batch(
        desk: Desk, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = store(desk, *mixed())
    real = desk.pipeline._examine_claimed
    seen: list[int] = []

    def examine(message_id: int, claimed: Any) -> Any:
        seen.append(message_id)
        if len(seen) == 3:
            raise OSError("the examiner could not start")
        return real(message_id, claimed)

    monkeypatch.setattr(desk.pipeline, "_examine_claimed", examine)
    with pytest.raises(OSError):
        desk.pipeline.process_many(ids)
    # nothing written, and no message charged an attempt for a failure of ours
    assert states(desk, ids) == [("received", 0)] * len(ids)


def test_the_actor_takes_a_batch(desk: Desk) -> None:
    ids = store(desk, *mixed())
    actors = declare_actors(desk.broker, desk.pipeline, desk.workflow, max_retries=0)
    actors.process_messages.fn(ids)
    assert [state for state, _ in states(desk, ids)] == ["processed"] * len(ids)


def test_slow_messages_renew_the_attempts_of_those_waiting(
        desk: Desk, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = store(desk, *mixed()[:3])
    lease = attempt_lease_s(desk.config.parsers)
    real = desk.pipeline._examine_claimed
    seen: list[int] = []

    def examine(message_id: int, claimed: Any) -> Any:
        seen.append(message_id)
        if len(seen) == 1:  # the first takes a while; meanwhile another attempt takes the last
            clock.advance(lease / 4 + 1)
            with desk.engine.begin() as conn:
                conn.execute(update(Message).where(Message.id == ids[2])
                             .values(attempted_at=clock(), attempts=Message.attempts + 1))
        if len(seen) == 2:
            with desk.engine.connect() as conn:
                stamps = dict(conn.execute(select(Message.id, Message.attempted_at)
                                           .where(Message.id.in_(ids[1:]))).all())
            # the second's attempt is renewed: still running, not an attempt that died
            assert as_utc(stamps[ids[1]]) == clock()
        return real(message_id, claimed)

    monkeypatch.setattr(desk.pipeline, "_examine_claimed", examine)
    assert desk.pipeline.process_many(ids) == ["processed"] * 3
    # the one taken over was written once, by this batch, as a duplicate attempt (uncounted)
    assert states(desk, ids) == [("processed", 1), ("processed", 1), ("processed", 2)]
