"""Alembic environment: the engine is handed in by gateway.db.upgrade, never read from a file."""

from __future__ import annotations

from alembic import context

import gateway.jobs.models
import gateway.pseudonyms.models  # noqa: F401
from gateway.db.engine import Base

engine = context.config.attributes["engine"]

with engine.connect() as connection:
    # One transaction for the whole upgrade, begun before Alembic looks at the schema. On SQLite
    # that is BEGIN IMMEDIATE (gateway.db.engine), held from reading the current revision to the
    # last migration: Alembic would otherwise commit each migration on its own there (SQLite
    # counts as non-transactional DDL), and a second process that read the revision between two
    # of them would apply a migration twice. PostgreSQL is serialised by the advisory lock.
    connection.begin()
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
