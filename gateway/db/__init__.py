"""The one database of a gateway: job queue, deliveries, pseudonym map and audit (decision 2)."""

from gateway.db.engine import Base, make_engine, session_factory, upgrade

__all__ = ["Base", "make_engine", "session_factory", "upgrade"]
