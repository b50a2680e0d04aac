"""The identity memory of one node, shared by its worker processes.

What the first instance of a study taught must reach the worker that processes the next one,
and a node runs several workers. :class:`SharedIdentityMemory` keeps the memory in a small
SQLite file beside the spool (the spool already holds the received instances, with every value
this file holds), bounded to ``size`` keys, least recently used forgotten first. Keys are stored
hashed. When the file cannot be used (disk full, locked too long), the memory falls back to
this process's own, so that an instance is never held back by it.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

from gateway.identity.model import KINDS, MAX_PER_KIND, Identity, IdentityMemory
from gateway.observe.logs import get_logger

log = get_logger("gateway.identity")
PRUNE_EVERY = 64  # learns between two prunings
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS memory_keys (key TEXT PRIMARY KEY, seen REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS memory_keys_seen ON memory_keys (seen)",
    "CREATE TABLE IF NOT EXISTS memory_values (key TEXT NOT NULL, kind TEXT NOT NULL, "
    "value TEXT NOT NULL, PRIMARY KEY (key, kind, value))",
)


def _hashed(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:32]


class SharedIdentityMemory:
    """:class:`IdentityMemory` in a file that every process of the node opens (``path``)."""

    def __init__(self, path: Path, size: int = 8192) -> None:
        self._path = path
        self._size = size
        self._conn: sqlite3.Connection | None = None
        self._learned = 0
        self._local = IdentityMemory(size)
        self._failed = False

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._path, os.O_CREAT | os.O_RDWR, 0o600)
            os.close(fd)
            conn = sqlite3.connect(self._path, timeout=2.0, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=OFF")  # a memory: losing it loses no instance
            for statement in _SCHEMA:
                conn.execute(statement)
            self._conn = conn
        return self._conn

    def _fallback(self, err: Exception) -> None:
        if not self._failed:
            log.warning("identity memory file unavailable; this process remembers alone",
                        error=type(err).__name__)
        self._failed = True
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def recall(self, keys: Iterable[str]) -> Identity:
        """The union of what the node knows under ``keys``."""
        keys = list(keys)
        out = self._local.recall(keys)
        if not keys:
            return out
        hashed = [_hashed(k) for k in keys]
        try:
            rows = self._db().execute(
                f"SELECT kind, value FROM memory_values WHERE key IN "
                f"({','.join('?' * len(hashed))})", hashed).fetchall()
        except (sqlite3.Error, OSError) as err:
            self._fallback(err)
            return out
        for kind, value in rows:
            if kind in KINDS:
                getattr(out, kind).add(value)
        return out

    def learn(self, keys: Iterable[str], identity: Identity, known: Identity | None = None
              ) -> None:
        """Remember the values of ``identity`` (not UIDs) under each of ``keys``; ``known`` is
        what :meth:`recall` gave for these keys (nothing is written when it holds it all)."""
        keys = list(keys)
        self._local.learn(keys, identity)
        new = [(kind, v) for kind in KINDS for v in getattr(identity, kind)
               if known is None or v not in getattr(known, kind)]
        if not keys or not new:
            return
        rows = [(h, kind, v) for h in map(_hashed, keys) for kind, v in new
                if known is None or len(getattr(known, kind)) < MAX_PER_KIND]
        now = time.time()
        try:
            conn = self._db()
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT OR IGNORE INTO memory_values VALUES (?, ?, ?)", rows)
            conn.executemany("INSERT OR REPLACE INTO memory_keys VALUES (?, ?)",
                             [(h, now) for h in map(_hashed, keys)])
            self._learned += 1
            if self._learned % PRUNE_EVERY == 0:
                self._prune(conn)
            conn.execute("COMMIT")
        except (sqlite3.Error, OSError) as err:
            self._fallback(err)

    def _prune(self, conn: sqlite3.Connection) -> None:
        """Forget the least recently learned keys beyond ``size``."""
        old = [r[0] for r in conn.execute(
            "SELECT key FROM memory_keys ORDER BY seen DESC LIMIT -1 OFFSET ?", (self._size,))]
        if old:
            conn.executemany("DELETE FROM memory_values WHERE key = ?", [(k,) for k in old])
            conn.executemany("DELETE FROM memory_keys WHERE key = ?", [(k,) for k in old])

    def __len__(self) -> int:
        try:
            return int(self._db().execute("SELECT count(*) FROM memory_keys").fetchone()[0])
        except (sqlite3.Error, OSError):
            return len(self._local)
