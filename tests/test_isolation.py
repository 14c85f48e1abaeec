"""Processing budget and isolation: a message is examined (parsed, DKIM-checked, classified) in
an examiner process within its time and memory budget, never in the process that answers SMTP
and HTTP; past its budget it goes to review in one attempt; an examination that never comes
back is retried a few times, then goes to review; a stop is prompt.

The misbehaving parsers are in ``tests/isolation_plugins.py``, loaded through
``parsers.plugins``. Timings here are hang guards, not speed targets.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import signal
import smtplib
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from abuse_desk.app.wiring import Desk, open_desk
from abuse_desk.core.config import Config
from abuse_desk.core.db import upgrade
from abuse_desk.core.models import Event, Message, MessageState
from abuse_desk.ingest.store import Envelope, insert_messages, message_row
from abuse_desk.workflow import examiner, pipeline
from abuse_desk.workflow.examiner import ExaminerDied, ExaminerPool, ExaminerStopped

from tests import isolation_plugins
from tests.support import (
    HANG_GUARD_S,
    NOW,
    desk_process,
    make_config,
    message,
    wait_for,
    wait_port,
)

pytestmark = pytest.mark.slow

# What the listener and the web must answer within while a worker is busy: a hang guard (a
# GIL held by a parse stalled them for 32 s), not a speed target.
RESPONSIVE_S = 1.0


def pool_config(tmp_path: Path, **parsers: Any) -> Config:
    return make_config(tmp_path, parsers={"plugins": isolation_plugins.ALL, "time_budget_s": 2.0,
                                          "max_memory_mb": 256, **parsers})


@contextlib.contextmanager
def desk_with_a_pool(tmp_path: Path, **parsers: Any) -> Iterator[Desk]:
    """A desk on a fresh SQLite file at ``NOW``, examining in a pool of one examiner."""
    config = pool_config(tmp_path, **parsers)
    desk = open_desk(config, clock=lambda: NOW, sends=False, upgrade_schema=True)
    upgrade(desk.engine)
    desk.pipeline.examiner = pool = ExaminerPool(config, desk.clock, size=1).start()
    try:
        yield desk
    finally:
        pool.close()
        desk.close()


@pytest.fixture
def pool_desk(tmp_path: Path) -> Iterator[Desk]:
    with desk_with_a_pool(tmp_path) as desk:
        yield desk


def store(desk: Desk, raw: bytes) -> int:
    row = message_row(raw, Envelope(mail_from="reporter@example.org",
                                    rcpt_tos=["abuse@localhost"],
                                    received_at=NOW - timedelta(seconds=30)))
    with desk.engine.begin() as conn:
        (message_id,) = insert_messages(conn, [row])
    return message_id


def load(engine: sa.Engine, message_id: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(sa.select(Message.state, Message.error, Message.attempts,
                                      Message.attempted_at, Message.header_subject)
                            .where(Message.id == message_id)).one()


def event_count(engine: sa.Engine, message_id: int) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(Event).where(
            Event.subject_type == "message", Event.subject_id == message_id)).scalar_one())


# -- the budget, in the examiner -------------------------------------------------------------


def test_a_parse_past_its_time_budget_goes_to_review_in_one_attempt(pool_desk: Desk) -> None:
    hostile = store(pool_desk, message("hold-the-gil 192.0.2.7"))
    started = time.monotonic()

    assert pool_desk.pipeline.process(hostile) == "review"

    assert time.monotonic() - started < HANG_GUARD_S
    stored = load(pool_desk.engine, hostile)
    assert stored.state == MessageState.REVIEW
    assert stored.error.startswith(
        "processing exceeded its time budget of 2 s (during parsing)")
    assert stored.attempts == 1
    assert stored.header_subject == "hold-the-gil 192.0.2.7"  # read before the budget ran out
    assert pool_desk.pipeline.process(hostile) == "skipped"  # never examined again
    assert event_count(pool_desk.engine, hostile) == 1
    # the examiner was replaced: the next message is examined as usual
    normal = store(pool_desk, message("spam from 192.0.2.8"))
    assert pool_desk.pipeline.process(normal) == "processed"


def test_a_memory_bomb_goes_to_review_with_the_memory_budget(tmp_path: Path) -> None:
    with desk_with_a_pool(tmp_path, max_memory_mb=64) as desk:
        bomb = store(desk, message("eat-memory 192.0.2.7"))
        assert desk.pipeline.process(bomb) == "review"
        stored = load(desk.engine, bomb)
        assert stored.error.startswith(
            "processing exceeded its memory budget of 64 MiB (during parsing)")
        assert stored.attempts == 1
        normal = store(desk, message("spam from 192.0.2.8"))
        assert desk.pipeline.process(normal) == "processed"


def test_a_message_that_kills_its_examiner_goes_to_review_after_max_attempts(
        pool_desk: Desk) -> None:
    killer = store(pool_desk, message("crash-the-examiner 192.0.2.7"))
    max_attempts = pool_desk.config.pipeline.max_attempts
    for attempt in range(1, max_attempts + 1):
        with pytest.raises(ExaminerDied, match="killed by SIGKILL during parsing"):
            pool_desk.pipeline.process(killer)
        stored = load(pool_desk.engine, killer)
        assert (stored.state, stored.attempts) == (MessageState.RECEIVED, attempt)
        assert stored.attempted_at is None  # the next delivery is a new attempt at once

    assert pool_desk.pipeline.process(killer) == "review"
    stored = load(pool_desk.engine, killer)
    assert stored.error.startswith(f"processing did not finish in {max_attempts} attempts")
    assert pool_desk.pipeline.process(store(pool_desk, message("spam from 192.0.2.8"))) \
        == "processed"


def test_a_crash_of_one_attempt_does_not_send_a_normal_message_to_review(
        fixed_desk: Desk) -> None:
    """A worker killed in the middle of an examination leaves its attempt counted and its lease
    held; the deliveries that follow (a redelivery, the sweeper) process the message."""
    message_id = store(fixed_desk, message("spam from 192.0.2.7"))
    with fixed_desk.engine.begin() as conn:  # as a worker SIGKILLed mid-examination leaves it
        conn.execute(sa.update(Message).values(attempts=1, attempted_at=NOW))
    assert fixed_desk.pipeline.process(message_id) == "processed"
    assert load(fixed_desk.engine, message_id).attempts == 1  # a duplicate, not counted


def test_an_attempt_past_its_lease_counts(fixed_desk: Desk) -> None:
    message_id = store(fixed_desk, message("spam from 192.0.2.7"))
    max_attempts = fixed_desk.config.pipeline.max_attempts
    long_ago = NOW - timedelta(seconds=pipeline.attempt_lease_s(fixed_desk.config.parsers) + 1)
    with fixed_desk.engine.begin() as conn:  # workers died in each of the attempts so far
        conn.execute(sa.update(Message).values(attempts=max_attempts, attempted_at=long_ago))
    assert fixed_desk.pipeline.process(message_id) == "review"
    stored = load(fixed_desk.engine, message_id)
    assert stored.attempts == max_attempts + 1
    assert stored.error.startswith(f"processing did not finish in {max_attempts} attempts")


def test_an_examination_cut_short_by_a_stop_ends_promptly(tmp_path: Path) -> None:
    with desk_with_a_pool(tmp_path, time_budget_s=120.0) as desk:
        pool = desk.pipeline.examiner
        assert isinstance(pool, ExaminerPool)
        hostile = store(desk, message("hold-the-gil 192.0.2.7"))
        timer = threading.Timer(1.0, pool.begin_stop, args=(0.5,))
        timer.start()
        started = time.monotonic()
        with pytest.raises(ExaminerStopped):
            desk.pipeline.process(hostile)
        assert time.monotonic() - started < 10  # not the 60 s the parse holds, nor 120 s
        stored = load(desk.engine, hostile)
        assert (stored.state, stored.attempts, stored.attempted_at) == (
            MessageState.RECEIVED, 1, None)


def test_an_examiner_cannot_send_the_worker_code_to_run() -> None:
    class Evil:
        def __reduce__(self) -> tuple[Any, ...]:
            return (os.system, ("echo owned",))

    with pytest.raises(pickle.UnpicklingError, match="not a result type"):
        examiner._loads(pickle.dumps(("done", Evil())))


def test_an_examiner_finds_what_the_worker_would_have_found(pool_desk: Desk) -> None:
    """The same outcome through the pipe as in the worker's own thread, for every sample."""
    samples = sorted((Path(__file__).parent / "parsers" / "data").rglob("*.eml"))
    assert len(samples) > 20
    with pool_desk.pipeline.examiner.reserve() as slot:  # type: ignore[union-attr]
        for path in samples:
            raw = path.read_bytes()
            inline = pool_desk.examination.examine(raw, NOW)
            examined = slot.examine(raw, NOW, NOW)
            assert examined == inline, path


