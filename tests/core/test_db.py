"""abuse_desk.core.db: SQLite transactions that read before they write; the modes of the desk's
files (its database holds every report, the accounts and the key that signs self-service
links)."""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
from abuse_desk.core.config import DatabaseConfig, build_config
from abuse_desk.core.db import make_engine, upgrade, write_transaction
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import OperationalError


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


# ---- file modes ------------------------------------------------------------------------------
# Tests run as root here, where modes do not stop reading: they check the modes themselves.

def mode(path: Path) -> int:
    return path.stat().st_mode & 0o7777


@contextmanager
def umask(value: int) -> Iterator[None]:
    """A shell's usual umask (022) while the block runs, as a desk started before this fix."""
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


def open_desk_database(path: Path) -> Engine:
    engine = make_engine(DatabaseConfig(url=f"sqlite:///{path}"))
    upgrade(engine)
    return engine


def test_another_local_user_cannot_read_the_database_or_its_signing_key(tmp_path: Path) -> None:
    """The var folder was 0755 and the database 0644: any local user could copy the database,
    read the self-service signing key in it and forge a customer's link. Made now, they are
    0700 and 0600 (and SQLite's -wal and -shm follow the database), whatever the umask."""
    from abuse_desk.workflow import tokens

    db = tmp_path / "var" / "abuse-desk.db"
    with umask(0o022):
        engine = open_desk_database(db)
        config = build_config({"database": {"url": f"sqlite:///{db}"}}, "test", env={})
        assert tokens.secret_key(engine, config)  # the key now lives in the database
        with engine.connect() as conn:  # WAL: -wal and -shm exist while a connection is open
            conn.execute(text("SELECT 1")).scalar()
            assert mode(db.parent) == 0o700
            for name in ("abuse-desk.db", "abuse-desk.db-wal", "abuse-desk.db-shm"):
                assert mode(db.parent / name) == 0o600, name
        engine.dispose()


def test_a_database_left_open_to_others_is_closed_at_start_with_a_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = tmp_path / "var" / "abuse-desk.db"
    with umask(0o022):
        db.parent.mkdir()
        legacy = sqlite3.connect(db)  # as an older desk made it: 0644 in a 0755 folder
        legacy.execute("PRAGMA journal_mode=WAL")
        legacy.execute("CREATE TABLE t (n INTEGER)")
        legacy.commit()
        assert mode(db.parent) == 0o755 and mode(db) == 0o644
        assert mode(Path(f"{db}-wal")) == 0o644
        with caplog.at_level(logging.WARNING, logger="abuse_desk.core.db"):
            engine = make_engine(DatabaseConfig(url=f"sqlite:///{db}"))
        legacy.close()
    assert mode(db.parent) == 0o700 and mode(db) == 0o600
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(str(db.parent) in w and "0755" in w and "0700" in w for w in warnings)
    assert any(w.startswith(f"{db} was mode 0644") for w in warnings)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 0
    engine.dispose()


def test_a_database_of_another_user_left_open_stops_the_desk_saying_what_to_run(
        tmp_path: Path) -> None:
    from abuse_desk.core.db import FileModeError

    if os.geteuid() != 0:
        pytest.skip("needs root to give a file to another user")
    db = tmp_path / "var" / "abuse-desk.db"
    db.parent.mkdir(mode=0o700)
    db.write_bytes(b"")
    db.chmod(0o644)
    os.chown(db, 65534, 65534)
    with pytest.raises(FileModeError) as refused:
        make_engine(DatabaseConfig(url=f"sqlite:///{db}"))
    message = str(refused.value)
    assert "0644" in message and "uid 65534" in message
    assert f"chmod 700 {db.parent}; chmod 600 {db}*" in message
    assert mode(db) == 0o644  # not ours: not changed
    env = {k: v for k, v in os.environ.items() if not k.startswith("ABUSE_DESK_")}
    env.update(ABUSE_DESK_CONFIG=os.devnull, ABUSE_DESK_DATABASE__URL=f"sqlite:///{db}")
    proc = subprocess.run([sys.executable, "-m", "abuse_desk.app.cli", "users", "list"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.startswith("abuse-desk: error: ") and "chmod 600" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_shared_sticky_folder_is_not_changed(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    engine = open_desk_database(shared / "desk.db")
    engine.dispose()
    assert mode(shared) == 0o1777
    assert mode(shared / "desk.db") == 0o600


def test_the_embedded_desk_keeps_var_to_its_owner(tmp_path: Path) -> None:
    """`abuse-desk users add` on a fresh checkout (the README's first step), from a shell with
    the usual umask: var/ and the database are the owner's only, and the process's umask is
    077 for everything else it makes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ABUSE_DESK_")}
    env["ABUSE_DESK_CONFIG"] = os.devnull  # the embedded defaults: sqlite:///var/abuse-desk.db
    proc = subprocess.run(
        [sys.executable, "-c", "import os, sys; os.umask(0o022); "
         "from abuse_desk.app.cli import main; rc = main(sys.argv[1:]); "
         "print(oct(os.umask(0)), file=sys.stderr); sys.exit(rc)",
         "users", "add", "alice", "--role", "supervisor", "--password-stdin"],
        cwd=tmp_path, env=env, input="a long enough secret\n", capture_output=True, text=True,
        timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip().endswith("0o77")
    assert mode(tmp_path / "var") == 0o700
    made = sorted(p.name for p in (tmp_path / "var").iterdir())
    assert "abuse-desk.db" in made
    for name in made:
        assert mode(tmp_path / "var" / name) == 0o600, name


def test_a_world_readable_outbox_of_notices_is_closed_at_start(tmp_path: Path) -> None:
    """The Maildir outbox holds every notice (customers' addresses, reporters' evidence): one
    left open by an older desk is closed when a desk process starts; one of another user
    stops the start with what to run."""
    from abuse_desk.app.runner import UsageError, check_files

    from tests.support import make_config

    box = tmp_path / "outbox"
    with umask(0o022):
        for sub in ("tmp", "new", "cur"):
            (box / sub).mkdir(parents=True)
    assert mode(box) == 0o755
    config = make_config(tmp_path)
    check_files(config)
    assert [mode(p) for p in (box, box / "tmp", box / "new", box / "cur")] == [0o700] * 4
    if os.geteuid() == 0:
        (box / "new").chmod(0o755)
        os.chown(box / "new", 65534, 65534)
        with pytest.raises(UsageError, match=f"chmod -R go= {box / 'new'}"):
            check_files(config)
