"""Benchmark: cost of the pseudonym store per instance, as a share of per-instance engine time.

Run: ``.venv/bin/python tests/bench/bench_pseudonyms.py [--instances N] [--pg URL|--no-pg]``

Per instance the store answers what a CT instance needs: 12 UID look-ups (2 well-known:
SOP Class and Transfer Syntax; Study, Series, Frame of Reference and Dimension Organization
shared by the series; SOP Instance and Media Storage SOP Instance; Irradiation Event; three
references to earlier instances), one patient and one Accession Number, then ``flush()`` as
the worker does before marking the job ready. Scenarios:

- warm: every value already in the in-process cache (nothing to write);
- steady: a series streaming in: series-level values cached, 2 new UIDs per instance written
  by the per-instance flush (what a running gateway does most of the time); and the same with
  one flush per 8 instances (a worker that claims jobs in batches of 8, the default);
- cold (restart): a new store (empty cache, its connection opened) for every instance, over a
  database that already holds every row: all derived again, patient read back, rows
  re-inserted (ignored) and checked: the worst case, paid once per value after a restart;
- cold (new): an empty cache and values the database has never seen: patient row inserted,
  every map row inserted.

The baseline, measured in the same run: pydicom read + write of a 512x512 16-bit CT from and
to memory, as the stand-in for the de-identification engine (not in this branch); the real
engine does more per instance, so the shares printed here are upper bounds.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian
from sqlalchemy import create_engine, text

from gateway.config import Settings, parse_settings
from gateway.pseudonyms.factory import open_pseudonymizer
from gateway.pseudonyms.secret import init_secret_file
from gateway.pseudonyms.store import PseudonymStore

ROOT = "1.2.826.0.1.3680043.10.999"  # a private test root: never a real instance
PG_BASE = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


# -- the engine stand-in -----------------------------------------------------------------------

def synthetic_ct(n: int) -> bytes:
    """A 512x512 CT instance with a made-up patient, encoded as a DICOM file."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = f"{ROOT}.3.{n}"
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = f"{ROOT}.3.{n}"
    ds.StudyInstanceUID = f"{ROOT}.1"
    ds.SeriesInstanceUID = f"{ROOT}.2"
    ds.FrameOfReferenceUID = f"{ROOT}.4"
    ds.PatientName = "TESTPATIENT^BENCH"
    ds.PatientID = "MRN0000001"
    ds.AccessionNumber = "ACC0000001"
    ds.StudyDate = "20200101"
    ds.Modality = "CT"
    ds.Rows = ds.Columns = 512
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.PixelRepresentation = 0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = np.random.default_rng(n).integers(0, 4096, (512, 512), np.uint16).tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def engine_stand_in(data: bytes) -> None:
    ds = dcmread(io.BytesIO(data))
    ds.PatientName = "ANON^X"
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)


# -- the mapping work of one instance -------------------------------------------------------

@dataclass(frozen=True)
class Instance:
    uids: tuple[str, ...]
    patient: tuple[str, str, str]
    accession: str


def instance(study: int, n: int) -> Instance:
    """The values one CT instance asks the store for (n: position in its series)."""
    s = f"{ROOT}.{study}"
    series = (f"{s}.1", f"{s}.2", f"{s}.4", f"{s}.5")  # study, series, FoR, dim. org.
    own = (f"{s}.3.{n}", f"{s}.3.{n}", f"{s}.6.{n}")  # SOP, media storage SOP, irradiation
    refs = tuple(f"{s}.3.{max(n - k, 0)}" for k in (1, 2, 3))
    well_known = (CTImageStorage, ExplicitVRLittleEndian)
    return Instance(
        uids=well_known + series + own + refs,
        patient=(f"MRN{study:07d}", "BENCH_HOSPITAL", "TESTPATIENT^BENCH"),
        accession=f"ACC{study:07d}",
    )


def map_instance(store: PseudonymStore, inst: Instance, flush: bool = True) -> None:
    for u in inst.uids:
        store.uid(u)
    store.patient(*inst.patient)
    store.identifier("accession", inst.accession)
    if flush:
        store.flush()


