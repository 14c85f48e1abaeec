"""Faults survived, nothing lost: real processes and real servers, killed, stopped and starved.

- SIGKILL of `abuse-desk smtp`, of `abuse-desk worker` (PostgreSQL + Redis) and of `abuse-desk
  serve` (embedded) in the middle of a burst of feedback-loop reports, again and again;
- a private RabbitMQ killed mid-run and started again;
- a private PostgreSQL cluster stopped (as in a crash) under `abuse-desk smtp` and started again;
- the embedded desk's disk filled up, then freed.

Each checks that every message that got a 250 is stored, processed exactly once, in its
customer's one case, with no notice sent twice. The many-kill and 30-second variants are soak
tests: they run only with ABUSE_DESK_TEST_SOAK=1.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from abuse_desk.core.clock import system_clock
from abuse_desk.core.config import Config
from abuse_desk.core.models import Message

from tests.burst_sender import arf_body
from tests.burst_sender import body as plain_body
from tests.fault_support import (
    Burst,
    DeskProcess,
    PrivatePostgres,
    PrivateRabbit,
    check_nothing_lost,
    check_stored,
    count_states,
    fill,
    prepare_database,
    processed_count,
    queued_id,
    quiescent,
    send,
    small_filesystem,
    smtp_settings,
    tail,
)
from tests.support import NOW, free_port, make_config, wait_for

SOAK = [pytest.mark.soak, pytest.mark.timeout(1800),
        pytest.mark.skipif(os.environ.get("ABUSE_DESK_TEST_SOAK") != "1",
                           reason="a soak test: set ABUSE_DESK_TEST_SOAK=1 to run it")]

pytestmark = [pytest.mark.slow]


def report(what: str, **values: object) -> None:
    """A line in the test's output (pytest -s, or -rA) saying what the fault test saw."""
    print(f"[fault] {what}: " + ", ".join(f"{k}={v}" for k, v in values.items()))


# ---- SIGKILL mid-burst, again and again -----------------------------------------------------

def production_config(tmp_path: Path, postgres_url: str, redis_url: str) -> Config:
    return make_config(
        tmp_path, database={"url": postgres_url, "connect_timeout_s": 2},
        broker={"url": redis_url}, smtp=smtp_settings(store_timeout_s=10),
        # The sweeper re-sends what a killed worker held after 10 s; a killed worker's claimed
        # steps and notices are claimed again after 15 s.
        pipeline={"sweep_after_s": 10.0, "sweep_interval_s": 0.5, "worker_threads": 4},
        workflow={"step_lease_s": 15.0})


def kill_repeatedly(tmp_path: Path, config: Config, victim: str, kills: int,
                    count: int) -> None:
    """Run the desk (`serve`, or `smtp` + `worker` + `scheduler`), send *count* ARF reports,
    SIGKILL *victim* *kills* times spread over the run, starting it again each time; then
    check that nothing was lost or done twice."""
    log = tmp_path / "desk.log"
    engine = prepare_database(config, tmp_path, log)
    port = config.smtp.port
    if victim == "serve":
        procs = {"serve": DeskProcess(config, "serve", log=log, port=port)}
    else:
        procs = {"smtp": DeskProcess(config, "smtp", log=log, port=port),
                 "worker": DeskProcess(config, "worker", log=log),
                 "scheduler": DeskProcess(config, "scheduler", log=log)}
    target = procs[victim]
    burst: Burst | None = None
    began = time.monotonic()
    try:
        for proc in procs.values():
            proc.start()
        burst = Burst(port, count, tmp_path / "acked.txt")
        sender = burst

        def accepted() -> int:
            return len(sender.acked())

        # The listener dies between messages it is storing; the worker while it works.
        progress = (lambda: processed_count(engine)) if victim == "worker" else accepted
        for k in range(1, kills + 1):
            mark = k * count // (kills + 1)
            wait_for(lambda m=mark: progress() >= m, 600,  # type: ignore[misc]
                     f"{mark} messages before kill {k}")
            target.kill()
            at = progress()
            assert at < count, f"kill {k} came after the run ({at} of {count}): not mid-burst"
            report(f"kill {k} of {victim}", progress=at, accepted=accepted())
            target.start()
        acked = burst.finish(900)
        wait_for(lambda: quiescent(engine, count), 900,
                 "every message processed and every due notice sent")
        dead = [name for name, proc in procs.items() if not proc.alive()]
        assert not dead, f"{dead} died on their own: {tail(log)}"
        refusals = burst.refusals()
    finally:
        for proc in procs.values():
            proc.stop()
        if burst is not None:
            burst.close()
    assert set(refusals) <= {451}, f"answers other than 250 and 451: {refusals}"
    try:
        outcome = check_nothing_lost(engine, acked, count, Path(config.notify.maildir))
    finally:
        engine.dispose()
    assert target.starts == kills + 1
    report(f"{victim} killed {kills}x", seconds=round(time.monotonic() - began),
           messages=outcome.messages, copies=outcome.copies, cases=outcome.cases,
           notices=outcome.notices, fees=outcome.fees, refusals=dict(refusals))


