"""The database-backed pseudonym store on SQLite and PostgreSQL: derivation, write-behind,
insert-if-absent, restarts, patients and their policies, and a wrong secret."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pseudonym_support import settings_for, synthetic_patient, synthetic_uid
from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import OperationalError

from gateway.config import Settings
from gateway.pseudonyms import derive
from gateway.pseudonyms import store as store_module
from gateway.pseudonyms.factory import open_engine, open_pseudonymizer
from gateway.pseudonyms.interface import PseudonymUnavailable
from gateway.pseudonyms.models import utcnow
from gateway.pseudonyms.secret import load_secret
from gateway.pseudonyms.store import (
    MAP,
    PATIENTS,
    HotConnection,
    LruCache,
    PseudonymConflict,
)

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def _map_rows(settings: Settings, kind: str = "uid") -> dict[str, str]:
    with open_pseudonymizer(settings) as s, s.engine.connect() as conn:
        rows = conn.execute(select(MAP.c.original, MAP.c.pseudonym).where(MAP.c.kind == kind))
        return {r.original: r.pseudonym for r in rows}


def test_uid_is_the_keyed_derivation(settings: Settings) -> None:
    """A UID becomes 2.25. + int(first 16 bytes of HMAC-SHA256(secret, uid))."""
    secret = load_secret(settings)
    original = synthetic_uid(1)
    with open_pseudonymizer(settings) as s:
        assert s.uid(original) == derive.uid_for(secret, original)


def test_well_known_and_empty_uids_unchanged_and_not_stored(settings: Settings) -> None:
    """SOP Class / Transfer Syntax UIDs and empty values come back as they are, unstored."""
    with open_pseudonymizer(settings) as s:
        assert s.uid(CT_IMAGE_STORAGE) == CT_IMAGE_STORAGE
        assert s.uid("1.2.840.10008.1.2.1") == "1.2.840.10008.1.2.1"
        assert s.uid("") == ""
        assert s.pending == 0
    assert _map_rows(settings) == {}


def test_flush_commits_rows_with_node_and_time(settings: Settings) -> None:
    """flush() writes every queued row once, recording the node and when it was first seen."""
    with open_pseudonymizer(settings) as s:
        new = {synthetic_uid(i): s.uid(synthetic_uid(i)) for i in range(5)}
        s.uid(synthetic_uid(0))  # a cache hit queues nothing more
        assert s.pending == 5
        assert s.flush() == 5
        assert s.flush() == 0
        with s.engine.connect() as conn:
            rows = conn.execute(select(MAP).where(MAP.c.kind == "uid")).all()
    assert {r.original: r.pseudonym for r in rows} == new
    assert {r.node_id for r in rows} == {"node-a"}
    assert all(r.first_seen <= utcnow() for r in rows)


def test_nothing_written_before_flush(settings: Settings) -> None:
    """Derivation alone does not touch the database (write-behind)."""
    with open_pseudonymizer(settings) as s:
        s.uid(synthetic_uid(7))
        with s.engine.connect() as conn:
            count = conn.execute(select(func.count()).select_from(MAP)
                                 .where(MAP.c.kind == "uid")).scalar_one()
        assert count == 0
        s.flush()


def test_restart_gives_same_values_and_no_new_rows(settings: Settings) -> None:
    """After a restart (cold cache) the same originals map to the same stored values."""
    originals = [synthetic_uid(i) for i in range(50)]
    with open_pseudonymizer(settings) as s:
        first = [s.uid(o) for o in originals]
    with open_pseudonymizer(settings) as s:
        again = [s.uid(o) for o in originals]
        assert s.flush() == 50  # re-inserted, ignored as present
    assert again == first
    assert _map_rows(settings) == dict(zip(originals, first, strict=True))


def test_second_node_same_secret_same_answers(settings: Settings, db_url: str,
                                              secret_file: Path) -> None:
    """Another node with the same secret and database derives and stores identical values."""
    other = settings_for(db_url, secret_file, node_id="node-b")
    with open_pseudonymizer(settings) as a, open_pseudonymizer(other) as b:
        assert [a.uid(synthetic_uid(i)) for i in range(10)] == [
            b.uid(synthetic_uid(i)) for i in range(10)]
        assert a.identifier("accession", "ACC1") == b.identifier("accession", "ACC1")
        assert a.patient(*synthetic_patient(1)) == b.patient(*synthetic_patient(1))


def test_identifiers_by_kind(settings: Settings) -> None:
    """Accession Number and Study ID are replaced per kind, fit SH (16 chars) and are stored."""
    with open_pseudonymizer(settings) as s:
        acc = s.identifier("accession", "A0001")
        sid = s.identifier("study_id", "A0001")
        assert acc != sid and len(acc) <= 16 and len(sid) <= 16
        assert s.identifier("accession", "A0001") == acc
        assert s.identifier("accession", "") == ""
    assert _map_rows(settings, "accession") == {"A0001": acc}
    assert _map_rows(settings, "study_id") == {"A0001": sid}


@pytest.mark.parametrize("kind", ["uid", "patient", "secret_check", "Bad Kind", "", "x" * 40])
def test_reserved_or_malformed_kinds_refused(settings: Settings, kind: str) -> None:
    """identifier() refuses kinds that would collide with UIDs or are not snake_case names."""
    with open_pseudonymizer(settings) as s, pytest.raises(ValueError, match="kind"):
        s.identifier(kind, "X")


def test_generated_patient_is_stored_with_offset(settings: Settings) -> None:
    """A new patient gets derived pseudonyms and a non-zero offset in range, stored at once."""
    pid, issuer, name = synthetic_patient(1)
    with open_pseudonymizer(settings) as s:
        p = s.patient(pid, issuer, name)
        with s.engine.connect() as conn:
            row = conn.execute(select(PATIENTS)).one()
    assert p.patient_id.startswith("P") and len(p.patient_id) == 13
    assert p.patient_name.startswith("ANON^")
    assert -3650 <= p.date_offset_days <= -30
    assert (row.pseudonym_id, row.pseudonym_name, row.date_offset_days) == (
        p.patient_id, p.patient_name, p.date_offset_days)
    assert (row.original_id, row.original_issuer, row.source) == (pid, issuer, "derived")


def test_issuer_distinguishes_patients(settings: Settings) -> None:
    """The same Patient ID from two issuers is two patients; the same pair is one."""
    with open_pseudonymizer(settings) as s:
        a = s.patient("12345", "HOSP_A", "")
        b = s.patient("12345", "HOSP_B", "")
        assert a.patient_id != b.patient_id
        assert s.patient("12345", "HOSP_A", "Other^Name") == a


def test_stored_patient_wins_over_changed_settings(db_url: str, secret_file: Path) -> None:
    """A patient keeps its pseudonyms and offset after the ID form or range is reconfigured."""
    before = settings_for(db_url, secret_file)
    after = settings_for(db_url, secret_file, patient_id_prefix="X", patient_id_form="digits",
                         date_offset_min_days=100, date_offset_max_days=200)
    with open_pseudonymizer(before) as s:
        old = s.patient(*synthetic_patient(2))
    with open_pseudonymizer(after) as s:
        assert s.patient(*synthetic_patient(2)) == old
        fresh = s.patient(*synthetic_patient(3))
    assert fresh.patient_id.startswith("X") and fresh.patient_id[1:].isdigit()
    assert 100 <= fresh.date_offset_days <= 200


def test_quarantine_policy_raises_without_phi(db_url: str, secret_file: Path) -> None:
    """With lookup_policy quarantine, an unknown patient raises PseudonymUnavailable, the
    message holds no patient value, and nothing is stored."""
    settings = settings_for(db_url, secret_file, lookup_policy="quarantine")
    pid, issuer, name = synthetic_patient(4)
    with open_pseudonymizer(settings) as s:
        with pytest.raises(PseudonymUnavailable) as info:
            s.patient(pid, issuer, name)
        with s.engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(PATIENTS)).scalar_one() == 0
    message = str(info.value)
    assert "lookup" in message
    assert pid not in message and name not in message and (not issuer or issuer not in message)


def test_pseudonym_collision_is_refused(settings: Settings) -> None:
    """A generated Patient ID already held by another patient is refused, not shared."""
    key = derive.patient_key("NEWPATIENT", "")
    with open_pseudonymizer(settings) as s:
        taken = s.derived_patient_values(key).patient_id
        with s.engine.begin() as conn:
            conn.execute(insert(PATIENTS), [{
                "patient_key": "OTHER\\KEY", "original_id": "KEY", "original_issuer": "OTHER",
                "pseudonym_id": taken, "pseudonym_name": "X^Y", "date_offset_days": -5,
                "source": "lookup", "first_seen": utcnow(), "node_id": "n"}])
        with pytest.raises(PseudonymUnavailable, match="already held"):
            s.patient("NEWPATIENT", "", "")


def test_wrong_secret_refused_at_open(settings: Settings, db_url: str, tmp_path: Path) -> None:
    """Opening a map written with one secret using another fails with a clear message."""
    open_pseudonymizer(settings).close()
    other_key = tmp_path / "other.key"
    from gateway.pseudonyms.secret import init_secret_file

    init_secret_file(other_key)
    with pytest.raises(PseudonymConflict, match="not the one"):
        open_pseudonymizer(settings_for(db_url, other_key))


def test_conflicting_row_disables_store(settings: Settings) -> None:
    """A stored row that disagrees with the derivation fails the flush and all later calls."""
    original = synthetic_uid(99)
    with open_pseudonymizer(settings) as s:
        with s.engine.begin() as conn:
            conn.execute(insert(MAP), [{"kind": "uid", "original": original,
                                        "pseudonym": "2.25.1", "first_seen": utcnow(),
                                        "node_id": "elsewhere"}])
        s.uid(original)
        with pytest.raises(PseudonymConflict) as info:
            s.flush()
        assert original not in str(info.value)
        with pytest.raises(PseudonymConflict):
            s.uid(synthetic_uid(100))


def test_pseudonym_taken_by_other_original_is_conflict(settings: Settings) -> None:
    """A stored row giving our UID's pseudonym to another original fails the flush."""
    original = synthetic_uid(98)
    with open_pseudonymizer(settings) as s:
        with s.engine.begin() as conn:
            conn.execute(insert(MAP), [{"kind": "uid", "original": "9.9.9",
                                        "pseudonym": derive.uid_for(load_secret(settings),
                                                                    original),
                                        "first_seen": utcnow(), "node_id": "elsewhere"}])
        s.uid(original)
        with pytest.raises(PseudonymConflict):
            s.flush()


