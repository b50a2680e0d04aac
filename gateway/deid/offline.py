"""The offline command's core: run the pipeline's stages on a file or a folder tree, in parallel.

``anonymize_tree`` reads every file under the input, runs the stages (by default ``filter``,
``deidentify``, ``verify``; the configured pipeline when it includes ``deidentify``, as the
embedded defaults' ``filter``, ``pixels``, ``deidentify``, ``verify`` do) in worker processes
(a pixel stage with no scrubber to serve it runs its detector in each of them), and writes
each output atomically under
``OUT/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm``: names made of pseudonymous
UIDs only, since input folder and file names may identify patients. Quarantined inputs are
counted with their reason (and copied to a quarantine folder when one is given); they never go
to the output folder.
"""

from __future__ import annotations

import hashlib
import multiprocessing.util
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import pydicom
from pydicom.errors import InvalidDicomError

from gateway.config import Settings
from gateway.deid.writer import names_its_instance, write_instance
from gateway.observe.logs import configure_logging
from gateway.pipeline.compose import build_pipeline
from gateway.pipeline.stage import (
    OutcomeKind,
    Stage,
    StageContext,
    StageServices,
    observe_input,
)
from gateway.pseudonyms.interface import Pseudonymizer

PseudonymizerFactory = Callable[[Settings], Pseudonymizer]
DEFAULT_STAGES = ("filter", "deidentify", "verify")
DEFER_SIZE = 16 * 1024 * 1024  # larger values stay on disk until written, then stream


@dataclass
class FileResult:
    """The outcome for one input file; ``reason`` never contains a value of the instance."""

    kind: str  # "done", "filtered", "quarantined", "unreadable"
    reason: str = ""
    output: str = ""


@dataclass
class Summary:
    """Counts for the final report of ``anonymize``."""

    done: int = 0
    filtered: int = 0
    quarantined: int = 0
    unreadable: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return self.done + self.filtered + self.quarantined + self.unreadable

    def add(self, result: FileResult) -> None:
        setattr(self, result.kind, getattr(self, result.kind) + 1)
        if result.kind != "done":
            self.reasons[f"{result.kind}: {result.reason}"] += 1

    def lines(self) -> list[str]:
        out = [
            f"done {self.done}, filtered {self.filtered}, quarantined {self.quarantined}, "
            f"unreadable {self.unreadable} (of {self.total})"
        ]
        out.extend(f"  {n:6d}  {reason}" for reason, n in self.reasons.most_common())
        return out


def stage_names(settings: Settings) -> tuple[str, ...]:
    configured = tuple(settings.pipeline.stages)
    return configured if "deidentify" in configured else DEFAULT_STAGES


def pixel_service(settings: Settings) -> tuple[Settings, str | None]:
    """The settings the offline workers run with. A pixel stage in scrubber mode needs a
    scrubber process, which only ``serve`` (or ``pixels scrubber``) starts: when none answers
    on the configured socket, the detector runs in each worker process instead, and a notice
    says so. Never does an instance pass unscrubbed: this only chooses where the model runs."""
    px = settings.pixels
    if "pixels" not in stage_names(settings) or px.service.mode != "scrubber":
        return settings, None
    from gateway.pixels.service import scrubber_answers

    if scrubber_answers(settings):
        return settings, None
    service = px.service.model_copy(update={"mode": "inprocess"})
    settings = settings.model_copy(update={"pixels": px.model_copy(update={"service": service})})
    return settings, ("pixels: no scrubber answers on its socket; the text detector runs in "
                      "each worker process")


def iter_inputs(root: Path) -> Iterator[Path]:
    """Every regular file under ``root`` (or ``root`` itself), in a stable order."""
    if root.is_file():
        yield root
        return
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            yield Path(dirpath) / name


