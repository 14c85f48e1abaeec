"""The desk as it runs in production: separate processes on PostgreSQL and Redis or RabbitMQ,
a broker outage, and SIGKILL in the middle of a burst. Real servers, real sockets, real processes.
"""

from __future__ import annotations

import hashlib
import signal
import smtplib
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from abuse_desk.core.config import Config
from abuse_desk.core.models import Event, Message

from tests.support import ROOT, config_env, desk_process, free_port, make_config, message, wait_for

pytestmark = [pytest.mark.service, pytest.mark.slow]


def count(engine: sa.Engine, stmt: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(stmt).scalar() or 0)


def states(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(Message.state, sa.func.count())
                                 .group_by(Message.state)).all())


def all_processed(engine: sa.Engine, expected: int) -> bool:
    return states(engine).get("processed", 0) >= expected and "received" not in states(engine)


def send(port: int, raw: bytes, rcpt: str = "abuse@localhost") -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("tester.example.org")
        client.mail("reporter@example.org")
        code, reply = client.rcpt(rcpt)
        if code != 250:
            return code, reply
        return client.data(raw)


def queued_id(reply: bytes) -> int:
    return int(reply.decode().rsplit(" ", 1)[1])


def db_upgrade(config: Config, log: Path) -> None:
    with log.open("ab") as fh:
        subprocess.run([sys.executable, "-m", "abuse_desk.app.cli", "db", "upgrade"], cwd=ROOT,
                       env=config_env(config), stdout=fh, stderr=subprocess.STDOUT, check=True)


