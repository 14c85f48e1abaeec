"""abuse_desk.db: SQLite transactions that read before they write."""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import OperationalError

from abuse_desk.config import build_config
from abuse_desk.db import make_engine, write_transaction


def engine_at(tmp_path: Path, busy_timeout_s: float = 10.0) -> Engine:
    cfg = build_config({"database": {"url": f"sqlite:///{tmp_path / 'd.db'}",
                                     "busy_timeout_s": busy_timeout_s}}, "test", env={})
    engine = make_engine(cfg.database)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (n INTEGER)"))
    return engine


def read_then_write(begin: AbstractContextManager[Connection], other: Engine) -> None:
    """Read; let another connection commit a write; then write."""
    with begin as conn:
        conn.execute(text("SELECT count(*) FROM t")).scalar()
        writer = threading.Thread(target=_write, args=(other,))
        writer.start()
        writer.join(0.5)  # it commits at once, or it waits for our lock
        conn.execute(text("INSERT INTO t VALUES (1)"))
    writer.join()


def _write(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (2)"))


def test_a_plain_transaction_that_reads_first_fails_on_a_concurrent_commit(
        tmp_path: Path) -> None:
    # What write_transaction exists for: SQLite cannot upgrade a stale read to a write lock.
    engine = engine_at(tmp_path)
    with pytest.raises(OperationalError, match="locked"):
        read_then_write(engine.begin(), engine)


def test_write_transaction_takes_the_lock_first_and_both_writes_land(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    read_then_write(write_transaction(engine), engine)
    with engine.connect() as conn:
        rows = list(conn.execute(text("SELECT n FROM t ORDER BY rowid")).scalars())
    assert rows == [1, 2]  # ours first: the other writer waited for our commit