def test_an_examiner_killed_while_idle_costs_no_attempt(pool_desk: Desk) -> None:
    pool = pool_desk.pipeline.examiner
    assert isinstance(pool, ExaminerPool)
    first = store(pool_desk, message("spam from 192.0.2.7"))
    assert pool_desk.pipeline.process(first) == "processed"
    (pid,) = pool.pids()
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not alive(pid), 10, "the examiner to die")

    second = store(pool_desk, message("spam from 192.0.2.8"))
    assert pool_desk.pipeline.process(second) == "processed"
    assert load(pool_desk.engine, second).attempts == 1
    assert pool.pids() != [pid]


def test_worker_threads_share_the_examiners(tmp_path: Path) -> None:
    """Six threads, two examiners, one message that holds its examiner until its budget runs
    out: every other message is processed meanwhile, nothing waits forever."""
    config = pool_config(tmp_path)
    desk = open_desk(config, clock=lambda: NOW, sends=False, upgrade_schema=True)
    upgrade(desk.engine)
    desk.pipeline.examiner = pool = ExaminerPool(config, desk.clock, size=2).start()
    try:
        hostile = store(desk, message("hold-the-gil 192.0.2.1"))
        normal = [store(desk, message(f"spam from 192.0.2.{n}")) for n in range(10, 40)]
        outcomes: dict[int, str] = {}
        errors: list[BaseException] = []

        def work(ids: list[int]) -> None:
            try:
                for message_id in ids:
                    outcomes[message_id] = desk.pipeline.process(message_id)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=([hostile] if n == 0 else
                                                       normal[n - 1::5],))
                   for n in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(HANG_GUARD_S)
        assert not any(t.is_alive() for t in threads)
        assert errors == []
        assert outcomes.pop(hostile) == "review"
        assert set(outcomes.values()) == {"processed"} and len(outcomes) == len(normal)
    finally:
        pool.close()
        desk.close()