def set_connections_allowed(admin: sa.Engine, database: str, allowed: bool) -> None:
    """Take a PostgreSQL database away (and give it back) without touching the shared server."""
    with admin.connect() as conn:
        allow = "true" if allowed else "false"
        conn.execute(sa.text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {allow}'))
        if not allowed:
            conn.execute(sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :db AND pid <> pg_backend_pid()"), {"db": database})


@pytest.fixture(params=["redis", "rabbitmq"])
def broker_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue("redis_url" if request.param == "redis" else "amqp_url"))


def test_separate_processes_on_postgres(tmp_path: Path, postgres_url: str,
                                        broker_url: str) -> None:
    """`abuse-desk smtp`, `worker` and `scheduler` as three processes on PostgreSQL."""
    config = make_config(tmp_path, database={"url": postgres_url, "connect_timeout_s": 2},
                         broker={"url": broker_url},
                         smtp={"max_message_size": 100_000, "store_timeout_s": 5})
    log = tmp_path / "desk.log"
    db_upgrade(config, log)
    engine = sa.create_engine(postgres_url)
    admin = sa.create_engine(postgres_url.rsplit("/", 1)[0] + "/test", isolation_level="AUTOCOMMIT")
    database = sa.engine.make_url(postgres_url).database
    assert database is not None
    port = config.smtp.port
    try:
        with desk_process(config, "smtp", log=log, wait=port), \
                desk_process(config, "worker", log=log), \
                desk_process(config, "scheduler", log=log):
            raw = message("production", body="line\r\n" + "w" * 10_000 + "\r\n")
            code, reply = send(port, raw)
            assert code == 250, reply
            with engine.connect() as conn:  # committed: another connection reads it
                stored = conn.execute(sa.select(Message.raw, Message.sha256).where(
                    Message.id == queued_id(reply))).one()
            assert stored.raw == raw
            assert stored.sha256 == hashlib.sha256(raw).hexdigest()

            assert send(port, raw, rcpt="someone@example.com")[0] == 550
            assert send(port, message("big", body=("b" * 998 + "\r\n") * 120))[0] == 552

            wait_for(lambda: all_processed(engine, 1), 30, "the worker to process the message")

            # The database goes away: 451, never 5xx; back again: the same message is accepted.
            engine.dispose()
            set_connections_allowed(admin, database, False)
            try:
                code, reply = send(port, message("while away"))
                assert code == 451, reply
                assert reply.startswith(b"4.3.0")
            finally:
                set_connections_allowed(admin, database, True)
            code, reply = wait_for(lambda: _accepted(port, message("while away")), 30,
                                   "the listener to reach the database again")
            assert code == 250
            wait_for(lambda: all_processed(engine, 2), 30, "processing after the outage")
            assert count(engine, sa.select(sa.func.count()).select_from(Event)) == 2
    finally:
        engine.dispose()
        admin.dispose()


def _accepted(port: int, raw: bytes) -> tuple[int, bytes] | None:
    code, reply = send(port, raw)
    return (code, reply) if code == 250 else None


def test_broker_outage_loses_nothing(tmp_path: Path, redis_server_binary: str) -> None:
    """Redis down: mail is still accepted; once Redis is back the sweeper gets it processed."""
    redis_port = free_port()
    config = make_config(tmp_path, broker={"url": f"redis://127.0.0.1:{redis_port}/0"},
                         pipeline={"sweep_after_s": 1.0, "sweep_interval_s": 0.5})
    log = tmp_path / "desk.log"
    db_upgrade(config, log)
    engine = sa.create_engine(config.database.url)
    port = config.smtp.port
    with desk_process(config, "smtp", log=log, wait=port), \
            desk_process(config, "worker", log=log) as worker, \
            desk_process(config, "scheduler", log=log):
        for n in range(5):
            code, reply = send(port, message(f"broker down {n}"))
            assert code == 250, reply
        time.sleep(2)  # several sweeps fail meanwhile
        assert states(engine) == {"received": 5}
        assert worker.poll() is None, "the worker died while the broker was down"
        redis = subprocess.Popen(
            [redis_server_binary, "--port", str(redis_port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: all_processed(engine, 5), 60, "processing once Redis is back")
        finally:
            redis.terminate()
            redis.wait(10)
    assert count(engine, sa.select(sa.func.count()).select_from(Event)) == 5
    engine.dispose()


CRASH_MESSAGES = 500


@pytest.fixture(params=["embedded", "postgres+redis"])
def crash_config(request: pytest.FixtureRequest, tmp_path: Path) -> Config:
    if request.param == "embedded":
        return make_config(tmp_path)
    config = make_config(tmp_path, database={"url": request.getfixturevalue("postgres_url")},
                         broker={"url": request.getfixturevalue("redis_url")},
                         pipeline={"sweep_after_s": 2.0, "sweep_interval_s": 0.5})
    db_upgrade(config, tmp_path / "upgrade.log")  # production schemas are upgraded by hand
    return config


def test_sigkill_mid_burst_loses_nothing(tmp_path: Path, crash_config: Config) -> None:
    """`abuse-desk serve` killed with SIGKILL mid-burst and restarted: every message that got a
    250 is stored and processed exactly once."""
    config = crash_config
    log, acked_file = tmp_path / "serve.log", tmp_path / "acked.txt"
    port = config.smtp.port
    sender = subprocess.Popen(
        [sys.executable, "-m", "tests.burst_sender", "--port", str(port),
         "--count", str(CRASH_MESSAGES), "--out", str(acked_file)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def acked() -> list[tuple[int, int]]:
        if not acked_file.exists():
            return []
        return [tuple(map(int, line.split())) for line in acked_file.read_text().splitlines()
                if line.strip()]  # type: ignore[misc]

    try:
        with desk_process(config, "serve", log=log, wait=port) as first:
            wait_for(lambda: len(acked()) >= 150, 90, "150 messages to be accepted")
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        killed_at = len(acked())
        assert killed_at < CRASH_MESSAGES, "the burst ended before the kill"
        with desk_process(config, "serve", log=log, wait=port):
            out, _ = sender.communicate(timeout=240)
            assert sender.returncode == 0, out.decode()
            engine = sa.create_engine(config.database.url)
            try:
                wait_for(lambda: all_processed(engine, CRASH_MESSAGES), 120,
                         "every message to be processed after the restart")
                with engine.connect() as conn:
                    rows = {r.id: r for r in conn.execute(sa.select(
                        Message.id, Message.raw, Message.state))}
                    events = dict(conn.execute(
                        sa.select(Event.subject_id, sa.func.count())
                        .where(Event.subject_type == "message").group_by(Event.subject_id)).all())
            finally:
                engine.dispose()
    finally:
        if sender.poll() is None:
            sender.kill()

    pairs = acked()
    assert sorted(token for token, _ in pairs) == list(range(CRASH_MESSAGES))
    for token, message_id in pairs:
        assert message_id in rows, f"message {message_id} (token {token}) got a 250 but is lost"
        assert f"X-Test-Token: {token}\r\n".encode() in rows[message_id].raw
    assert all(r.state == "processed" for r in rows.values())
    # Processed exactly once: one event per message, none without a message.
    assert set(events) == set(rows)
    assert set(events.values()) == {1}
