"""The database-backed Pseudonymizer: keyed derivation first, stored for audit (decision 4).

Hot path. UIDs and other identifiers are *derived* (HMAC, a microsecond or two), answered from
an in-process LRU cache after the first time, and queued for writing: the database is not on
the path of :meth:`PseudonymStore.uid` or :meth:`PseudonymStore.identifier` at all.

Write-behind, and when rows are durable. Queued rows are written by :meth:`PseudonymStore.flush`
with insert-if-absent (PostgreSQL: one ``INSERT ... ON CONFLICT DO NOTHING`` statement per 500
rows; SQLite: ``INSERT OR IGNORE`` in one transaction) and, unless all were new, read back and
compared. **The worker calls
``flush()`` after the stages ran and before it commits the job's next state (ready, or
quarantined) in the same database**, so every row an outgoing instance depends on is committed
before the instance can leave the gateway; a failed flush leaves the rows queued (the next
flush writes them) and the job must be retried. Flushes are serialised per store, so a flush
that returns has committed everything any earlier call handed out.

Durability. By default (``durable_flush: false``) a flush commits without waiting for the
disk, and the worker's own durable commit of the job state, which follows in the same
database, makes the rows durable too (one write-ahead log, flushed in order; see
:class:`HotConnection`). That removes an fsync per instance from the hot path (about 1 ms on
PostgreSQL here). A power cut between the two loses only rows whose job is not ready yet; the
job runs again and writes them again. Callers that commit nothing after a flush set
``durable_flush: true``.

Patients. A patient miss reads the database (the site lookup table lives there); an absent
patient follows ``lookup_policy``: ``quarantine`` raises :class:`PseudonymUnavailable`,
``generate`` derives pseudonyms and a date offset, inserts them if absent and reads the row
back. The stored row wins from then on, so a patient keeps its pseudonym and its date shift
for ever, even if the configured form or offset range changes later.

Consistency. Derivation is deterministic, so a stored row that differs from the derived value
means the secret is not the one that wrote the map: the store then refuses all further work
(:class:`PseudonymConflict`). A check row written on first open catches that at start-up.
Several processes and nodes may insert the same rows at once; unique constraints make
duplicates impossible, rows go in sorted order (one lock order for all writers) and a
PostgreSQL deadlock or serialisation failure is retried.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import structlog
from sqlalchemy import Connection, Engine, Insert, Table, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import OperationalError

from gateway.config import PseudonymSettings
from gateway.pseudonyms import derive
from gateway.pseudonyms.interface import PatientPseudonym, Pseudonymizer, PseudonymUnavailable
from gateway.pseudonyms.models import ORIGINAL_MAX, PatientRow, PseudonymMapRow, utcnow

log = structlog.get_logger("gateway.pseudonyms.store")

KIND_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
UID_KIND = "uid"
CHECK_KIND = "secret_check"
_RESERVED_KINDS = frozenset({UID_KIND, CHECK_KIND, "patient"})
_CHECK_ORIGINAL = "deid-gateway secret check v1"
_READ_CHUNK = 500
_RETRIES = 5
# PostgreSQL: deadlock_detected, serialization_failure: safe to run the transaction again.
_RETRY_SQLSTATES = frozenset({"40P01", "40001"})

K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")


class PseudonymConflict(PseudonymUnavailable):
    """The map holds another replacement for an original than the secret derives.

    Raised when the site secret differs from the one that wrote the map (or the map was
    edited). The store refuses further work until restarted with the right secret.
    """


class LruCache(Generic[K, V]):
    """A bounded mapping that forgets the least recently used entry; size 0 keeps nothing."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._data: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        if self._size <= 0:
            return
        self._data[key] = value
        self._data.move_to_end(key)
        if len(self._data) > self._size:
            self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


def insert_ignore(table: Table, dialect: str) -> Insert:
    """Insert-if-absent for ``table``: rows that break any unique constraint are skipped."""
    if dialect == "postgresql":
        return pg_insert(table).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite_insert(table).prefix_with("OR IGNORE")
    raise ValueError(f"unsupported database dialect {dialect}")


def _retryable(err: OperationalError) -> bool:
    return getattr(err.orig, "sqlstate", None) in _RETRY_SQLSTATES


def run_transaction(engine: Engine, work: Callable[[Connection], T]) -> T:
    """Run ``work`` in one durable transaction, again on a PostgreSQL deadlock or
    serialisation error (used off the hot path: imports, the secret check)."""
    for attempt in range(_RETRIES):
        try:
            with engine.begin() as conn:
                return work(conn)
        except OperationalError as err:
            if attempt == _RETRIES - 1 or not _retryable(err):
                raise
            log.warning("pseudonym transaction retried", attempt=attempt + 1)
    raise AssertionError("unreachable")