@pytest.mark.service
@pytest.mark.parametrize("kills,count", [pytest.param(1, 500, id="1-kill-500"),
                                         pytest.param(5, 2000, marks=SOAK, id="5-kills-2000")])
def test_smtp_listener_sigkilled_mid_burst(tmp_path: Path, postgres_url: str, redis_url: str,
                                          kills: int, count: int) -> None:
    """`abuse-desk smtp` SIGKILLed mid-burst and started again, *kills* times: every 250 is
    stored and processed once, in its customer's one case; no notice twice."""
    kill_repeatedly(tmp_path, production_config(tmp_path, postgres_url, redis_url), "smtp",
                    kills, count)


@pytest.mark.service
@pytest.mark.parametrize("kills,count", [pytest.param(1, 500, id="1-kill-500"),
                                         pytest.param(5, 2000, marks=SOAK, id="5-kills-2000")])
def test_worker_sigkilled_mid_burst(tmp_path: Path, postgres_url: str, redis_url: str,
                                    kills: int, count: int) -> None:
    """`abuse-desk worker` SIGKILLed while it processes, *kills* times: what it held is
    processed once after the sweeper re-sends it; no claim, fee or notice twice."""
    kill_repeatedly(tmp_path, production_config(tmp_path, postgres_url, redis_url), "worker",
                    kills, count)


@pytest.mark.parametrize("kills,count", [pytest.param(5, 2000, marks=SOAK, id="5-kills-2000")])
def test_serve_sigkilled_repeatedly(tmp_path: Path, kills: int, count: int) -> None:
    """The embedded desk (`abuse-desk serve`, SQLite, in-process broker) SIGKILLed *kills*
    times in a burst of reports (tests/test_deployment.py kills it once)."""
    config = make_config(tmp_path, pipeline={"sweep_after_s": 10.0, "sweep_interval_s": 0.5},
                         workflow={"step_lease_s": 15.0}, smtp=smtp_settings())
    kill_repeatedly(tmp_path, config, "serve", kills, count)


# ---- the broker away --------------------------------------------------------------------------

OUTAGE_BURST = 400


