"""The sweeper: which messages it re-sends, when, after a failed send, in batches, and with two
schedulers at once (SQLite, and PostgreSQL where available)."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from abuse_desk.app.wiring import Desk, open_desk
from abuse_desk.core.db import as_utc, upgrade
from abuse_desk.core.models import Message, MessageState
from abuse_desk.ingest.store import Envelope, insert_messages, message_row
from abuse_desk.workflow.scheduler import SWEEP_BATCH, Scheduler
from sqlalchemy import create_engine, select
from sqlalchemy.exc import OperationalError

from tests.support import NOW, make_config, message, wait_for

from .workflow_support import Clock

# The shared `clock` fixture, started at fixed_desk's instant (no workflow calendar here).
pytestmark = pytest.mark.clock_at(NOW)
SWEEP_AFTER = 60.0


class Sends:
    """A broker stand-in: records ids (a batch's, in one call: one broker message); fails on
    chosen calls (1-based)."""

    def __init__(self, fail_on: set[int] | None = None) -> None:
        self.ids: list[int] = []
        self.calls = 0
        self.fail_on = fail_on or set()
        self._lock = threading.Lock()

    def __call__(self, message_ids: int | list[int]) -> None:
        with self._lock:
            self.calls += 1
            if self.calls in self.fail_on:
                raise ConnectionError("broker away")
            self.ids.extend(message_ids if isinstance(message_ids, list) else [message_ids])


def sweeper(desk: Desk, sends: Callable[[int | list[int]], None]) -> Scheduler:
    """The desk's scheduler, with a broker that is *sends* (called with each batch of ids)."""
    desk.workflow.send = lambda actor, ident: sends(ident)
    return Scheduler(desk.engine, desk.clock, desk.config.pipeline, desk.workflow)


def open_test_desk(url: str, tmp_path: Path, clock: Clock) -> Desk:
    config = make_config(tmp_path, database={"url": url},
                         pipeline={"sweep_after_s": SWEEP_AFTER})
    return open_desk(config, clock=clock, sends=False, upgrade_schema=True)


@pytest.fixture
def desk(tmp_path: Path, clock: Clock) -> Iterator[Desk]:
    """Not the workflow desk: the test config, no customers, sweeps after SWEEP_AFTER."""
    opened = open_test_desk(f"sqlite:///{tmp_path / 'desk.db'}", tmp_path, clock)
    upgrade(opened.engine)
    yield opened
    opened.close()


def store(desk: Desk, *, age_s: float, state: MessageState = MessageState.RECEIVED,
          enqueued: bool = True, count: int = 1) -> list[int]:
    """*count* messages received (and sent to the broker) *age_s* seconds before the clock."""
    at = desk.clock() - timedelta(seconds=age_s)
    rows = []
    for i in range(count):
        row = message_row(message(f"report {i}"), Envelope(
            mail_from="reporter@example.org", rcpt_tos=["abuse@localhost"],
            received_at=at, enqueued=enqueued))
        row["state"] = state.value
        rows.append(row)
    with desk.engine.begin() as conn:
        return insert_messages(conn, rows)


def enqueued_at(desk: Desk, message_id: int) -> datetime | None:
    with desk.engine.connect() as conn:
        return as_utc(conn.execute(
            select(Message.enqueued_at).where(Message.id == message_id)).scalar_one())


# --- what is due ------------------------------------------------------------------------------


def test_sweep_sends_only_stale_received_messages(desk: Desk) -> None:
    (stale,) = store(desk, age_s=SWEEP_AFTER + 60)
    (never_sent,) = store(desk, age_s=1, enqueued=False)  # imported beside an in-process broker
    store(desk, age_s=SWEEP_AFTER - 10)  # recent
    store(desk, age_s=1)  # just arrived
    store(desk, age_s=10_000, state=MessageState.PROCESSED)
    store(desk, age_s=10_000, state=MessageState.REVIEW)
    sends = Sends()
    assert sweeper(desk, sends).sweep() == 2
    assert sorted(sends.ids) == sorted([stale, never_sent])


def test_nothing_due_sends_nothing(desk: Desk) -> None:
    store(desk, age_s=5, count=3)
    sends = Sends()
    assert sweeper(desk, sends).sweep() == 0
    assert sends.ids == []


def test_sweep_uses_the_configured_delay_and_accepts_another(desk: Desk) -> None:
    (old,) = store(desk, age_s=SWEEP_AFTER + 1)
    (younger,) = store(desk, age_s=20)
    sends = Sends()
    scheduler = sweeper(desk, sends)
    assert scheduler.sweep() == 1
    assert sends.ids == [old]
    assert scheduler.sweep(older_than_s=10) == 1
    assert sends.ids == [old, younger]


def test_a_message_becomes_due_as_the_clock_moves(desk: Desk, clock: Clock) -> None:
    (message_id,) = store(desk, age_s=0)
    sends = Sends()
    scheduler = sweeper(desk, sends)
    clock.advance(SWEEP_AFTER - 1)
    assert scheduler.sweep() == 0
    clock.advance(2)
    assert scheduler.sweep() == 1
    assert sends.ids == [message_id]


def test_a_sent_message_is_not_sent_again_until_the_delay_passes_again(
        desk: Desk, clock: Clock) -> None:
    (message_id,) = store(desk, age_s=SWEEP_AFTER + 5)
    sends = Sends()
    scheduler = sweeper(desk, sends)
    assert scheduler.sweep() == 1
    assert enqueued_at(desk, message_id) == clock.now  # claimed: its last send is now

    assert scheduler.sweep() == 0
    clock.advance(SWEEP_AFTER / 2)
    assert scheduler.sweep() == 0
    clock.advance(SWEEP_AFTER / 2 - 1)
    assert scheduler.sweep() == 0
    assert sends.ids == [message_id]

    clock.advance(2)  # the delay has passed again and it is still not processed
    assert scheduler.sweep() == 1
    assert sends.ids == [message_id, message_id]


def test_a_processed_message_is_not_sent_again(desk: Desk, clock: Clock) -> None:
    first, second = store(desk, age_s=SWEEP_AFTER + 5, count=2)
    sends = Sends()
    scheduler = sweeper(desk, sends)
    assert scheduler.sweep() == 2
    assert desk.pipeline.process(first) == "processed"
    clock.advance(SWEEP_AFTER + 1)
    assert scheduler.sweep() == 1
    assert sends.ids == [first, second, second]


# --- a failing send ---------------------------------------------------------------------------


def test_failed_send_stops_the_sweep_and_loses_nothing(desk: Desk, clock: Clock) -> None:
    batch = desk.config.pipeline.batch_max
    ids = store(desk, age_s=SWEEP_AFTER + 5, count=2 * batch + 4)
    failing = Sends(fail_on={2})
    scheduler = sweeper(desk, failing)
    assert scheduler.sweep() == batch  # the first batch
    assert failing.calls == 2  # the sweep stopped at the failure
    assert failing.ids == ids[:batch]
    with desk.engine.connect() as conn:
        states = conn.execute(select(Message.state).where(Message.id.in_(ids))).scalars().all()
    assert set(states) == {MessageState.RECEIVED}

    working = Sends()
    later = sweeper(desk, working)
    clock.advance(SWEEP_AFTER + 1)
    assert later.sweep() == len(ids)
    assert sorted(working.ids) == ids  # the failed one and the ones never tried are all sent


def test_failed_first_send_sends_nothing(desk: Desk, clock: Clock) -> None:
    (message_id,) = store(desk, age_s=SWEEP_AFTER + 5)
    failing = Sends(fail_on={1})
    assert sweeper(desk, failing).sweep() == 0
    assert failing.ids == []
    clock.advance(SWEEP_AFTER + 1)
    working = Sends()
    assert sweeper(desk, working).sweep() == 1
    assert working.ids == [message_id]


# --- batches ----------------------------------------------------------------------------------


def test_more_than_a_batch_is_sent_in_one_sweep(desk: Desk) -> None:
    n = 2 * SWEEP_BATCH + 3
    ids = store(desk, age_s=SWEEP_AFTER + 5, count=n)
    store(desk, age_s=1, count=5)  # recent: not part of it
    sends = Sends()
    assert sweeper(desk, sends).sweep() == n
    assert sorted(sends.ids) == ids  # each exactly once


def test_exactly_a_batch_is_sent(desk: Desk) -> None:
    ids = store(desk, age_s=SWEEP_AFTER + 5, count=SWEEP_BATCH)
    sends = Sends()
    assert sweeper(desk, sends).sweep() == SWEEP_BATCH
    assert sorted(sends.ids) == ids


@pytest.mark.timeout(60)
def test_sweep_with_zero_delay_sends_each_message_once(desk: Desk) -> None:
    n = SWEEP_BATCH + 10
    ids = store(desk, age_s=0, count=n)

    class Bounded(Sends):
        def __call__(self, message_ids: int | list[int]) -> None:
            if len(self.ids) >= 3 * n:  # a runaway sweep: stop it (the sweep ends on an error)
                raise RuntimeError("sent three times over")
            super().__call__(message_ids)

    sends = Bounded()
    sweeper(desk, sends).sweep(0.0)
    assert sorted(sends.ids) == ids


def test_sweep_with_zero_delay_sends_a_small_backlog_once(desk: Desk) -> None:
    ids = store(desk, age_s=0, count=20)
    sends = Sends()
    assert sweeper(desk, sends).sweep(0.0) == 20
    assert sorted(sends.ids) == ids


# --- the thread -------------------------------------------------------------------------------


def test_run_ticks_until_stopped(tmp_path: Path, clock: Clock) -> None:
    config = make_config(tmp_path, pipeline={"sweep_after_s": SWEEP_AFTER,
                                             "sweep_interval_s": 0.05})
    desk = open_desk(config, clock=clock, sends=False, upgrade_schema=True)
    upgrade(desk.engine)
    try:
        sends = Sends()
        scheduler = sweeper(desk, sends).start()
        try:
            ids = store(desk, age_s=SWEEP_AFTER + 5, count=3)
            wait_for(lambda: len(sends.ids) == 3, 10, "the scheduler thread to sweep")
        finally:
            scheduler.stop()
        assert scheduler._thread is not None
        assert not scheduler._thread.is_alive()
        assert sorted(sends.ids) == ids
    finally:
        desk.close()


def test_tick_survives_a_database_outage(desk: Desk, tmp_path: Path) -> None:
    store(desk, age_s=SWEEP_AFTER + 5)
    sends = Sends()
    away = dataclasses.replace(
        desk, engine=create_engine(f"sqlite:///{tmp_path / 'no-such-dir' / 'x.db'}"))
    sweeper(away, sends).tick()  # logs, does not raise
    assert sends.ids == []
    with pytest.raises(OperationalError, match="unable to open database file"):
        sweeper(away, sends).sweep()
    away.engine.dispose()
    sweeper(desk, sends).tick()
    assert len(sends.ids) == 1


# --- two schedulers at once -------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.service)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.mark.parametrize("n", [40, 2 * SWEEP_BATCH + 100])
def test_two_concurrent_sweepers_send_each_message_once(database_url: str, tmp_path: Path,
                                                        clock: Clock, n: int) -> None:
    desks = [open_test_desk(database_url, tmp_path, clock) for _ in range(2)]
    try:
        upgrade(desks[0].engine)
        ids = store(desks[0], age_s=SWEEP_AFTER + 5, count=n)
        store(desks[0], age_s=1, count=3)  # not due
        sends = Sends()  # both share one broker
        barrier = threading.Barrier(2)
        results: list[int] = []
        errors: list[BaseException] = []

        def sweep(desk: Desk) -> None:
            try:
                scheduler = sweeper(desk, sends)
                barrier.wait(10)
                results.append(scheduler.sweep())
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=sweep, args=(d,)) for d in desks]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == []
        assert sum(results) == n
        assert sorted(sends.ids) == ids  # each stale message exactly once, in total
    finally:
        for d in desks:
            d.close()