class HotConnection:
    """The store's own connection for the hot path, configured once, used under a lock.

    PostgreSQL: autocommit, so each multi-row insert-if-absent is one atomic statement and
    one round trip; SQLite: a short ``BEGIN IMMEDIATE`` transaction per call. Unless
    ``durable`` is set, commits do not wait for the disk (PostgreSQL ``synchronous_commit
    off``, SQLite ``synchronous=NORMAL`` for this connection only). Such a commit is visible at
    once and becomes durable with the next durable commit on the same database, because both
    engines write one log (WAL) in order and flushing it to a later commit flushes every
    earlier one; the worker's commit of the job state that follows a flush is that commit.
    """

    def __init__(self, engine: Engine, durable: bool) -> None:
        self._engine = engine
        self._durable = durable
        self._pg = engine.dialect.name == "postgresql"
        self._conn: Connection | None = None
        self._lock = threading.RLock()

    def _open(self) -> Connection:
        if self._pg:
            conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            if not self._durable:
                conn.exec_driver_sql("SET synchronous_commit TO OFF")
                conn.commit()
            return conn
        conn = self._engine.connect()
        if not self._durable:
            raw: Any = conn.connection.dbapi_connection
            raw.execute("PRAGMA synchronous=NORMAL")
        return conn

    def _connection(self) -> Connection:
        conn = self._conn
        if conn is None or conn.closed or conn.invalidated:
            if conn is not None:
                conn.close()
            conn = self._conn = self._open()
        return conn

    def _once(self, work: Callable[[Connection], T]) -> T:
        conn = self._connection()
        if self._pg:
            try:
                result = work(conn)
            except BaseException:
                conn.rollback()
                raise
            conn.commit()
            return result
        with conn.begin():
            return work(conn)

    def run(self, work: Callable[[Connection], T]) -> T:
        """Run ``work``; again on a PostgreSQL deadlock or serialisation error."""
        with self._lock:
            for attempt in range(_RETRIES):
                try:
                    return self._once(work)
                except OperationalError as err:
                    if attempt == _RETRIES - 1 or not _retryable(err):
                        raise
                    log.warning("pseudonym transaction retried", attempt=attempt + 1)
            raise AssertionError("unreachable")

    def close(self) -> None:
        """Give the connection back to the pool as durable as it came."""
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is None or conn.closed:
                return
            try:
                if not self._durable and not conn.invalidated:
                    if self._pg:
                        conn.exec_driver_sql("RESET synchronous_commit")
                        conn.commit()
                    else:
                        conn.connection.dbapi_connection.execute(  # type: ignore[union-attr]
                            "PRAGMA synchronous=FULL")
            finally:
                conn.close()


def _chunks(items: Sequence[T], size: int = _READ_CHUNK) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


MAP: Table = PseudonymMapRow.__table__  # type: ignore[assignment]
PATIENTS: Table = PatientRow.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class StoredPatient:
    """A patient row as read back from the database."""

    patient_key: str
    pseudonym: PatientPseudonym
    source: str


def _to_patient(row: Any) -> StoredPatient:
    return StoredPatient(
        patient_key=row.patient_key,
        pseudonym=PatientPseudonym(
            patient_id=row.pseudonym_id,
            patient_name=row.pseudonym_name,
            date_offset_days=row.date_offset_days,
        ),
        source=row.source,
    )


def read_patient(conn: Connection, key: str) -> StoredPatient | None:
    """The stored patient for ``key`` (see :func:`derive.patient_key`), if any."""
    row = conn.execute(select(PATIENTS).where(PATIENTS.c.patient_key == key)).first()
    return None if row is None else _to_patient(row)


# PostgreSQL: all rows of a flush in one statement and one round trip (arrays, unnested in
# order), a cached statement whose row count is exact.
_PG_INSERT_MAP = text(
    "INSERT INTO pseudonym_map (kind, original, pseudonym, first_seen, node_id) "
    "SELECT k, o, p, :first_seen, :node_id "
    "FROM unnest(CAST(:kinds AS text[]), CAST(:originals AS text[]), "
    "CAST(:pseudonyms AS text[])) AS t(k, o, p) "
    "ON CONFLICT DO NOTHING"
)


def _insert_map_chunk(
    conn: Connection, chunk: Sequence[tuple[str, str]], rows: dict[tuple[str, str], str],
    node_id: str, now: dt.datetime,
) -> int:
    """Insert-if-absent one chunk of rows; returns how many were new."""
    if conn.dialect.name == "postgresql":
        params = {"kinds": [k for k, _ in chunk], "originals": [o for _, o in chunk],
                  "pseudonyms": [rows[key] for key in chunk], "first_seen": now,
                  "node_id": node_id}
        return conn.execute(_PG_INSERT_MAP, params).rowcount
    values = [{"kind": k, "original": o, "pseudonym": rows[(k, o)], "first_seen": now,
               "node_id": node_id} for k, o in chunk]
    # sqlite3 sums the row counts of an executemany (INSERT OR IGNORE counts inserted rows).
    return conn.execute(insert_ignore(MAP, "sqlite"), values).rowcount