@pytest.mark.parametrize(("plugin", "error"), [
    ("tests.no_such_module:factory", "ModuleNotFoundError: No module named 'tests.no_such_module'"),
    ("tests.isolation_plugins:ALL", "TypeError: 'list' object is not callable"),
    ("tests.support:free_port", "did not give a parser"),
])
def test_a_plugin_that_gives_no_parser_stops_the_worker_saying_why(
        tmp_path: Path, plugin: str, error: str) -> None:
    from abuse_desk.app.runner import PARTS, UsageError, start

    config = make_config(tmp_path, parsers={"plugins": [plugin]})
    with pytest.raises(UsageError) as raised:
        asyncio.run(start(config, PARTS))
    assert str(raised.value).startswith(f"parsers.plugins: {plugin}")
    assert error in str(raised.value)


# -- `abuse-desk serve`: the listener and the web stay responsive ------------------------------


def greeting_seconds(port: int) -> float:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        assert sock.recv(512).startswith(b"220")
        sock.sendall(b"QUIT\r\n")
    return time.monotonic() - started


def healthz_seconds(port: int) -> float:
    started = time.monotonic()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=30) as answer:
        assert answer.status == 200
    return time.monotonic() - started


def send(port: int, raw: bytes) -> int:
    with smtplib.SMTP("127.0.0.1", port, timeout=120) as client:
        client.ehlo("tester.example.org")
        client.mail("reporter@example.org")
        client.rcpt("abuse@localhost")
        code, reply = client.data(raw)
    assert code == 250, reply
    return int(reply.decode().rsplit(" ", 1)[1])


