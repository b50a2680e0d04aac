#!/usr/bin/env python3
"""Benchmark of the de-identification engine (a script, not a test).

On N (default 1,000) uncompressed 512x512 CT instances generated in code, in one process each,
it measures files per second of:

1. the floor: pydicom read + write, nothing else;
2. this engine with the ``research`` profile: read (values above ``DEFER_SIZE`` deferred) +
   de-identify + write with pydicom's ``save_as``;
3. the same, written with ``gateway.deid.writer.write_instance`` (same bytes), as the offline
   ``anonymize`` command writes;
4. dicognito, installed into its own virtual environment (``var/bench-venv``, created on first
   use with ``pip install dicognito``), read + anonymize + write, run in the same session.

Each figure is given in files per second of wall time and of CPU time (user + system of the
process), the latter being steadier on a shared machine. Every input file is read once before
the first measurement, so that no measurement pays for filling the page cache.
It prints the figures and the ratios (targets: engine >= 2x dicognito and >= 0.8x the
floor) and, with ``--write-docs``, records them in ``docs/performance.md`` under the heading
``## De-identification engine``.

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

import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from gateway.deid import Deidentifier, load_compiled  # noqa: E402
from gateway.deid.iod import TableIodTypes  # noqa: E402
from gateway.deid.offline import DEFER_SIZE  # noqa: E402
from gateway.deid.writer import write_instance  # noqa: E402
from gateway.pipeline.stage import StageContext  # noqa: E402
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


def timed(label: str, paths: list[Path], out: Path, work: Callable[[Path, Path], None]) -> Rate:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    for p in paths[:20]:  # warm-up: imports, caches, page cache
        work(p, out / p.name)
    start, cpu = time.perf_counter(), time.process_time()
    for p in paths:
        work(p, out / p.name)
    rate = (len(paths) / (time.perf_counter() - start), len(paths) / (time.process_time() - cpu))
    show(label, rate)
    return rate


def show(label: str, rate: Rate) -> None:
    print(f"{label:<44} {rate[0]:8.1f} files/s  ({rate[1]:6.1f} per CPU-second)", flush=True)


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


DICOGNITO = textwrap.dedent(
    """
    import sys, time, pathlib, pydicom
    from dicognito.anonymizer import Anonymizer
    paths = sorted(pathlib.Path(sys.argv[1]).glob("*.dcm"))
    out = pathlib.Path(sys.argv[2]); out.mkdir(parents=True, exist_ok=True)
    anonymizer = Anonymizer(seed="bench")
    def work(p):
        ds = pydicom.dcmread(p)
        anonymizer.anonymize(ds)
        ds.save_as(out / p.name)
    for p in paths[:20]:
        work(p)
    start, cpu = time.perf_counter(), time.process_time()
    for p in paths:
        work(p)
    print(len(paths) / (time.perf_counter() - start), len(paths) / (time.process_time() - cpu))
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


def run_dicognito(folder: Path, out: Path) -> tuple[Rate, str]:
    python = ensure_dicognito()
    version = subprocess.run([str(python), "-c", "import dicognito; print(dicognito.__version__)"],
                             capture_output=True, text=True).stdout.strip()
    shutil.rmtree(out, ignore_errors=True)
    res = subprocess.run([str(python), "-c", DICOGNITO, str(folder), str(out)],
                         capture_output=True, text=True, check=True)
    wall, cpu = (float(x) for x in res.stdout.strip().splitlines()[-1].split())
    show("dicognito " + version, (wall, cpu))
    return (wall, cpu), version


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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=1000)
    ap.add_argument("--write-docs", action="store_true")
    ap.add_argument("--profile-engine", action="store_true", help="cProfile the engine run")
    ap.add_argument("--work", type=Path, default=REPO / "var" / "bench-deid")
    args = ap.parse_args()
    paths = generate(args.work / "in", args.n)
    warm_page_cache(paths)
    print(f"{len(paths)} CT instances 512x512, {paths[0].stat().st_size // 1024} KiB each; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    rate_floor = timed("pydicom read+write (floor)", paths, args.work / "floor", floor)
    work = make_engine_work()
    if args.profile_engine:
        prof = cProfile.Profile()
        prof.enable()
    rate_engine = timed("deid-gateway research, save_as", paths, args.work / "engine", work)
    if args.profile_engine:
        prof.disable()
        pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
    rate_writer = timed("deid-gateway research, write_instance", paths, args.work / "writer",
                        make_engine_work(writer=True))
    rate_dicognito, version = run_dicognito(args.work / "in", args.work / "dicognito")
    for label, rate in (("save_as", rate_engine), ("write_instance", rate_writer)):
        for i, kind in enumerate(("wall", "CPU")):
            print(f"engine ({label}, {kind}) / dicognito = {rate[i] / rate_dicognito[i]:.2f} "
                  f"(target >= 2.0), / floor = {rate[i] / rate_floor[i]:.2f} (target >= 0.8)")
    if args.write_docs:
        write_docs(section(len(paths), rate_floor, rate_engine, rate_writer, rate_dicognito,
                           version))
    for name in ("floor", "engine", "writer", "dicognito"):
        shutil.rmtree(args.work / name, ignore_errors=True)
    return 0


def section(n: int, floor_rate: Rate, engine: Rate, writer: Rate, dicognito: Rate,
            version: str) -> str:
    """The ``## De-identification engine`` section of ``docs/performance.md`` for one run."""

    def row(what: str, rate: Rate) -> str:
        ratios = " | ".join(
            f"{rate[i] / floor_rate[i]:.2f} | {rate[i] / dicognito[i]:.2f}" for i in (0, 1)
        )
        return f"| {what} | {rate[0]:.1f} | {rate[1]:.1f} | {ratios} |"

    return "\n".join([
        HEADING,
        "",
        f"One run of `tests/bench/bench_deid.py` on {n} uncompressed 512x512 CT instances, on "
        f"{platform.machine()} with {os.cpu_count()} CPUs (load average "
        f"{os.getloadavg()[0]:.1f}), Python {platform.python_version()}, pydicom "
        f"{pydicom.__version__}, dicognito {version}. Rates in files/s of wall time and per "
        "CPU-second; ratios to the floor and to dicognito, wall then CPU.",
        "",
        "| what | files/s | per CPU-s | / floor | / dicognito | / floor (CPU) | "
        "/ dicognito (CPU) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        row("pydicom read + write (the floor)", floor_rate),
        row("engine, `research`, `save_as`", engine),
        row("engine, `research`, `write_instance`", writer),
        row(f"dicognito {version}", dicognito),
        "",
    ])


if __name__ == "__main__":
    sys.exit(main())
