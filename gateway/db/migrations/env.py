"""Alembic environment: the engine is handed in by gateway.db.upgrade, never read from a file."""

from __future__ import annotations

from alembic import context

import gateway.jobs.models
import gateway.pseudonyms.models  # noqa: F401
from gateway.db.engine import Base

engine = context.config.attributes["engine"]

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