def broker_outage(tmp_path: Path, broker_url: str, stop: Callable[[], None],
                  start: Callable[[], None], outage_s: float) -> dict[str, object]:
    """A burst through `abuse-desk smtp` + worker + scheduler on *broker_url*; *stop* the
    broker once processing has begun, keep sending our own probes for *outage_s* (each must
    get 250: the listener stores first), *start* it again, then check that everything was
    processed once, in the right cases, by the same processes (none restarted)."""
    config = make_config(tmp_path, broker={"url": broker_url}, smtp=smtp_settings(),
                         pipeline={"sweep_after_s": 3.0, "sweep_interval_s": 0.5},
                         workflow={"step_lease_s": 15.0})
    log = tmp_path / "desk.log"
    engine = prepare_database(config, tmp_path, log)
    port = config.smtp.port
    probes: list[tuple[int, int]] = []
    with DeskProcess(config, "smtp", log=log, port=port) as smtp, \
            DeskProcess(config, "worker", log=log) as worker, \
            DeskProcess(config, "scheduler", log=log) as scheduler:
        burst = Burst(port, OUTAGE_BURST, tmp_path / "acked.txt")
        try:
            wait_for(lambda: len(burst.acked()) >= OUTAGE_BURST // 4, 300,
                     "a quarter of the burst")
            wait_for(lambda: processed_count(engine) > 0, 120, "processing to begin")
            stop()
            down_at = time.monotonic()
            acked_at_stop = len(burst.acked())
            # While it is away, our own probes (and the burst) keep getting 250. Their
            # incidents are hours apart from the burst's: no probe copies a burst report.
            wall_base = system_clock().replace(microsecond=0) - timedelta(hours=3)
            while time.monotonic() - down_at < outage_s:
                token = OUTAGE_BURST + len(probes)
                code, reply = send(port, arf_body(token, wall_base))
                assert code == 250, f"broker away: {code} {reply!r}"
                probes.append((token, queued_id(reply)))
                time.sleep(0.25)
            during = len(burst.acked()) - acked_at_stop
            waiting = count_states(engine).get("received", 0)
            assert waiting > 0, "nothing waited for the broker: was it really away?"
            assert smtp.alive() and worker.alive() and scheduler.alive(), tail(log)
            start()
            acked = burst.finish(600) + probes
            total = OUTAGE_BURST + len(probes)
            wait_for(lambda: quiescent(engine, total), 300,
                     "every message processed once the broker is back")
            assert smtp.alive() and worker.alive() and scheduler.alive(), tail(log)
            assert smtp.starts == worker.starts == scheduler.starts == 1
        finally:
            burst.close()
    outcome = check_nothing_lost(engine, acked, total, Path(config.notify.maildir))
    engine.dispose()
    return {"outage_s": outage_s, "probes": len(probes), "burst_acked_during": during,
            "waiting_at_end_of_outage": waiting, "messages": outcome.messages,
            "copies": outcome.copies, "cases": outcome.cases, "notices": outcome.notices}


@pytest.mark.service
@pytest.mark.parametrize("outage_s", [pytest.param(8.0, id="8s"),
                                      pytest.param(30.0, marks=SOAK, id="30s")])
def test_rabbitmq_outage(tmp_path: Path, outage_s: float) -> None:
    """A private RabbitMQ SIGKILLed mid-run and started again *outage_s* later (its durable
    queue comes back with it)."""
    rabbit = PrivateRabbit(tmp_path / "rabbit")
    try:
        boot_s = rabbit.start()
        restarts: list[float] = []
        figures = broker_outage(tmp_path, rabbit.url, rabbit.kill,
                                lambda: restarts.append(rabbit.start()), outage_s)
        report("rabbitmq outage", boot_s=round(boot_s, 1), restart_s=round(restarts[0], 1),
               **figures)
    finally:
        rabbit.close()


def _start_redis(binary: str, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: _answers(port), 30, f"a private redis-server on port {port}")
    return proc


