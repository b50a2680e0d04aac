"""Helpers shared by the pseudonym tests and the processes they spawn (importable by name)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from gateway.config import Settings, parse_settings

PG_BASE = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@contextmanager
def pg_schema_url() -> Iterator[str]:
    """A URL whose search_path is a new schema, dropped with everything in it afterwards."""
    admin = create_engine(PG_BASE, isolation_level="AUTOCOMMIT")
    schema = f"t_pseudo_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as err:  # no server: the PostgreSQL variants cannot run here
        admin.dispose()
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 unavailable ({type(err).__name__})")
    try:
        yield f"{PG_BASE}?options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def settings_for(
    db_url: str, secret_file: Path, node_id: str = "node-a", **pseudonyms: Any
) -> Settings:
    """Settings of one gateway node on ``db_url`` with the given secret file."""
    section = {"secret_file": str(secret_file), **pseudonyms}
    return parse_settings(
        {"node_id": node_id, "database": {"url": db_url}, "pseudonyms": section}
    )


def synthetic_uid(n: int, root: str = "1.2.826.0.1.3680043.10.999") -> str:
    """A UID under a private test root (never a real instance)."""
    return f"{root}.{n}"


def synthetic_patient(n: int) -> tuple[str, str, str]:
    """(Patient ID, Issuer, Patient Name) of a made-up patient."""
    return (f"MRN{n:07d}", "TEST_HOSPITAL" if n % 3 else "", f"TESTPATIENT^NUMBER{n}")


def map_worker(
    db_url: str,
    secret_file: str,
    node_id: str,
    uid_numbers: list[int],
    patient_numbers: list[int],
    seed: int,
    barrier: Any,
    results: Any,
) -> None:
    """Body of one spawned gateway process; puts its mappings, or its error, on ``results``."""
    try:
        results.put(_map_all(db_url, secret_file, node_id, uid_numbers, patient_numbers, seed,
                             barrier))
    except BaseException as err:
        results.put((node_id, "error", f"{type(err).__name__}: {err}"))
        barrier.abort()
        raise


def _map_all(
    db_url: str,
    secret_file: str,
    node_id: str,
    uid_numbers: list[int],
    patient_numbers: list[int],
    seed: int,
    barrier: Any,
) -> tuple[Any, ...]:
    """Open the store (migrating a fresh database at the same time as the others), wait for
    all, then map in this process's own order with frequent flushes."""
    import random

    from gateway.pseudonyms.factory import open_pseudonymizer

    store = open_pseudonymizer(settings_for(db_url, Path(secret_file), node_id=node_id))
    rng = random.Random(seed)
    uid_order = rng.sample(uid_numbers, len(uid_numbers))
    patients = rng.sample(patient_numbers, len(patient_numbers))
    uids: dict[str, str] = {}
    accessions: dict[str, str] = {}
    people: dict[int, tuple[str, str, int]] = {}
    barrier.wait(timeout=120)
    for i, n in enumerate(uid_order):
        uids[synthetic_uid(n)] = store.uid(synthetic_uid(n))
        accessions[f"ACC{n}"] = store.identifier("accession", f"ACC{n}")
        if patients and i % 5 == 0:
            n_patient = patients.pop()
            p = store.patient(*synthetic_patient(n_patient))
            people[n_patient] = (p.patient_id, p.patient_name, p.date_offset_days)
        if i % 25 == 24:
            store.flush()
    for n in patients:
        p = store.patient(*synthetic_patient(n))
        people[n] = (p.patient_id, p.patient_name, p.date_offset_days)
    store.close()
    return (node_id, uids, accessions, people)
