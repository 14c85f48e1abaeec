"""The Alembic migrations build exactly the schema the models describe, on both engines."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from abuse_desk.core.db import current_revision, head_revision, upgrade
from abuse_desk.core.models import Base
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext


def differences(engine: sa.Engine) -> list[object]:
    with engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn), Base.metadata))


def test_migrations_match_the_models_on_sqlite(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    assert differences(engine) == []
    engine.dispose()


@pytest.mark.service
def test_migrations_match_the_models_on_postgres(postgres_url: str) -> None:
    engine = sa.create_engine(postgres_url)
    upgrade(engine)
    assert differences(engine) == []
    engine.dispose()


def test_upgrade_keeps_existing_rows(tmp_path: Path) -> None:
    """A desk upgraded from the first schema keeps its messages and reports."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    upgrade(engine, "0001")
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO messages (id, state, origin, raw, sha256, size, rcpt_tos, tls, "
            "received_at) VALUES (1, 'processed', 'smtp', x'41', 'x', 1, '[]', 0, "
            "'2026-01-01 00:00:00')"))
        conn.execute(sa.text(
            "INSERT INTO reports (id, message_id, seq, format, fields, decision, created_at) "
            "VALUES (1, 1, 0, 'arf', '{}', '{}', '2026-01-01 00:00:00')"))
    upgrade(engine)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT duplicates FROM reports")).scalar_one() == 0
        assert conn.execute(sa.text("SELECT raw FROM messages")).scalar_one() == b"A"
    engine.dispose()
