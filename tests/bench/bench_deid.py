#!/usr/bin/env python3
"""Benchmark of the de-identification engine (a script, not a test).

On N (default 1,000) uncompressed 512x512 CT instances generated in code, in one process each,
it measures files per second of:

1. the floor: pydicom read + write, nothing else;
2. this engine with the ``research`` profile: read (values above ``DEFER_SIZE`` deferred) +
   de-identify + write with pydicom's ``save_as``;
3. the same, written with ``gateway.deid.writer.write_instance`` (same bytes), as the offline
   ``anonymize`` command writes;
4. the ``deidentify`` and ``verify`` stages as a worker runs them, written with
   ``write_instance``: the identity model's whole cost (verify reads the input's identity with
   its own rules, the de-identifier learns what the instance teaches and cleans every kept
   text value of it, verify searches the output), the figure the targets are about;
5. dicognito, installed into its own virtual environment (``var/bench-venv``, created on first
   use with ``pip install dicognito``), read + anonymize + write, run in the same session.

The five take turns on ten files at a time, in an order that rotates from turn to turn, so
that each sees the same load on a shared machine and none always comes first; each figure is
given in files per second of wall time and of CPU time (user + system of its process), the
latter being steadier on a shared machine. Every input file is read once before the first
measurement, so that none pays for filling the page cache, and warm-up outputs go to files that
the measured loop does not overwrite.
It prints the figures and the ratios (targets: deidentify + verify >= 2x dicognito per
CPU-second and >= 0.8x the floor) and, with ``--write-docs``, records them in
``docs/performance.md`` under the heading ``## De-identification engine``.

Usage: ``python tests/bench/bench_deid.py [-n 1000] [--write-docs] [--profile-engine]``
"""

from __future__ import annotations

import argparse
import cProfile
import os
import platform
import pstats
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from gateway.config import Settings  # noqa: E402
from gateway.deid import Deidentifier, load_compiled  # noqa: E402
from gateway.deid.iod import TableIodTypes  # noqa: E402
from gateway.deid.offline import DEFER_SIZE  # noqa: E402
from gateway.deid.writer import write_instance  # noqa: E402
from gateway.pipeline.compose import build_pipeline  # noqa: E402
from gateway.pipeline.stage import OutcomeKind, StageContext, StageServices  # noqa: E402
from gateway.pipeline.worker import run_stages  # noqa: E402
from gateway.pseudonyms.interface import InMemoryPseudonymizer  # noqa: E402

VENV = REPO / "var" / "bench-venv"
DOCS = REPO / "docs" / "performance.md"
HEADING = "## De-identification engine"
ROOT = "1.2.826.0.1.3680043.10.998"
PIXELS = np.random.default_rng(0).integers(0, 4095, (512, 512), dtype=np.uint16).tobytes()


