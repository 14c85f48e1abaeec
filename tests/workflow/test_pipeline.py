"""process_message: outcome, idempotency, concurrent deliveries, content and system failures,
and the dramatiq actor on the in-process broker."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import dramatiq
import pytest
from abuse_desk.app.wiring import Desk
from abuse_desk.core.db import as_utc
from abuse_desk.core.models import Event, Message, MessageState
from abuse_desk.ingest.store import Envelope, insert_messages, message_row
from abuse_desk.workflow import examine as examine_module
from abuse_desk.workflow import pipeline as pipeline_module
from abuse_desk.workflow.actors import declare_actors
from sqlalchemy import create_engine, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import undefer

from tests.support import NOW, message

DATE = "Sun, 01 Mar 2026 11:58:00 +0000"


@pytest.fixture
def desk(fixed_desk: Desk) -> Desk:
    return fixed_desk


def store(desk: Desk, raw: bytes | None = None) -> int:
    if raw is None:
        raw = message("spam from 192.0.2.7", extra=f"Date: {DATE}\r\n")
    row = message_row(raw, Envelope(mail_from="reporter@example.org",
                                    rcpt_tos=["abuse@localhost"],
                                    received_at=NOW - timedelta(seconds=30)))
    with desk.engine.begin() as conn:
        (message_id,) = insert_messages(conn, [row])
    return message_id


def load(desk: Desk, message_id: int) -> Message:
    with desk.sessions() as session:
        found = session.get(Message, message_id, options=[undefer(Message.raw)])
        assert found is not None
        return found


def events(desk: Desk, message_id: int) -> list[Event]:
    with desk.sessions() as session:
        return list(session.scalars(select(Event).where(
            Event.subject_type == "message", Event.subject_id == message_id)))


def event_count(desk: Desk) -> int:
    with desk.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(Event)).scalar_one())


# --- the ordinary path ------------------------------------------------------------------------


def test_stored_message_is_processed(desk: Desk) -> None:
    message_id = store(desk)
    assert desk.pipeline.process(message_id) == "processed"

    stored = load(desk, message_id)
    assert stored.state == MessageState.PROCESSED
    assert stored.header_subject == "spam from 192.0.2.7"
    assert stored.header_from == "reporter@example.org"
    assert stored.header_message_id == "<spam.from.192.0.2.7@example.org>"
    assert stored.header_date == DATE
    assert stored.error is None
    assert as_utc(stored.processed_at) == NOW

    (event,) = events(desk, message_id)
    assert event.action == "processed"
    assert event.actor_kind == "system"
    assert event.actor == "pipeline"
    assert as_utc(event.at) == NOW
    # the parsers ran: free text naming the offender's IP in the subject
    assert event.detail == {"disposition": "report", "format": "text", "parser": "text",
                            "reports": 1, "duplicates": 0}


def test_raw_bytes_are_not_rewritten(desk: Desk) -> None:
    raw = b"Subject: caf\xe9\r\nX-Bin: \xff\x00\r\nFrom:  a@b \r\n\r\nbody\xff\r\n"
    message_id = store(desk, raw)
    desk.pipeline.process(message_id)
    assert load(desk, message_id).raw == raw


def test_message_without_headers_is_processed_with_nones(desk: Desk) -> None:
    message_id = store(desk, b"no headers, just text")
    assert desk.pipeline.process(message_id) == "processed"
    stored = load(desk, message_id)
    assert stored.state == MessageState.PROCESSED
    assert (stored.header_subject, stored.header_from, stored.header_message_id,
            stored.header_date) == (None, None, None, None)


def test_only_the_given_message_is_processed(desk: Desk) -> None:
    first, second = store(desk), store(desk)
    desk.pipeline.process(second)
    assert load(desk, first).state == MessageState.RECEIVED
    assert load(desk, second).state == MessageState.PROCESSED
    assert events(desk, first) == []


def test_second_delivery_is_skipped(desk: Desk) -> None:
    message_id = store(desk)
    assert desk.pipeline.process(message_id) == "processed"
    assert desk.pipeline.process(message_id) == "skipped"
    assert len(events(desk, message_id)) == 1
    assert load(desk, message_id).state == MessageState.PROCESSED


def test_unknown_id_is_skipped(desk: Desk) -> None:
    assert desk.pipeline.process(424242) == "skipped"
    assert event_count(desk) == 0


def deliver_concurrently(desk: Desk, message_id: int, threads_n: int,
                         barrier: threading.Barrier | None = None) -> list[str]:
    """process_message from *threads_n* threads at once (released together by *barrier* if
    given); returns their outcomes, failing on any exception."""
    outcomes: list[str] = []
    errors: list[BaseException] = []

    def deliver() -> None:
        try:
            if barrier is not None:
                barrier.wait(10)
            outcomes.append(desk.pipeline.process(message_id))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=deliver) for _ in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    return outcomes


def test_concurrent_deliveries_process_once(desk: Desk) -> None:
    message_id = store(desk)
    threads_n = 4
    outcomes = deliver_concurrently(desk, message_id, threads_n, threading.Barrier(threads_n))
    assert sorted(outcomes) == ["processed"] + ["skipped"] * (threads_n - 1)
    assert len(events(desk, message_id)) == 1
    assert load(desk, message_id).state == MessageState.PROCESSED


def test_concurrent_deliveries_all_past_the_first_read(desk: Desk,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Every delivery reads the message as ``received`` before any writes: the claiming UPDATE
    alone must let exactly one through."""
    message_id = store(desk)
    threads_n = 4
    barrier = threading.Barrier(threads_n)
    real_read = examine_module.read_top_headers

    def read_then_wait(raw: bytes) -> Any:
        headers = real_read(raw)
        barrier.wait(10)  # all deliveries have read the state before any of them writes
        return headers

    monkeypatch.setattr(examine_module, "read_top_headers", read_then_wait)
    outcomes = deliver_concurrently(desk, message_id, threads_n)
    assert sorted(outcomes) == ["processed"] + ["skipped"] * (threads_n - 1)
    assert len(events(desk, message_id)) == 1