def _answers(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.mark.service
@pytest.mark.parametrize("outage_s", [pytest.param(5.0, id="5s"),
                                      pytest.param(30.0, marks=SOAK, id="30s")])
def test_redis_outage(tmp_path: Path, redis_server_binary: str, outage_s: float) -> None:
    """A private Redis SIGKILLed mid-burst (its queue, held only in memory, is lost with it)
    and started again *outage_s* later: the sweeper sends what waits again."""
    port = free_port()
    servers = [_start_redis(redis_server_binary, port)]

    def stop() -> None:
        servers[-1].kill()
        servers[-1].wait(10)

    try:
        figures = broker_outage(tmp_path, f"redis://127.0.0.1:{port}/0", stop,
                                lambda: servers.append(_start_redis(redis_server_binary, port)),
                                outage_s)
        report("redis outage", **figures)
    finally:
        for server in servers:
            server.kill()
            server.wait(10)


# ---- PostgreSQL restarted -------------------------------------------------------------------

PG_BURST = 2000
PG_DOWN_S = 5.0


@pytest.mark.service
def test_postgres_restart_451_then_250(tmp_path: Path) -> None:
    """A private PostgreSQL cluster stopped like a crash (pg_ctl -m immediate) under a running
    `abuse-desk smtp`: 451 4.3.0 while it is down (never 5xx, never 250); 250 again once it
    is back; every message that got a 250, before, during or after, is stored."""
    pg = PrivatePostgres()
    engine: sa.Engine | None = None
    try:
        pg.init().start()
        # No broker is reachable (a free port): messages wait in `received`, as designed.
        config = make_config(tmp_path, database={"url": pg.url, "connect_timeout_s": 2},
                             broker={"url": f"redis://127.0.0.1:{free_port()}/0"},
                             smtp=smtp_settings(store_timeout_s=5))
        log = tmp_path / "smtp.log"
        engine = prepare_database(config, tmp_path, log, customers=False)
        port = config.smtp.port
        probes: list[tuple[int, int]] = []
        answers: list[tuple[str, int, bytes]] = []  # (phase, code, reply)

        def probe(phase: str) -> tuple[int, bytes]:
            token = PG_BURST + len(answers)  # a new token each time: a 451 is not sent again
            code, reply = send(port, plain_body(token))
            answers.append((phase, code, reply))
            if code == 250:
                probes.append((token, queued_id(reply)))
            return code, reply

        with DeskProcess(config, "smtp", log=log, port=port) as smtp:
            burst = Burst(port, PG_BURST, tmp_path / "acked.txt", arf=False)
            try:
                wait_for(lambda: len(burst.acked()) >= 100, 120, "100 messages accepted")
                assert probe("before")[0] == 250
                engine.dispose()
                pg.stop("immediate")
                stopped_at = time.monotonic()
                while time.monotonic() - stopped_at < PG_DOWN_S:
                    code, reply = probe("down")
                    assert code == 451 and reply.startswith(b"4.3.0"), (code, reply)
                    time.sleep(0.2)
                pg.start()
                back_at = time.monotonic()
                while probe("back")[0] != 250:
                    assert time.monotonic() - back_at < 30, "no 250 within 30 s of the restart"
                    time.sleep(0.1)
                first_250_s = time.monotonic() - back_at
                acked = burst.finish(300)
                assert smtp.alive() and smtp.starts == 1, tail(log)
                refusals = burst.refusals()
            finally:
                burst.close()
        assert set(refusals) <= {451}, f"the burst got answers other than 250/451: {refusals}"
        assert all(code in (250, 451) for _, code, _ in answers), answers
        assert refusals, "the burst never met the outage"
        # Every 250 (burst and probes) is stored, after the crash recovery too; a probe
        # answered 451 was not (the transaction never committed).
        tokens = check_stored(engine, acked + probes, set(range(PG_BURST + len(answers))))
        refused = {PG_BURST + i for i, (_, code, _) in enumerate(answers) if code != 250}
        assert not refused & set(tokens), "a message answered 451 was stored"
        with engine.connect() as conn:
            stored = conn.execute(sa.select(sa.func.count()).select_from(Message)).scalar()
        report("postgres restart", down_probes=sum(1 for a in answers if a[0] == "down"),
               first_250_after_restart_s=round(first_250_s, 2), burst_451s=refusals[451],
               stored=stored, tokens=len(tokens))
    finally:
        if engine is not None:
            engine.dispose()
        pg.close()


# ---- the disk full --------------------------------------------------------------------------

def big_message(token: int, size: int) -> bytes:
    line = "x" * 76 + "\r\n"
    return (f"From: reporter@example.org\r\nTo: abuse@localhost\r\nSubject: big {token}\r\n"
            f"Message-ID: <big.{token}@example.org>\r\nX-Test-Token: {token}\r\n\r\n"
            + line * (size // len(line))).encode()


def test_disk_full_451_then_250(tmp_path: Path) -> None:
    """`abuse-desk serve` with its SQLite database on a 32 MiB filesystem: filled up, a
    message that needs space is answered 451 4.3.0 (never 5xx) and not stored; the filler
    removed, the same message gets 250; every 250 is stored and processed, and the database
    passes its integrity check."""
    # 32 MiB: SQLite rewrites a whole row (its raw bytes too) on each UPDATE of the message
    # (sweeper, pipeline), so the WAL holds a big message several times before a checkpoint.
    with small_filesystem(tmp_path / "small", 32) as small:
        config = make_config(tmp_path, database={"url": f"sqlite:///{small / 'desk.db'}"},
                             smtp=smtp_settings(),
                             pipeline={"sweep_after_s": 2.0, "sweep_interval_s": 0.5})
        port = config.smtp.port
        log = tmp_path / "serve.log"
        acked: list[tuple[int, int]] = []
        engine = sa.create_engine(config.database.url)
        try:
            with DeskProcess(config, "serve", log=log, port=port) as desk:
                for token in range(5):
                    code, reply = send(port, plain_body(token))
                    assert code == 250, reply
                    acked.append((token, queued_id(reply)))
                wal = small / "desk.db-wal"
                filler = fill(small)
                free = os.statvfs(small).f_bavail * os.statvfs(small).f_frsize
                # Bigger than the WAL: its frames cannot be reused, the file must grow.
                size = max(wal.stat().st_size if wal.exists() else 0, 1 << 20) + (256 << 10)
                code, reply = send(port, big_message(5, size))
                assert code == 451 and reply.startswith(b"4.3.0"), (code, reply)
                # Small messages may still fit in reused WAL frames: 250 (stored) or 451.
                small_answers = []
                for token in range(6, 16):
                    code, reply = send(port, plain_body(token))
                    assert code in (250, 451), (code, reply)
                    small_answers.append(code)
                    if code == 250:  # a 451'd one is sent again once there is room
                        acked.append((token, queued_id(reply)))
                assert desk.alive(), tail(log)
                filler.unlink()
                code, reply = send(port, big_message(5, size))
                assert code == 250, (code, reply)
                acked.append((5, queued_id(reply)))
                for token in range(6, 16):
                    if token not in {t for t, _ in acked}:
                        code, reply = send(port, plain_body(token))
                        assert code == 250, (code, reply)
                        acked.append((token, queued_id(reply)))
                wait_for(lambda: quiescent(engine, 16), 120, "every message processed")
                assert desk.alive() and desk.starts == 1, tail(log)
            tokens = check_stored(engine, acked, set(range(16)))
            assert len(tokens[5]) == 1, "the message answered 451 was stored anyway"
            check_nothing_lost(engine, acked, 16, None, arf=False)
            with engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
        finally:
            engine.dispose()
    report("disk full", free_bytes_when_full=free, big_message=size,
           small_while_full=small_answers)


# ---- a worker starting beside a busy SQLite -------------------------------------------------

def test_worker_start_survives_a_commit_between_read_and_write(tmp_path: Path) -> None:
    """Found by the RabbitMQ test: a worker started beside a listener taking a burst on SQLite
    exited with "database is locked". Building the workflow makes the desk's secret key (a
    SELECT, then an INSERT); a commit by another process in between made the INSERT fail at
    once (WAL: the read snapshot is stale; no busy timeout applies). The key is now made in a
    transaction that takes the write lock first: the other process's commit waits for it
    instead."""
    import threading

    from abuse_desk.core.db import make_engine, upgrade
    from abuse_desk.ingest.store import Envelope, insert_messages, message_row
    from abuse_desk.workflow.timeline import Workflow

    config = make_config(tmp_path)
    engine = make_engine(config.database)
    upgrade(engine)
    other = make_engine(config.database)
    writers: list[threading.Thread] = []

    def listener_commits() -> None:
        with other.begin() as conn2:
            insert_messages(conn2, [message_row(b"x\r\n", Envelope(
                None, ["abuse@x"], received_at=NOW))])

    @sa.event.listens_for(engine, "after_cursor_execute")
    def commit_elsewhere(conn: object, cursor: object, statement: str, *args: object) -> None:
        if not writers and statement.lstrip().upper().startswith("SELECT") \
                and "settings" in statement:
            writers.append(threading.Thread(target=listener_commits))  # meanwhile, elsewhere
            writers[0].start()
            writers[0].join(0.5)

    try:
        Workflow(config, engine, lambda: NOW)  # what a worker builds at start: not "locked"
        writers[0].join(30)
        with engine.connect() as conn:
            assert conn.exec_driver_sql(
                "SELECT count(*) FROM settings WHERE key = 'secret_key'").scalar() == 1
            assert conn.exec_driver_sql("SELECT count(*) FROM messages").scalar() == 1
    finally:
        other.dispose()
        engine.dispose()