def test_failed_flush_keeps_rows_queued(settings: Settings,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A database failure during flush leaves the rows queued; the next flush writes them."""
    with open_pseudonymizer(settings) as s:
        expected = {synthetic_uid(i): s.uid(synthetic_uid(i)) for i in range(3)}
        real = store_module.write_map_rows

        def failing(*args: object, **kwargs: object) -> None:
            raise OperationalError("INSERT", {}, Exception("disk I/O error"))

        monkeypatch.setattr(store_module, "write_map_rows", failing)
        with pytest.raises(OperationalError):
            s.flush()
        assert s.pending == 3
        monkeypatch.setattr(store_module, "write_map_rows", real)
        expected[synthetic_uid(3)] = s.uid(synthetic_uid(3))
        assert s.flush() == 4
    assert _map_rows(settings) == expected


def test_flush_is_race_free_against_concurrent_insert(settings: Settings) -> None:
    """A row inserted by another writer between derivation and flush is not duplicated."""
    original = synthetic_uid(5)
    with open_pseudonymizer(settings) as a, open_pseudonymizer(settings) as b:
        a.uid(original)
        b.uid(original)
        b.flush()
        a.flush()
        with a.engine.connect() as conn:
            n = conn.execute(text("SELECT count(*) FROM pseudonym_map WHERE kind = 'uid'"))
            assert n.scalar_one() == 1


def test_cache_disabled_still_consistent(db_url: str, secret_file: Path) -> None:
    """With cache_size 0 every call derives again and the answers do not change."""
    settings = settings_for(db_url, secret_file, cache_size=0)
    with open_pseudonymizer(settings) as s:
        assert s.uid(synthetic_uid(1)) == s.uid(synthetic_uid(1))
        assert s.patient(*synthetic_patient(1)) == s.patient(*synthetic_patient(1))


def test_lru_cache_forgets_least_recently_used() -> None:
    """The cache keeps at most its size, dropping the entry used longest ago."""
    cache: LruCache[str, int] = LruCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1
    cache.put("c", 3)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)
    assert len(cache) == 2


def test_repr_hides_secret(settings: Settings) -> None:
    """The store's repr shows the backend and node, never the secret."""
    secret = load_secret(settings)
    with open_pseudonymizer(settings) as s:
        assert secret.hex() not in repr(s) and str(secret) not in repr(s)


def _sync_of(raw: Any, dialect: str) -> str:
    sql = "PRAGMA synchronous" if dialect == "sqlite" else "SHOW synchronous_commit"
    return str(raw.execute(sql).fetchone()[0])


@pytest.mark.parametrize("durable", [False, True])
def test_hot_connection_durability(settings: Settings, durable: bool) -> None:
    """The hot connection commits lazily (unless durable) and goes back to the pool as
    durable as it came (SQLite synchronous=FULL, PostgreSQL synchronous_commit on)."""
    engine = open_engine(settings)
    dialect = engine.dialect.name
    hot = HotConnection(engine, durable=durable)
    try:
        inside = hot.run(lambda conn: _sync_of(conn.connection.dbapi_connection, dialect))
        raw = hot._conn.connection.dbapi_connection  # type: ignore[union-attr]
        hot.close()
        after = _sync_of(raw, dialect)
    finally:
        engine.dispose()
    durable_value = "2" if dialect == "sqlite" else "on"
    assert inside == (durable_value if durable else ("1" if dialect == "sqlite" else "off"))
    assert after == durable_value


def test_hot_connection_recovers_after_invalidation(settings: Settings) -> None:
    """A broken hot connection (database restarted) is replaced on the next call."""
    with open_pseudonymizer(settings) as s:
        s.uid(synthetic_uid(1))
        s.flush()
        s._hot._connection().invalidate()
        s.uid(synthetic_uid(2))
        assert s.flush() == 1
    assert set(_map_rows(settings)) == {synthetic_uid(1), synthetic_uid(2)}


def test_durable_flush_setting(db_url: str, secret_file: Path) -> None:
    """With durable_flush true, flush and patient rows commit the same way and are stored."""
    settings = settings_for(db_url, secret_file, durable_flush=True)
    with open_pseudonymizer(settings) as s:
        new = s.uid(synthetic_uid(1))
        s.patient(*synthetic_patient(1))
        assert s.flush() == 1
    assert _map_rows(settings) == {synthetic_uid(1): new}


def test_overlong_values_refused_without_echo(settings: Settings) -> None:
    """A value too long for the map (malformed input) raises PseudonymUnavailable, naming no
    value, instead of failing the flush later."""
    long_uid = "1.2." + "9" * 300
    with open_pseudonymizer(settings) as s:
        for call in (lambda: s.uid(long_uid), lambda: s.identifier("accession", "A" * 300),
                     lambda: s.patient("M" * 300, "", "")):
            with pytest.raises(PseudonymUnavailable, match="longer than 255") as info:
                call()
            assert "999" not in str(info.value) and "AAA" not in str(info.value)
        assert s.pending == 0
