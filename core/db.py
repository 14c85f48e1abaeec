"""Database engines (SQLite embedded, PostgreSQL in production), schema migrations, and the
modes of the desk's files: its SQLite database holds every report, the personal data in them,
the accounts and the key that signs self-service links, so it is the owner's alone (0600, its
folder 0700), made that way and checked at every start (:func:`private_database`)."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from .config import DatabaseConfig

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


IMMEDIATE = "abuse_desk_immediate"


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """``engine.begin()`` for a transaction that reads before it writes. On SQLite it takes the
    write lock at its start (BEGIN IMMEDIATE), waiting up to the busy timeout for it: a
    transaction that only asks for the lock at its first write cannot wait (another writer
    may have committed since it read) and fails at once with "database is locked". On
    PostgreSQL it is ``engine.begin()``."""
    with engine.connect() as conn:
        conn = conn.execution_options(**{IMMEDIATE: True})
        with conn.begin():
            yield conn


# ---- file modes ------------------------------------------------------------------------------

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


class FileModeError(RuntimeError):
    """A file of the desk is open to other users and cannot be tightened by this process; the
    message says what to run."""


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite *url*; None for PostgreSQL and in-memory databases."""
    if not is_sqlite(url):
        return None
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def tighten(path: Path, fix: str) -> str | None:
    """Take group and other users' access away from *path* if it has any: done if this process
    owns it (returns what was changed, for the log), else :class:`FileModeError` saying to run
    *fix*. A shared folder with the sticky bit (``/tmp``) is left as it is: it is meant to be
    shared, and what the desk keeps in it is 0600."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    mode = stat.S_IMODE(st.st_mode)
    if not mode & 0o077 or (stat.S_ISDIR(st.st_mode) and mode & stat.S_ISVTX):
        return None
    if st.st_uid != os.geteuid():
        raise FileModeError(
            f"{path} is open to other users (mode {mode:04o}) and belongs to another user "
            f"(uid {st.st_uid}), so this process cannot close it: run `{fix}` as its owner")
    try:
        os.chmod(path, mode & ~0o077)
    except FileNotFoundError:  # a -wal or -shm SQLite removed meanwhile
        return None
    except OSError as exc:
        raise FileModeError(f"{path} is open to other users (mode {mode:04o}) and cannot be "
                            f"changed ({exc.strerror}): run `{fix}`") from None
    return f"{path} was mode {mode:04o}, open to other users: now {mode & ~0o077:04o}"


def private_database(path: Path) -> list[str]:
    """Make the folder of the SQLite database at *path* (0700) and the database (0600) if they
    are missing; close an existing folder, database, -wal, -shm or -journal to other users.
    Returns what was changed (each also logged as a warning); :class:`FileModeError` when a
    file belongs to someone else. SQLite makes its -wal and -shm files with the database's
    mode."""
    folder = path.parent
    folder.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    fix = (f"chmod 700 {folder}; chmod 600 {path}*" if str(folder) not in ("", ".")
           else f"chmod 600 {path}*")
    changed = [tighten(folder, fix)] if str(folder) not in ("", ".") else []
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))
    except FileExistsError:
        pass
    for suffix in ("", *SQLITE_SIDE_FILES):
        changed.append(tighten(Path(f"{path}{suffix}"), fix))
    done = [c for c in changed if c]
    for line in done:
        log.warning("%s", line)
    return done


def private_folders(folders: Iterable[Path]) -> list[str]:
    """Close existing *folders* (e.g. the Maildir outbox and its tmp, new, cur) to other users,
    as :func:`tighten` does; returns what was changed, each also logged as a warning."""
    done = []
    for folder in folders:
        changed = tighten(folder, f"chmod -R go= {folder}")
        if changed:
            log.warning("%s", changed)
            done.append(changed)
    return done


def make_engine(cfg: DatabaseConfig, **kwargs: Any) -> Engine:
    """An engine for ``cfg.url``; SQLite gets WAL, synchronous=FULL and a busy timeout, and its
    files are the owner's only (:func:`private_database`)."""
    url = make_url(cfg.url)
    if is_sqlite(cfg.url):
        path = sqlite_file(cfg.url)
        if path is not None:
            private_database(path)
        engine = create_engine(
            url, connect_args={"timeout": cfg.busy_timeout_s, "isolation_level": None}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={int(cfg.busy_timeout_s * 1000)}")
            cur.close()

        # pysqlite's own transaction handling is off (isolation_level=None above): it would
        # otherwise open transactions late and commit behind our back. Write transactions here
        # start with their write, so the busy timeout applies instead of a failed lock upgrade.
        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            immediate = conn.get_execution_options().get(IMMEDIATE, False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    connect_args = {"connect_timeout": max(1, int(cfg.connect_timeout_s))}
    return create_engine(url, connect_args=connect_args, pool_pre_ping=True,
                         pool_size=10, max_overflow=20, **kwargs)


def make_sessions(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def _alembic_config(engine: Engine) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to *revision* (``abuse-desk db upgrade``)."""
    command.upgrade(_alembic_config(engine), revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    script = ScriptDirectory(str(MIGRATIONS))
    return script.get_current_head()


class SchemaOutOfDate(RuntimeError):
    pass


def ensure_schema(engine: Engine, *, auto_upgrade: bool) -> None:
    """Upgrade the embedded database, or refuse to run against an out-of-date production one."""
    current, head = current_revision(engine), head_revision()
    if current == head:
        return
    if auto_upgrade:
        log.info("upgrading database schema from %s to %s", current or "empty", head)
        upgrade(engine)
        return
    raise SchemaOutOfDate(
        f"the database schema is at {current or 'nothing'}, the code needs {head}: "
        "run `abuse-desk db upgrade` first")