def output_name(ds: pydicom.Dataset, source: Path) -> Path:
    """``<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm`` of the output."""
    parts = [str(ds.get(k, "") or "") for k in
             ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")]
    if not parts[2]:
        parts[2] = hashlib.sha256(str(source).encode()).hexdigest()[:32]
    return Path(parts[0] or "no-study", parts[1] or "no-series", parts[2] + ".dcm")


def write_atomically(ds: pydicom.Dataset, target: Path) -> None:
    """Write to a temporary file beside ``target``, then rename (DESIGN decision 3)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".part")
    os.close(fd)
    try:
        if names_its_instance(ds):
            write_instance(ds, tmp)  # = save_as(tmp, enforce_file_format=True), faster
        else:
            ds.save_as(tmp, enforce_file_format=False)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Worker:
    """The stages of one process, built once, applied to file after file."""

    def __init__(self, settings: Settings, factory: PseudonymizerFactory, out: Path,
                 quarantine: Path | None, memory_dir: Path | None = None) -> None:
        self.pseudonymizer = factory(settings)
        services = StageServices(settings=settings, pseudonymizer=self.pseudonymizer,
                                 memory_dir=memory_dir)
        self.stages: list[Stage] = build_pipeline(stage_names(settings), services)
        self.out = out
        self.quarantine = quarantine

    def run(self, path: Path) -> FileResult:
        try:
            ds = pydicom.dcmread(path, defer_size=DEFER_SIZE)
        except (InvalidDicomError, OSError, ValueError, EOFError, KeyError, TypeError):
            return FileResult("unreadable", "not a readable DICOM file")
        ctx = StageContext(job_id=hashlib.sha256(str(path).encode()).hexdigest()[:16],
                           source_path=path)
        observed, _stage = observe_input(self.stages, ds, ctx)
        if observed.kind is not OutcomeKind.CONTINUE:
            self._hold(path)
            return FileResult("quarantined", observed.reason)
        for stage in self.stages:
            try:
                outcome = stage(ds, ctx)
            except Exception as err:  # a stage bug must hold one file, not stop the run
                self._hold(path)
                return FileResult("quarantined", f"{stage.name}: failed ({type(err).__name__})")
            if outcome.kind is OutcomeKind.CONTINUE:
                continue
            if outcome.kind is OutcomeKind.FILTER:
                return FileResult("filtered", outcome.reason)
            self._hold(path)
            return FileResult("quarantined", f"{stage.name}: {outcome.reason}")
        target = self.out / output_name(ds, path)
        flush = getattr(self.pseudonymizer, "flush", None)
        if callable(flush):
            try:
                flush()  # the map rows are durable before the output exists (as in serve)
            except Exception as err:
                self._hold(path)
                return FileResult("quarantined", f"pseudonyms: failed ({type(err).__name__})")
        try:
            write_atomically(ds, target)
        except (OSError, ValueError, TypeError, AttributeError, KeyError) as err:
            self._hold(path)
            return FileResult("quarantined", f"write: failed ({type(err).__name__})")
        return FileResult("done", output=str(target))

    def close(self) -> None:
        """Flush and close the pseudonym store when it has such methods (write-behind)."""
        close = getattr(self.pseudonymizer, "close", None)
        if callable(close):
            close()

    def _hold(self, path: Path) -> None:
        if self.quarantine is not None:
            self.quarantine.mkdir(parents=True, exist_ok=True)
            name = hashlib.sha256(str(path).encode()).hexdigest()[:32] + ".dcm"
            shutil.copyfile(path, self.quarantine / name)


_WORKER: Worker | None = None


def _init_worker(settings: Settings, factory: PseudonymizerFactory, out: Path,
                 quarantine: Path | None, memory_dir: Path | None) -> None:
    global _WORKER  # one per worker process, built by the pool's initializer
    # Stage log lines as JSON on stderr, and library warnings (pydicom's quote values and the
    # input's file name, which may name the patient) reduced to their category.
    configure_logging(settings.logging, process="anonymize")
    _WORKER = Worker(settings, factory, out, quarantine, memory_dir)
    # Pool workers end without running atexit hooks; Finalize runs at their exit.
    multiprocessing.util.Finalize(_WORKER, _WORKER.close, exitpriority=10)


def _run_one(path: Path) -> FileResult:
    assert _WORKER is not None
    return _WORKER.run(path)


class Progress:
    """A one-line progress bar on a stream, redrawn at most ten times a second."""

    def __init__(self, total: int, stream: TextIO | None) -> None:
        self.total, self.stream, self.last = total, stream, 0.0

    def update(self, summary: Summary, final: bool = False) -> None:
        if self.stream is None:
            return
        now = time.monotonic()
        if not final and now - self.last < 0.1:
            return
        self.last = now
        n = summary.total
        width = 30
        filled = int(width * n / self.total) if self.total else width
        bar = "#" * filled + "." * (width - filled)
        self.stream.write(f"\r[{bar}] {n}/{self.total} done {summary.done} "
                          f"filtered {summary.filtered} quarantined {summary.quarantined}")
        if final:
            self.stream.write("\n")
        self.stream.flush()


def anonymize_tree(
    source: Path,
    out: Path,
    settings: Settings,
    pseudonymizer_factory: PseudonymizerFactory,
    jobs: int = 1,
    quarantine: Path | None = None,
    progress: TextIO | None = sys.stderr,
) -> Summary:
    """De-identify every file under ``source`` into ``out``; returns the counts."""
    settings, notice = pixel_service(settings)
    if notice is not None and progress is not None:
        progress.write(notice + "\n")
    paths: Sequence[Path] = list(iter_inputs(source))
    summary = Summary()
    bar = Progress(len(paths), progress)
    # What one study or patient taught, shared by the run's processes (mode 0700, removed after:
    # it holds identifying values, never the output folder's business).
    memory_dir = Path(tempfile.mkdtemp(prefix="deid-identity-"))
    try:
        if jobs <= 1:
            worker = Worker(settings, pseudonymizer_factory, out, quarantine, memory_dir)
            try:
                for path in paths:
                    summary.add(worker.run(path))
                    bar.update(summary)
            finally:
                worker.close()
        else:
            init = (settings, pseudonymizer_factory, out, quarantine, memory_dir)
            with ProcessPoolExecutor(max_workers=jobs, initializer=_init_worker,
                                     initargs=init) as pool:
                for result in pool.map(_run_one, paths, chunksize=8):
                    summary.add(result)
                    bar.update(summary)
    finally:
        shutil.rmtree(memory_dir, ignore_errors=True)
    bar.update(summary, final=True)
    return summary
