"""The tests' shared fixtures: the clock and the desk most tests run on, and the real servers
some tests need.

PostgreSQL, Redis and RabbitMQ are found at the addresses below (override with the environment
variables named). Where one does not answer, its tests skip and say why; under ``CI=true`` they
fail instead, so CI can never go green by skipping them.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from abuse_desk.app.wiring import Desk

from tests.workflow.workflow_support import START, Clock, MakeDesk, workflow_desk

POSTGRES = os.environ.get("ABUSE_DESK_TEST_POSTGRES",
                          "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("ABUSE_DESK_TEST_REDIS", "redis://127.0.0.1:6379/15")
AMQP = os.environ.get("ABUSE_DESK_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672/%2F")

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(autouse=True)
def keep_logging() -> Iterator[None]:
    """``cli.main()`` replaces the root handlers with one on the test's (captured) stderr,
    which is closed when the test ends: give the next test the handlers it had before."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def unavailable(why: str) -> None:
    """Skip on a laptop; fail under CI, where every service must be there."""
    if IN_CI:
        pytest.fail(f"CI=true and {why}: .ci/run should have started it", pytrace=False)
    pytest.skip(why)


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url.replace("postgresql+psycopg", "postgresql"))
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1",
                                       parts.port or default_port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture
def env_db_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Configuration by environment only (no config file): defaults plus a SQLite file in
    *tmp_path*, which is also the working directory. Returns the database URL."""
    for name in list(os.environ):
        if name.startswith("ABUSE_DESK_"):
            monkeypatch.delenv(name)
    url = f"sqlite:///{tmp_path / 'desk.db'}"
    monkeypatch.setenv("ABUSE_DESK_CONFIG", os.devnull)
    monkeypatch.setenv("ABUSE_DESK_DATABASE__URL", url)
    monkeypatch.chdir(tmp_path)
    return url


@pytest.fixture
def clock(request: pytest.FixtureRequest) -> Clock:
    """A clock standing at ``workflow_support.START`` (Tue 2026-11-24 10:00 in New York) until
    the test moves it. A module or test marked ``@pytest.mark.clock_at(instant)`` starts it at
    *instant* instead."""
    marker = request.node.get_closest_marker("clock_at")
    start: datetime = marker.args[0] if marker is not None else START
    return Clock(start)


@pytest.fixture
def make_desk(tmp_path: Path, clock: Clock) -> Iterator[MakeDesk]:
    """``make_desk(**sections)``: a workflow desk (``workflow_support.workflow_desk``: SQLite
    under *tmp_path*, customers C-1..C-3, New York's calendar) on the ``clock`` fixture, with
    *sections* overriding its config as in config.toml. Each desk it made is closed after."""
    opened: list[Desk] = []

    def make(**sections: dict[str, Any]) -> Desk:
        desk = workflow_desk(tmp_path, clock, **sections)
        opened.append(desk)
        return desk

    yield make
    for desk in opened:
        desk.close()


@pytest.fixture
def desk(make_desk: MakeDesk) -> Desk:
    """The workflow desk with its default test config (``make_desk()``). Where a folder or a
    file needs another desk it overrides this fixture and says how it differs."""
    return make_desk()


@pytest.fixture
def fixed_desk(tmp_path: Path) -> Iterator[Desk]:
    """A desk on a fresh, upgraded SQLite file whose clock stands still at ``support.NOW``."""
    from abuse_desk.app.wiring import open_desk
    from abuse_desk.core.db import upgrade

    from tests.support import NOW, make_config

    opened = open_desk(make_config(tmp_path), clock=lambda: NOW, sends=False, upgrade_schema=True)
    upgrade(opened.engine)
    yield opened
    opened.close()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A new, empty PostgreSQL database for this test, dropped afterwards."""
    if not _reachable(POSTGRES, 5432):
        unavailable(f"PostgreSQL does not answer at {POSTGRES} (set ABUSE_DESK_TEST_POSTGRES)")
    import sqlalchemy as sa

    admin = sa.create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    name = f"abuse_desk_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield str(sa.engine.make_url(POSTGRES).set(database=name).render_as_string(
            hide_password=False))
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def redis_url() -> str:
    """Redis, its test database emptied."""
    if not _reachable(REDIS, 6379):
        unavailable(f"Redis does not answer at {REDIS} (set ABUSE_DESK_TEST_REDIS)")
    import redis

    redis.Redis.from_url(REDIS).flushdb()
    return REDIS


@pytest.fixture
def amqp_url() -> str:
    """RabbitMQ, the desk's queue purged."""
    if not _reachable(AMQP, 5672):
        unavailable(f"RabbitMQ does not answer at {AMQP} (set ABUSE_DESK_TEST_AMQP)")
    import pika
    from abuse_desk.core.broker import QUEUE

    conn = pika.BlockingConnection(pika.URLParameters(AMQP))
    try:
        channel = conn.channel()
        for queue in (QUEUE, f"{QUEUE}.DQ", f"{QUEUE}.XQ"):
            channel.queue_delete(queue)
    finally:
        conn.close()
    return AMQP


@pytest.fixture
def redis_server_binary() -> str:
    """The redis-server program, for tests that start and stop a Redis of their own."""
    path = shutil.which("redis-server")
    if path is None:
        unavailable("redis-server is not installed (Debian package redis-server)")
    assert path is not None
    return path


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[str, str]:
    """A self-signed certificate and key for STARTTLS tests."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed: cannot make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return str(cert), str(key)
