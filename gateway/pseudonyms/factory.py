"""Build the pseudonym store a worker process uses, from the settings (one call)."""

from __future__ import annotations

from sqlalchemy import Engine

from gateway.config import Settings
from gateway.db import make_engine, upgrade
from gateway.pseudonyms.secret import load_secret
from gateway.pseudonyms.store import PseudonymStore, verify_secret


def open_engine(settings: Settings) -> Engine:
    """The gateway database, migrated to the newest schema."""
    engine = make_engine(settings.database.url, settings.database.echo)
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