def write_map_rows(conn: Connection, rows: dict[tuple[str, str], str], node_id: str) -> None:
    """Insert-if-absent the ``(kind, original) -> pseudonym`` rows, then check them.

    When every row was inserted here (the row count says so) they hold our values;
    otherwise the stored rows are read back and compared. Raises :class:`PseudonymConflict`
    when a stored row disagrees, or when a pseudonym is already taken by another original (a
    collision, or a map written with another secret).
    """
    keys = sorted(rows)  # one lock order for every writer: no deadlock on PostgreSQL
    now = utcnow()
    inserted = sum(_insert_map_chunk(conn, chunk, rows, node_id, now) for chunk in _chunks(keys))
    if inserted != len(keys):  # some were there already (or the driver cannot tell)
        _check_map_rows(conn, rows, keys)


def _check_map_rows(
    conn: Connection, rows: dict[tuple[str, str], str], keys: list[tuple[str, str]]
) -> None:
    by_kind: dict[str, list[str]] = {}
    for kind, original in keys:
        by_kind.setdefault(kind, []).append(original)
    for kind, originals in by_kind.items():
        stored: dict[str, str] = {}
        for chunk in _chunks(originals):
            query = select(MAP.c.original, MAP.c.pseudonym).where(
                MAP.c.kind == kind, MAP.c.original.in_(chunk)
            )
            stored.update((r.original, r.pseudonym) for r in conn.execute(query))
        bad = sum(1 for o in originals if stored.get(o) != rows[(kind, o)])
        if bad:
            raise PseudonymConflict(
                f"the pseudonym map disagrees with the site secret for {bad} value(s) of kind "
                f"{kind!r}: this is not the secret that wrote the map (or the map was edited)"
            )


def verify_secret(engine: Engine, secret: bytes, node_id: str) -> None:
    """Write (once) and compare a check row, so that a wrong secret is refused at start-up."""
    row = {(CHECK_KIND, _CHECK_ORIGINAL): derive.identifier_for(secret, CHECK_KIND,
                                                                _CHECK_ORIGINAL, 26)}
    try:
        run_transaction(engine, lambda conn: write_map_rows(conn, row, node_id))
    except PseudonymConflict:
        raise PseudonymConflict(
            "the site secret is not the one this database's pseudonym map was written with; "
            "restore the original secret (see docs/pseudonyms.md), or use a new database"
        ) from None


