"""Several gateway processes (spawned, each its own node id) map overlapping UIDs, accession
numbers and patients into one fresh database at once, on SQLite and on PostgreSQL: they agree
with each other and with the derivation, and the tables hold no duplicate."""

from __future__ import annotations

import multiprocessing
import random
from pathlib import Path
from typing import Any

from pseudonym_support import map_worker, settings_for, synthetic_patient
from sqlalchemy import create_engine, func, select

from gateway.pseudonyms import derive
from gateway.pseudonyms.secret import load_secret
from gateway.pseudonyms.store import MAP, PATIENTS

PROCESSES = 4
UIDS = 1200
PATIENTS_N = 60


def _run_processes(db_url: str, secret_file: Path) -> list[tuple[Any, ...]]:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    results = ctx.Queue()
    rng = random.Random(4)
    procs = []
    for i in range(PROCESSES):
        uid_numbers = rng.sample(range(UIDS), int(UIDS * 0.6))
        patient_numbers = rng.sample(range(PATIENTS_N), int(PATIENTS_N * 0.7))
        args = (db_url, str(secret_file), f"node-{i}", uid_numbers, patient_numbers, i,
                barrier, results)
        procs.append(ctx.Process(target=map_worker, args=args))
    for p in procs:
        p.start()
    out = [results.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    errors = [o for o in out if o[1] == "error"]
    assert not errors
    assert [p.exitcode for p in procs] == [0] * PROCESSES
    return out


def _agree(per_process: list[dict[Any, Any]]) -> dict[Any, Any]:
    merged: dict[Any, Any] = {}
    for mapping in per_process:
        for original, new in mapping.items():
            assert merged.setdefault(original, new) == new
    return merged


def _duplicates(conn: Any, *cols: Any) -> int:
    query = select(*cols, func.count()).group_by(*cols).having(func.count() > 1)
    return len(conn.execute(query).all())


def test_processes_agree_and_no_duplicates(db_url: str, secret_file: Path) -> None:
    """Concurrent processes on one new database: identical answers, one row per original,
    one patient row per patient, every row from one of the nodes."""
    out = _run_processes(db_url, secret_file)
    secret = load_secret(settings_for(db_url, secret_file))
    uids = _agree([o[1] for o in out])
    accessions = _agree([o[2] for o in out])
    people = _agree([o[3] for o in out])
    assert uids == {u: derive.uid_for(secret, u) for u in uids}
    assert len(uids) > UIDS * 0.9 and len(people) > PATIENTS_N * 0.9
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            stored = dict(conn.execute(select(MAP.c.original, MAP.c.pseudonym)
                                       .where(MAP.c.kind == "uid")).all())
            stored_acc = dict(conn.execute(select(MAP.c.original, MAP.c.pseudonym)
                                           .where(MAP.c.kind == "accession")).all())
            patients = {r.original_id: (r.pseudonym_id, r.pseudonym_name, r.date_offset_days)
                        for r in conn.execute(select(PATIENTS))}
            nodes = set(conn.execute(select(MAP.c.node_id).distinct()).scalars())
            assert _duplicates(conn, MAP.c.kind, MAP.c.original) == 0
            assert _duplicates(conn, PATIENTS.c.patient_key) == 0
    finally:
        engine.dispose()
    assert stored == uids
    assert stored_acc == accessions
    assert patients == {synthetic_patient(n)[0]: v for n, v in people.items()}
    assert nodes <= {f"node-{i}" for i in range(PROCESSES)}
