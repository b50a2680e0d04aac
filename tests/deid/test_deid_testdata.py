"""Real-world files: pydicom's bundled test data de-identifies, and dciodvfy finds no new error.

"New" means: an error dciodvfy reports on the output that it did not report on the input, other
than a missing attribute that the input did not have either (dciodvfy stops checking modules of
an input whose values are invalid, and reports those attributes only once the values are fixed).
Inputs that dciodvfy cannot read at all (truncated files) are de-identified but not compared.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import warnings
from collections import Counter
from pathlib import Path

import pydicom
import pytest
from pydicom import Dataset
from pydicom.data import get_testdata_files

from gateway.deid import Deidentifier, load_compiled
from gateway.deid.iod import TableIodTypes
from gateway.pipeline.stage import StageContext
from gateway.pseudonyms.interface import InMemoryPseudonymizer

_MISSING = re.compile(r"Missing attribute .* Element=<(\w+)>")
_VALUE = re.compile(r"<[^>]*[0-9][^>]*>|ReferencedSOPInstanceUID \S+")


def _readable() -> list[tuple[str, Dataset]]:
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in get_testdata_files():
            try:
                out.append((path, pydicom.dcmread(path)))
            except Exception:  # not DICOM (README, JSON, ICC profiles, folders...)
                continue
    return out


FILES = _readable()
IDS = [Path(p).name for p, _ in FILES]


def _engine(profile: str) -> Deidentifier:
    return Deidentifier(load_compiled(profile), InMemoryPseudonymizer(), TableIodTypes.load())


def _write(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    complete = bool(ds.file_meta.get("MediaStorageSOPInstanceUID"))
    ds.save_as(buf, enforce_file_format=complete)
    return buf.getvalue()


def test_enough_files_found() -> None:
    """The bundled test data holds well over a hundred DICOM files."""
    assert len(FILES) > 100


@pytest.mark.parametrize("profile", ["basic", "research", "internal"])
def test_every_bundled_file_deidentifies(profile: str) -> None:
    """Every readable file of pydicom's test data de-identifies and writes without error."""
    engine = _engine(profile)
    failures = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path, _ in FILES:
            ds = pydicom.dcmread(path)
            try:
                engine.apply(ds, StageContext(job_id="t"))
                _write(ds)
            except Exception as err:
                failures.append(f"{Path(path).name}: {type(err).__name__}")
    assert not failures


def _errors(path: Path) -> tuple[Counter[str], bool]:
    run = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=120)
    lines = [ln for ln in (run.stdout + run.stderr).splitlines() if ln.startswith("Error")]
    unreadable = any("read failed" in ln for ln in lines)
    return Counter(_VALUE.sub("<v>", ln) for ln in lines), unreadable


def _new_errors(src: str, original: Dataset, out: Path) -> list[str]:
    before, unreadable = _errors(Path(src))
    if unreadable:
        return []
    after, _ = _errors(out)
    present = {e.keyword for e in original.iterall()}
    new = []
    for line in after - before:
        m = _MISSING.search(line)
        if m and m.group(1) not in present:
            continue
        new.append(line)
    return new


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dicom3tools (dciodvfy) missing")
@pytest.mark.parametrize("profile", ["basic", "research"])
def test_dciodvfy_finds_no_new_error(profile: str, tmp_path: Path) -> None:
    """On every bundled composite instance, the output has no dciodvfy error the input lacked."""
    engine = _engine(profile)
    report = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path, original in FILES:
            if "SOPClassUID" not in original:
                continue
            ds = pydicom.dcmread(path)
            engine.apply(ds, StageContext(job_id="t"))
            out = tmp_path / "out.dcm"
            out.write_bytes(_write(ds))
            new = _new_errors(path, original, out)
            if new:
                report[Path(path).name] = new
    assert not report
