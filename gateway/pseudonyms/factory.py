"""Build the pseudonym store a worker process uses, from the settings (one call)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, text

from gateway.config import Settings
from gateway.db import make_engine, upgrade
from gateway.pseudonyms.secret import load_secret
from gateway.pseudonyms.store import PseudonymStore, verify_secret

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


def open_engine(settings: Settings) -> Engine:
    """The gateway database, migrated to the newest schema."""
    engine = make_engine(settings.database.url, settings.database.echo)
    # Statement parameters are originals (UIDs, Patient IDs): keep them out of exception
    # messages and echo logs. (Better set by make_engine for every engine of the gateway.)
    engine.hide_parameters = True
    with migration_lock(engine):
        upgrade(engine)
    return engine


def open_pseudonymizer(settings: Settings) -> PseudonymStore:
    """The store (a Pseudonymizer) for this process: database migrated, secret loaded and
    checked against the map.

    Never creates a secret: ``serve`` calls :func:`gateway.pseudonyms.secret.ensure_secret`
    once at start-up, before it starts workers. Raises ``SecretError`` without a secret and
    ``PseudonymConflict`` if the secret is not the one the map was written with.
    """
    secret = load_secret(settings)
    engine = open_engine(settings)
    try:
        verify_secret(engine, secret, settings.node_id)
    except BaseException:
        engine.dispose()
        raise
    return PseudonymStore(engine, secret, settings.pseudonyms, settings.node_id, owns_engine=True)