def map_batch(store: PseudonymStore, batch: list[Instance]) -> None:
    """A worker that claims ``len(batch)`` jobs and flushes once before marking them ready."""
    for inst in batch:
        map_instance(store, inst, flush=False)
    store.flush()


def timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@dataclass(frozen=True)
class Figure:
    median_us: float
    mean_us: float


def summarise(samples: list[float]) -> Figure:
    return Figure(statistics.median(samples) * 1e6, statistics.fmean(samples) * 1e6)


# -- scenarios ---------------------------------------------------------------------------------

def scenarios(settings: Settings, n: int) -> dict[str, Figure]:
    """The four scenarios on the database of ``settings``; returns per-instance figures."""
    out: dict[str, Figure] = {}
    with open_pseudonymizer(settings) as store:
        steady = [instance(1, i) for i in range(n)]
        out["steady (2 new UIDs/instance)"] = summarise(
            [timed(lambda i=i: map_instance(store, i)) for i in steady])
        out["warm (all cached)"] = summarise(
            [timed(lambda i=i: map_instance(store, i)) for i in steady])
        batched = [instance(2, i) for i in range(n)]
        batches = [batched[k : k + 8] for k in range(0, n, 8)]
        per_batch = [timed(lambda b=b: map_batch(store, b)) / len(b) for b in batches]
        out["steady, one flush per 8 instances"] = summarise(per_batch)
        cold = []
        for inst in steady:
            fresh = PseudonymStore(store.engine, store._secret, settings.pseudonyms,
                                   settings.node_id)
            cold.append(timed(lambda f=fresh, i=inst: map_instance(f, i)))
            fresh.close()
        out["cold (restart: rows in DB)"] = summarise(cold)
        new = [instance(1000 + i, 0) for i in range(n)]
        out["cold (new patient and UIDs)"] = summarise(
            [timed(lambda i=i: map_instance(store, i)) for i in new])
    return out


# -- databases ---------------------------------------------------------------------------------

@contextmanager
def sqlite_url(tmp: Path) -> Iterator[str]:
    yield f"sqlite:///{tmp / 'bench.db'}"


@contextmanager
def pg_url(base: str) -> Iterator[str]:
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    schema = f"bench_pseudo_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{base}?options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def report(name: str, figures: dict[str, Figure], engine_us: float) -> None:
    print(f"\n{name}")
    print("| scenario | median µs/instance | mean µs/instance | share of engine (median) |")
    print("|---|---:|---:|---:|")
    for label, f in figures.items():
        print(f"| {label} | {f.median_us:.0f} | {f.mean_us:.0f} | "
              f"{100 * f.median_us / engine_us:.1f} % |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=300)
    parser.add_argument("--pg", default=PG_BASE, help="PostgreSQL URL (a schema is made)")
    parser.add_argument("--no-pg", action="store_true")
    args = parser.parse_args(argv)

    data = synthetic_ct(0)
    engine_stand_in(data)  # warm up imports and caches
    engine = summarise([timed(lambda: engine_stand_in(data)) for _ in range(args.instances)])
    print(f"engine stand-in (pydicom read+write of a 512x512 CT, {len(data)} bytes): "
          f"median {engine.median_us:.0f} µs, mean {engine.mean_us:.0f} µs per instance")
    backends = [("SQLite (WAL, synchronous=FULL)", sqlite_url)]
    if not args.no_pg:
        backends.append(("PostgreSQL 127.0.0.1", lambda _tmp: pg_url(args.pg)))
    for name, make_url in backends:
        with tempfile.TemporaryDirectory() as tmp:
            key = Path(tmp) / "bench.key"
            init_secret_file(key)
            with make_url(Path(tmp)) as url:
                settings = parse_settings({"database": {"url": url}, "node_id": "bench",
                                           "pseudonyms": {"secret_file": str(key)}})
                report(name, scenarios(settings, args.instances), engine.median_us)
    return 0


if __name__ == "__main__":
    sys.exit(main())