def state_of(engine: sa.Engine, message_id: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(sa.select(Message.state, Message.error, Message.attempts)
                            .where(Message.id == message_id)).one()


def folded_subject(lines: int = 700_000) -> bytes:
    """An 11 MB Subject folded into 700,000 lines, with a report in its body."""
    fold = b"".join(b"\r\n " + b"x" * 14 for _ in range(lines))
    return (b"From: reporter@example.org\r\nTo: abuse@localhost\r\n"
            b"Message-ID: <folded@example.org>\r\nSubject: spam" + fold +
            b"\r\n\r\nYour customer at 192.0.2.10 sent us spam.\r\n")


def test_an_11_mb_folded_subject_does_not_delay_a_normal_report(tmp_path: Path) -> None:
    config = make_config(tmp_path, pipeline={"sweep_after_s": 5.0})
    port = config.smtp.port
    engine = sa.create_engine(config.database.url)
    with desk_process(config, "serve", log=tmp_path / "serve.log", wait=port):
        hostile = send(port, folded_subject())
        started = time.monotonic()
        assert greeting_seconds(port) < RESPONSIVE_S
        normal = send(port, (ROOT_DATA / "abuse_full.eml").read_bytes())
        wait_for(lambda: state_of(engine, normal).state != "received", HANG_GUARD_S,
                 "the normal report to be processed")
        assert state_of(engine, normal).state == "processed"
        wait_for(lambda: state_of(engine, hostile).state != "received",
                 HANG_GUARD_S - (time.monotonic() - started), "the folded one to be examined")
        time.sleep(2 * config.pipeline.sweep_interval_s)  # a sweep would have re-sent it by now
        hostile_state = state_of(engine, hostile)
        assert hostile_state.attempts == 1  # examined once, never re-sent
        assert event_count(engine, hostile) == 1
    engine.dispose()


ROOT_DATA = Path(__file__).resolve().parent / "parsers" / "data" / "arf"


def test_a_slow_parse_does_not_stall_the_smtp_greeting_or_healthz(tmp_path: Path) -> None:
    config = make_config(tmp_path, parsers={"plugins": isolation_plugins.ALL,
                                            "time_budget_s": 6.0})
    port, web_port = config.smtp.port, config.web.port
    engine = sa.create_engine(config.database.url)
    with desk_process(config, "serve", log=tmp_path / "serve.log", wait=port) as proc:
        wait_port(web_port, proc=proc)
        hostile = send(port, message("hold-the-gil 192.0.2.7"))
        time.sleep(0.5)  # the examination has begun: the GIL is held for 60 s from now
        for _ in range(6):
            assert greeting_seconds(port) < RESPONSIVE_S
            assert healthz_seconds(web_port) < RESPONSIVE_S
            time.sleep(0.3)
        normal = send(port, message("spam from 192.0.2.8"))
        wait_for(lambda: state_of(engine, normal).state == "processed", HANG_GUARD_S,
                 "the normal report to be processed beside the slow one")
        assert state_of(engine, hostile).state == "received"  # still being examined
        wait_for(lambda: state_of(engine, hostile).state != "received", HANG_GUARD_S,
                 "the slow one to run out of time")
        stored = state_of(engine, hostile)
        assert stored.state == "review"
        assert stored.error.startswith(
            "processing exceeded its time budget of 6 s (during parsing)")
        assert stored.attempts == 1
    engine.dispose()


def test_sigterm_during_a_hostile_message_stops_promptly(tmp_path: Path) -> None:
    config = make_config(tmp_path, parsers={"plugins": isolation_plugins.ALL,
                                            "time_budget_s": 120.0},
                         pipeline={"stop_grace_s": 2.0})
    port = config.smtp.port
    log = tmp_path / "serve.log"
    engine = sa.create_engine(config.database.url)
    with desk_process(config, "serve", log=log, wait=port) as proc:
        hostile = send(port, message("hold-the-gil 192.0.2.7"))
        time.sleep(1.0)  # the examination has begun
        examiners = examiner_pids(proc.pid)
        assert examiners
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        try:
            assert proc.wait(HANG_GUARD_S) == 0
        except subprocess.TimeoutExpired:
            pytest.fail(f"serve did not stop within {HANG_GUARD_S} s of one SIGTERM")
        stopped_in = time.monotonic() - started
    assert stopped_in < 2.0 + 8.0  # the grace, then the kill; not the 60 s the parse holds
    assert "stopped cleanly" in log.read_text()
    stored = state_of(engine, hostile)
    assert (stored.state, stored.attempts) == ("received", 1)  # for the next start
    wait_for(lambda: not any(alive(pid) for pid in examiners), 5, "the examiners to exit")
    engine.dispose()


def test_the_examiners_die_with_a_sigkilled_desk(tmp_path: Path) -> None:
    config = make_config(tmp_path, parsers={"plugins": isolation_plugins.ALL,
                                            "time_budget_s": 120.0})
    port = config.smtp.port
    with desk_process(config, "serve", log=tmp_path / "serve.log", wait=port) as proc:
        send(port, message("hold-the-gil 192.0.2.7"))  # one examiner busy, one idle
        time.sleep(1.0)
        examiners = examiner_pids(proc.pid)
        assert len(examiners) == 2
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    wait_for(lambda: not any(alive(pid) for pid in examiners), 10,
             "the examiners to die with their desk")


def examiner_pids(desk_pid: int) -> list[int]:
    """The examiner processes of the desk *desk_pid*: children of its fork server."""
    def children(pid: int) -> list[int]:
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True,
                             text=True).stdout
        return [int(p) for p in out.split()]

    def cmdline(pid: int) -> str:
        try:
            return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            return ""

    servers = [p for p in children(desk_pid) if "forkserver" in cmdline(p)]
    return [pid for server in servers for pid in children(server)]


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in status
