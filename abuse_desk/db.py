"""Database engines (SQLite embedded, PostgreSQL in production) and schema migrations."""

from __future__ import annotations

import logging
from collections.abc import Iterator
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

from abuse_desk.config import DatabaseConfig

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


def make_engine(cfg: DatabaseConfig, **kwargs: Any) -> Engine:
    """An engine for ``cfg.url``; SQLite gets WAL, synchronous=FULL and a busy timeout."""
    url = make_url(cfg.url)
    if is_sqlite(cfg.url):
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
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
