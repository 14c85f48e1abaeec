"""Alembic environment: the engine comes from `core.db.upgrade`, never from a global URL."""

from abuse_desk.core.models import Base
from alembic import context

engine = context.config.attributes["engine"]

with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