class PseudonymStore:
    """The :class:`~gateway.pseudonyms.interface.Pseudonymizer` of the gateway.

    One instance per worker process, created in that process (after a fork, never before: it
    holds a connection pool and a connection of its own). Thread-safe.
    """

    def __init__(
        self,
        engine: Engine,
        secret: bytes,
        settings: PseudonymSettings,
        node_id: str,
        owns_engine: bool = False,
    ) -> None:
        self._engine = engine
        self._secret = secret
        self._settings = settings
        self._node_id = node_id
        self._owns_engine = owns_engine
        self._uids: LruCache[str, str] = LruCache(settings.cache_size)
        self._identifiers: LruCache[tuple[str, str], str] = LruCache(settings.cache_size)
        self._patients: LruCache[str, PatientPseudonym] = LruCache(settings.cache_size)
        self._pending: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._broken: str | None = None
        self._hot = HotConnection(engine, settings.durable_flush)

    def __repr__(self) -> str:  # never shows the secret
        return f"PseudonymStore(dialect={self._engine.dialect.name!r}, node={self._node_id!r})"

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def node_id(self) -> str:
        return self._node_id

    @property
    def pending(self) -> int:
        """Rows derived but not yet written by :meth:`flush`."""
        return len(self._pending)

    def _check_usable(self) -> None:
        if self._broken is not None:
            raise PseudonymConflict(self._broken)

    @staticmethod
    def _check_length(*values: str) -> None:
        if any(len(v) > ORIGINAL_MAX for v in values):
            raise PseudonymUnavailable(
                f"a value longer than {ORIGINAL_MAX} characters cannot be mapped (malformed input)"
            )

    # -- the Pseudonymizer protocol ------------------------------------------------------

    def uid(self, original: str) -> str:
        """``2.25.<HMAC>`` for ``original``; well-known UIDs and empty values come back as is."""
        if not original or derive.is_well_known_uid(original):
            return original
        self._check_usable()
        self._check_length(original)
        with self._lock:
            new = self._uids.get(original)
            if new is None:
                new = derive.uid_for(self._secret, original)
                self._uids.put(original, new)
                self._pending[(UID_KIND, original)] = new
        return new

    def identifier(self, kind: str, original: str) -> str:
        """The replacement of an Accession Number (``"accession"``), Study ID (``"study_id"``)...

        Empty values stay empty (a Type 2 attribute stays zero-length).
        """
        if not KIND_PATTERN.match(kind) or kind in _RESERVED_KINDS:
            raise ValueError(f"invalid identifier kind {kind!r}")
        if not original:
            return original
        self._check_usable()
        self._check_length(original)
        key = (kind, original)
        with self._lock:
            new = self._identifiers.get(key)
            if new is None:
                new = derive.identifier_for(self._secret, kind, original)
                self._identifiers.put(key, new)
                self._pending[key] = new
        return new

    def patient(self, patient_id: str, issuer: str, patient_name: str) -> PatientPseudonym:
        """The patient's pseudonyms and date offset (the name is not used as a key)."""
        self._check_usable()
        self._check_length(patient_id, issuer)
        key = derive.patient_key(patient_id, issuer)
        with self._lock:
            hit = self._patients.get(key)
        if hit is not None:
            return hit
        stored = self._load_patient(key, patient_id, issuer)
        with self._lock:
            self._patients.put(key, stored.pseudonym)
        return stored.pseudonym

    # -- patients --------------------------------------------------------------------------

    def derived_patient_values(self, key: str) -> PatientPseudonym:
        """What the HMAC gives this patient under the current settings (not yet stored)."""
        s = self._settings
        return PatientPseudonym(
            patient_id=derive.patient_id_for(
                self._secret, key, s.patient_id_prefix, s.patient_id_length, s.patient_id_form
            ),
            patient_name=derive.patient_name_for(self._secret, key, s.patient_name_prefix),
            date_offset_days=self.date_offset(key),
        )

    def date_offset(self, key: str) -> int:
        """The derived date shift of a patient key within the configured range; never zero."""
        s = self._settings
        return derive.date_offset_for(
            self._secret, key, s.date_offset_min_days, s.date_offset_max_days
        )

    def _load_patient(self, key: str, patient_id: str, issuer: str) -> StoredPatient:
        if self._settings.lookup_policy == "quarantine":
            stored = self._hot.run(lambda conn: read_patient(conn, key))
            if stored is None:
                raise PseudonymUnavailable(
                    "the patient has no entry in the site lookup table and "
                    "pseudonyms.lookup_policy is quarantine"
                )
            return stored
        values = self.derived_patient_values(key)
        row = {
            "patient_key": key, "original_id": patient_id, "original_issuer": issuer,
            "pseudonym_id": values.patient_id, "pseudonym_name": values.patient_name,
            "date_offset_days": values.date_offset_days, "source": "derived",
            "first_seen": utcnow(), "node_id": self._node_id,
        }
        # Insert-if-absent, then read back: a stored row (from the lookup table, an earlier
        # run or another node) wins over the values derived here.
        stored = self._hot.run(lambda conn: self._insert_patient(conn, row))
        if stored is None:
            raise PseudonymUnavailable(
                "the generated patient pseudonym is already held by another patient; "
                "give this patient an entry in the site lookup table"
            )
        return stored

    @staticmethod
    def _insert_patient(conn: Connection, row: dict[str, Any]) -> StoredPatient | None:
        conn.execute(insert_ignore(PATIENTS, conn.dialect.name), [row])
        return read_patient(conn, row["patient_key"])

    # -- write-behind ---------------------------------------------------------------------

    def flush(self) -> int:
        """Commit every queued map row; returns how many were queued.

        Call before an instance that used this store is marked ready. On failure the rows stay
        queued and the exception propagates (a database error: retry the job later; a
        :class:`PseudonymConflict`: the secret is wrong, the store refuses further work).
        """
        with self._flush_lock:
            self._check_usable()
            with self._lock:
                batch, self._pending = self._pending, {}
            if not batch:
                return 0
            try:
                self._hot.run(lambda conn: write_map_rows(conn, batch, self._node_id))
            except PseudonymConflict as err:
                self._broken = str(err)
                log.error("pseudonym map conflict; store disabled", rows=len(batch))
                raise
            except BaseException:
                with self._lock:
                    batch.update(self._pending)
                    self._pending = batch
                raise
            return len(batch)

    def close(self) -> None:
        """Flush what is queued, then release the connection (and the pool if owned)."""
        try:
            if self._broken is None:
                self.flush()
        finally:
            self._hot.close()
            if self._owns_engine:
                self._engine.dispose()

    def __enter__(self) -> PseudonymStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _implements_protocol(store: PseudonymStore) -> Pseudonymizer:
    """Lets mypy check that the store satisfies the engine's interface."""
    return store
