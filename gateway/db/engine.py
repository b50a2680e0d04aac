"""Engine creation for SQLite (WAL) and PostgreSQL, and Alembic migrations run from code.

SQLite is opened in WAL mode with ``synchronous=FULL`` so that a committed job row survives a
power cut, and every transaction starts with ``BEGIN IMMEDIATE`` so that concurrent claimers in
several processes serialise on the write lock instead of failing with "database is locked"
half-way through a transaction.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, MetaData, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

MIGRATIONS = Path(__file__).with_name("migrations")

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base of every table of the gateway."""

    metadata = MetaData(naming_convention=NAMING)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # let SQLAlchemy's begin event emit BEGIN IMMEDIATE
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


# Execution option marking a connection that only reads: its SQLite transactions begin
# DEFERRED, so that reads (WAL snapshots) never take or wait for the write lock.
READ_ONLY = "deid_read_only"


BUSY_TIMEOUT_S = 30.0


def _sqlite_begin(conn: Any) -> None:
    """Begin a transaction; writers take the write lock at once (BEGIN IMMEDIATE).

    SQLite's own busy handler sleeps in coarse steps (1, 2, 5, 10... ms) while another process
    holds the lock, which on a receiver answering one C-STORE at a time costs more than the
    lock is held. Writers therefore poll the lock themselves in sub-millisecond steps.
    """
    if conn.get_execution_options().get(READ_ONLY, False):
        conn.exec_driver_sql("BEGIN")
        return
    dbapi = conn.connection.dbapi_connection
    dbapi.execute("PRAGMA busy_timeout=0")
    try:
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        delay = 0.0001
        while True:
            try:
                dbapi.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) and "busy" not in str(err):
                    raise
                if time.monotonic() > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 1.5, 0.005)
    finally:
        dbapi.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")


def reader(engine: Engine) -> Engine:
    """The same engine and pool, for transactions that only read."""
    return engine.execution_options(**{READ_ONLY: True})


def make_engine(url: str, echo: bool = False) -> Engine:
    """Create the engine for ``url``; SQLite files get their folder created and WAL enabled.

    Statement parameters are originals (UIDs, Patient IDs), so they are kept out of exception
    messages and echo logs (``hide_parameters``).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, echo=echo, hide_parameters=True, connect_args={"timeout": 30}
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return create_engine(
        parsed, echo=echo, hide_parameters=True, pool_pre_ping=True, pool_size=8, max_overflow=8
    )


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded attributes after commit (rows are small, reads are cheap)."""
    return sessionmaker(engine, expire_on_commit=False)


def _alembic_config(engine: Engine) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


# pg_advisory_lock key for schema migrations ("deid" in ASCII), so that several processes or
# nodes starting at once do not race to create the same tables.
_MIGRATION_LOCK = 0x64656964


@contextmanager
def migration_lock(engine: Engine) -> Iterator[None]:
    """Serialise schema upgrades across processes and nodes (PostgreSQL advisory lock).

    SQLite needs none: every transaction there starts with ``BEGIN IMMEDIATE``.
    """
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK})
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK})
            conn.commit()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (Alembic), creating it on first start."""
    with migration_lock(engine):
        command.upgrade(_alembic_config(engine), revision)


def current_revision(engine: Engine) -> str | None:
    """The schema revision the database is at, or None before the first migration."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