def make_ct(i: int) -> FileDataset:
    """One synthetic 512x512 CT instance of a typical header (about 110 attributes)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = f"{ROOT}.3.{i}"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("", pydicom.Dataset(), file_meta=meta, preamble=b"\0" * 128)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = "20210423"
    ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = "093000"
    ds.AccessionNumber = f"ACC{i // 100:06d}"
    ds.Modality = "CT"
    ds.Manufacturer = "Synthetic Devices"
    ds.InstitutionName = "Saint Hildegard Infirmary"
    ds.InstitutionAddress = "17 Fernleaf Crescent, Wolverhampton"
    ds.ReferringPhysicianName = "Okonkwo^Adaeze"
    ds.StationName = "CTSTATION1"
    ds.StudyDescription = "CT chest with contrast"
    ds.SeriesDescription = "Axial 5 mm"
    ds.OperatorsName = "Thistlewood^Ann"
    ds.ManufacturerModelName = "Model X"
    ds.PatientName = f"Zebulon^Quixote{i // 100}"
    ds.PatientID = f"MRN{i // 100:08d}"
    ds.PatientBirthDate = "19610423"
    ds.PatientSex = "M"
    ds.PatientAge = "059Y"
    ds.PatientWeight = 80
    ds.SliceThickness = 5
    ds.KVP = 120
    ds.DeviceSerialNumber = "SN-1"
    ds.SoftwareVersions = "1.0"
    ds.ProtocolName = "Chest"
    ds.ConvolutionKernel = "STANDARD"
    ds.PatientPosition = "FFS"
    ds.StudyInstanceUID = f"{ROOT}.1.{i // 100}"
    ds.SeriesInstanceUID = f"{ROOT}.2.{i // 50}"
    ds.StudyID = "S1"
    ds.SeriesNumber = 1
    ds.AcquisitionNumber = 1
    ds.InstanceNumber = i
    ds.ImagePositionPatient = [0, 0, i * 5]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.FrameOfReferenceUID = f"{ROOT}.4.{i // 100}"
    ds.PositionReferenceIndicator = ""
    ds.SliceLocation = i * 5
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = 512
    ds.PixelSpacing = [0.7, 0.7]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.WindowCenter, ds.WindowWidth = 40, 400
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    block = ds.private_block(0x0019, "GEMS_ACQU_01", create=True)
    block.add_new(0x23, "DS", "5.0")
    block.add_new(0x99, "LO", "vendor text")
    ds.PixelData = PIXELS
    return ds


def generate(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        p = folder / f"{i:05d}.dcm"
        if not p.exists():
            make_ct(i).save_as(p, enforce_file_format=True)
        paths.append(p)
    return paths


Rate = tuple[float, float]  # files per second of wall time, of CPU time
Seconds = tuple[float, float]  # wall time, CPU time
CHUNK = 10  # files per turn


class Variant(Protocol):
    name: str

    def run(self, paths: list[Path], out: Path) -> Seconds:
        """Process ``paths`` into ``out``; the wall and CPU seconds it took."""
        ...


class InProcess:
    """One read-process-write function of this process."""

    def __init__(self, name: str, work: Callable[[Path, Path], None]) -> None:
        self.name, self.work = name, work

    def run(self, paths: list[Path], out: Path) -> Seconds:
        start, cpu = time.perf_counter(), time.process_time()
        for p in paths:
            self.work(p, out / p.name)
        return time.perf_counter() - start, time.process_time() - cpu


class Dicognito:
    """dicognito in its own environment, one process fed file lists on its standard input (its
    imports and warm-up are not timed; its CPU time is its own process's)."""

    name = "dicognito"

    def __init__(self) -> None:
        self.proc = subprocess.Popen([str(ensure_dicognito()), "-c", DICOGNITO],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def run(self, paths: list[Path], out: Path) -> Seconds:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(" ".join([str(out), *(str(p) for p in paths)]) + "\n")
        self.proc.stdin.flush()
        wall, cpu = (float(x) for x in self.proc.stdout.readline().split())
        return wall, cpu

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


def measure(paths: list[Path], work_dir: Path, variants: list[Variant]) -> dict[str, Rate]:
    """The variants take turns on chunks of ``CHUNK`` files, in an order that rotates from turn
    to turn, so that every variant sees the same load on a shared machine and none always comes
    first (whatever runs first after a pause runs slower). Each first processes 20 files into
    a warm-up folder. Rates are files over the total time of each variant."""
    total: dict[str, list[float]] = {}
    for v in variants:
        (work_dir / v.name / "warm-up").mkdir(parents=True, exist_ok=True)
        v.run(paths[:20], work_dir / v.name / "warm-up")
        total[v.name] = [0.0, 0.0]
    for turn, start in enumerate(range(0, len(paths), CHUNK)):
        k = turn % len(variants)
        for v in variants[k:] + variants[:k]:
            wall, cpu = v.run(paths[start:start + CHUNK], work_dir / v.name)
            total[v.name][0] += wall
            total[v.name][1] += cpu
    shutil.rmtree(work_dir, ignore_errors=True)
    return {name: (len(paths) / t[0], len(paths) / t[1]) for name, t in total.items()}


def floor(src: Path, dst: Path) -> None:
    pydicom.dcmread(src).save_as(dst, enforce_file_format=True)


def make_engine_work(writer: bool = False) -> Callable[[Path, Path], None]:
    engine = Deidentifier(load_compiled("research"), InMemoryPseudonymizer(b"bench"),
                          TableIodTypes.load())

    def work(src: Path, dst: Path) -> None:
        ds = pydicom.dcmread(src, defer_size=DEFER_SIZE)
        engine.apply(ds, StageContext(job_id="bench"))
        if writer:
            write_instance(ds, dst)
        else:
            ds.save_as(dst, enforce_file_format=True)

    return work


def make_pipeline_work() -> Callable[[Path, Path], None]:
    """The ``deidentify`` and ``verify`` stages as a worker runs them (each stage's
    ``observe_input`` first: verify reads the input's identity with its own rules, the
    de-identifier learns what the instance teaches), written with ``write_instance``: the
    identity model's whole cost, cleaning and verification."""
    settings = Settings.model_validate({"deid": {"profile": "research"}})
    services = StageServices(settings=settings, pseudonymizer=InMemoryPseudonymizer(b"bench"))
    stages = build_pipeline(("deidentify", "verify"), services)

    def work(src: Path, dst: Path) -> None:
        ds = pydicom.dcmread(src, defer_size=DEFER_SIZE)
        result = run_stages(stages, ds, StageContext(job_id="bench"))
        if result.outcome.kind is not OutcomeKind.CONTINUE:
            raise SystemExit(f"bench input held: {result.outcome.reason}")
        write_instance(ds, dst)

    return work


DICOGNITO = textwrap.dedent(
    """
    import sys, time, pathlib, pydicom
    from dicognito.anonymizer import Anonymizer
    anonymizer = Anonymizer(seed="bench")
    for line in sys.stdin:
        out, *paths = line.split()
        start, cpu = time.perf_counter(), time.process_time()
        for p in paths:
            ds = pydicom.dcmread(p)
            anonymizer.anonymize(ds)
            ds.save_as(pathlib.Path(out) / pathlib.Path(p).name)
        print(time.perf_counter() - start, time.process_time() - cpu, flush=True)
    """
)


def ensure_dicognito() -> Path:
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    probe = subprocess.run([str(python), "-c", "import dicognito"], capture_output=True)
    if probe.returncode != 0:
        subprocess.run([str(python), "-m", "pip", "install", "-q", "dicognito"], check=True)
    return python


def dicognito_version() -> str:
    python = ensure_dicognito()
    return subprocess.run([str(python), "-c", "import dicognito; print(dicognito.__version__)"],
                          capture_output=True, text=True).stdout.strip()


def write_docs(section: str) -> None:
    DOCS.parent.mkdir(exist_ok=True)
    text = DOCS.read_text(encoding="utf-8") if DOCS.exists() else "# Performance\n"
    if HEADING in text:
        head, _, rest = text.partition(HEADING)
        nxt = rest.find("\n## ")
        text = head + section + (rest[nxt:] if nxt >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    DOCS.write_text(text.rstrip("\n") + "\n", encoding="utf-8")


def warm_page_cache(paths: list[Path]) -> None:
    """Read every input once, so that whichever measurement comes first does not pay for it."""
    for p in paths:
        p.read_bytes()


LABELS = {
    "floor": "pydicom read + write (the floor)",
    "engine": "engine, `research`, `save_as`",
    "writer": "engine, `research`, `write_instance`",
    "pipeline": "deidentify + verify, `write_instance`",
    "dicognito": "dicognito",
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=1000)
    ap.add_argument("--write-docs", action="store_true")
    ap.add_argument("--profile-engine", action="store_true", help="cProfile the engine runs")
    ap.add_argument("--work", type=Path, default=REPO / "var" / "bench-deid")
    args = ap.parse_args()
    paths = generate(args.work / "in", args.n)
    warm_page_cache(paths)
    version = dicognito_version()
    load = os.getloadavg()[0]
    print(f"{len(paths)} CT instances 512x512, {paths[0].stat().st_size // 1024} KiB each, "
          f"turns of {CHUNK}; load average {load:.1f} on {os.cpu_count()} CPUs", flush=True)
    engine_work = make_engine_work()
    prof = cProfile.Profile() if args.profile_engine else None
    if prof is not None:
        engine_work = _profiled(engine_work, prof)
    dicognito = Dicognito()
    variants: list[Variant] = [
        InProcess("floor", floor),
        InProcess("engine", engine_work),
        InProcess("writer", make_engine_work(writer=True)),
        InProcess("pipeline", make_pipeline_work()),
        dicognito,
    ]
    try:
        rates = measure(paths, args.work / "out", variants)
    finally:
        dicognito.close()
    if prof is not None:
        pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
    for name, rate in rates.items():
        label = LABELS[name] + (f" {version}" if name == "dicognito" else "")
        print(f"{label:<44} {rate[0]:8.1f} files/s  ({rate[1]:6.1f} per CPU-second)  / floor "
              f"{ratio(rates, name, 'floor')}  / dicognito {ratio(rates, name, 'dicognito')}")
    print("targets (deidentify + verify): / dicognito >= 2.0 per CPU-second, / floor >= 0.8")
    if args.write_docs:
        write_docs(section(len(paths), load, rates, version))
    return 0


def ratio(rates: dict[str, Rate], name: str, base: str) -> str:
    """``wall (CPU)`` ratios of ``name``'s rates to ``base``'s."""
    return (f"{rates[name][0] / rates[base][0]:.2f} "
            f"(CPU {rates[name][1] / rates[base][1]:.2f})")


def _profiled(work: Callable[[Path, Path], None], prof: cProfile.Profile
              ) -> Callable[[Path, Path], None]:
    def profiled(src: Path, dst: Path) -> None:
        prof.enable()
        try:
            work(src, dst)
        finally:
            prof.disable()

    return profiled


def section(n: int, load: float, rates: dict[str, Rate], version: str) -> str:
    """The ``## De-identification engine`` section of ``docs/performance.md`` for one run."""
    rows = []
    for name, rate in rates.items():
        label = LABELS[name] + (f" {version}" if name == "dicognito" else "")
        cells = [f"{rate[i] / rates[b][i]:.2f}" for b in ("floor", "dicognito") for i in (0, 1)]
        rows.append(f"| {label} | {rate[0]:.1f} | {rate[1]:.1f} | " + " | ".join(cells) + " |")
    return "\n".join([
        HEADING,
        "",
        f"One run of `tests/bench/bench_deid.py` on {n} uncompressed 512x512 CT instances (the "
        f"variants taking turns on {CHUNK} files at a time), on {platform.machine()} with "
        f"{os.cpu_count()} CPUs (load average {load:.1f}), Python {platform.python_version()}, "
        f"pydicom {pydicom.__version__}. Files/s of wall time and per CPU-second.",
        "",
        "| what | files/s | per CPU-s | / floor | / floor (CPU) | / dicognito | "
        "/ dicognito (CPU) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        *rows,
        "",
    ])


if __name__ == "__main__":
    sys.exit(main())