# --- failures ---------------------------------------------------------------------------------


def test_content_failure_goes_to_review(desk: Desk, monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(raw: bytes) -> Any:
        raise ValueError("hostile header block")

    monkeypatch.setattr(examine_module, "read_top_headers", explode)
    message_id = store(desk)
    assert desk.pipeline.process(message_id) == "review"

    stored = load(desk, message_id)
    assert stored.state == MessageState.REVIEW
    assert stored.error is not None
    assert "ValueError" in stored.error
    assert "hostile header block" in stored.error
    assert stored.header_subject is None
    (event,) = events(desk, message_id)
    assert event.action == "review"
    assert event.detail == {"reason": stored.error}
    # and it is not picked up again
    assert desk.pipeline.process(message_id) == "skipped"
    assert len(events(desk, message_id)) == 1


def test_system_failure_on_write_raises_and_keeps_received(
        desk: Desk, monkeypatch: pytest.MonkeyPatch) -> None:
    message_id = store(desk)

    def database_gone() -> Any:
        raise OperationalError("BEGIN", {}, Exception("server closed the connection"))

    monkeypatch.setattr(desk.engine, "begin", database_gone)
    with pytest.raises(OperationalError):
        desk.pipeline.process(message_id)
    monkeypatch.undo()

    stored = load(desk, message_id)
    assert stored.state == MessageState.RECEIVED
    assert stored.processed_at is None
    assert events(desk, message_id) == []
    # once the database is back, a retry processes it
    assert desk.pipeline.process(message_id) == "processed"


def test_system_failure_on_read_raises(desk: Desk, tmp_path: Path) -> None:
    message_id = store(desk)
    gone = create_engine(f"sqlite:///{tmp_path / 'no-such-dir' / 'desk.db'}")
    real = desk.pipeline.engine
    desk.pipeline.engine = gone
    try:
        with pytest.raises(OperationalError):
            desk.pipeline.process(message_id)
    finally:
        desk.pipeline.engine = real
        gone.dispose()
    assert load(desk, message_id).state == MessageState.RECEIVED
    assert events(desk, message_id) == []


def test_failure_writing_the_event_rolls_back_the_state(
        desk: Desk, monkeypatch: pytest.MonkeyPatch) -> None:
    """The state change and its event are one transaction: no processed message without it."""
    message_id = store(desk)
    real_insert = pipeline_module.insert

    def failing_insert(table: Any) -> Any:
        if table is Event:
            raise OperationalError("INSERT", {}, Exception("disk I/O error"))
        return real_insert(table)

    monkeypatch.setattr(pipeline_module, "insert", failing_insert)
    with pytest.raises(OperationalError):
        desk.pipeline.process(message_id)
    assert load(desk, message_id).state == MessageState.RECEIVED


# --- through dramatiq -------------------------------------------------------------------------


def test_actor_on_the_stub_broker_processes_once(desk: Desk,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(desk.broker, dramatiq.brokers.stub.StubBroker)
    outcomes: list[str] = []
    real = desk.pipeline.process

    def recording(message_id: int) -> str:
        outcome = real(message_id)
        outcomes.append(outcome)
        return outcome

    monkeypatch.setattr(desk.pipeline, "process", recording)
    actors = declare_actors(desk.broker, desk.pipeline, desk.workflow,
                            desk.config.pipeline.max_retries)
    message_id = store(desk)
    worker = dramatiq.Worker(desk.broker, worker_threads=2, worker_timeout=100)
    worker.start()
    try:
        for _ in range(3):
            actors.process_message.send(message_id)
        desk.broker.join("abuse-desk", timeout=20_000)
        worker.join()
    finally:
        worker.stop()
    assert sorted(outcomes) == ["processed", "skipped", "skipped"]
    assert len(events(desk, message_id)) == 1
    assert load(desk, message_id).state == MessageState.PROCESSED


def test_actor_uses_the_configured_queue_and_retries(desk: Desk) -> None:
    actors = declare_actors(desk.broker, desk.pipeline, desk.workflow,
                            desk.config.pipeline.max_retries)
    assert actors.process_message.queue_name == "abuse-desk"
    assert actors.process_message.options["max_retries"] == desk.config.pipeline.max_retries
    assert "abuse-desk" in desk.broker.get_declared_queues()
