"""Real-world DICOM files from packages, de-identified by the offline command as a user runs it:
``deid-gateway anonymize IN OUT -p basic -j 2 --quarantine Q`` with the default pipeline
(filter, pixels, deidentify, verify) and no pixel settings.

The set is every file that ``pydicom.dcmread`` reads without ``force`` in pydicom's own test
files, pydicom-data, nibabel and heudiconv's test data (pinned versions: the expected outcome
below is per set). The test asserts that no identifying value of any input is found in the
outputs, that at most 2 % of the inputs are quarantined, and that the quarantine reasons are
exactly the expected ones, so that a new reason fails it.

Identifying values are defined here, independently of the gateway's code: per input, the
components of Patient Name and of the other person names of at least three letters that are not
placeholders, Patient ID, Other Patient IDs, Accession Number, Patient's Birth Date,
Institution Name and Address, and the original SOP, Study and Series Instance UIDs. A name
component that the same input also carries as a coded or defined term (Manufacturer, Image
Type, a code meaning) is not identifying there and is not counted, nor is an identifying value
found in a coded element of the output when the input carries it as a coded term (an
institution called like its equipment's maker, found in Manufacturer).
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import shutil
import subprocess
import sys
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
import pytest
import yaml
from pydicom import Dataset
from pydicom.dataelem import DataElement

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "gateway.cli"]

# Inputs the offline command may hold, with the reason it gives: pixel data that no decoder can
# read because it is damaged (pydicom ships both files to test exactly that). Anything else
# quarantined is a failure of this test.
EXPECTED_QUARANTINE = Counter({
    "quarantined: pixels: pixel data truncated (8130 of 8192 bytes)": 1,  # MR_truncated.dcm
    # JPEG2000-embedded-sequence-delimiter.dcm: four bytes of its SIZ segment overwritten
    "quarantined: pixels: pixel data corrupt: frame 1: JPEG 2000 codestream header says "
    "3722445056 x 1024 pixels, Columns and Rows say 256 x 1024": 1,
})
MAX_QUARANTINED = 0.02

# Placeholder name components and values that identify nobody.
GENERIC_WORDS = frozenset({
    "ANONYMOUS", "ANONYMIZED", "ANONYMISED", "ANON", "TEST", "TESTS", "PATIENT", "PHANTOM",
    "UNKNOWN", "NONE", "NAME", "SUBJECT", "SAMPLE", "DEMO", "DUMMY", "ANONYMIZE", "NOBODY",
    "NULL", "NOT", "GIVEN",
})
PLACEHOLDER_VALUES = frozenset({"", "0", "00000000", "19000101", "ANON", "ANONYMOUS", "ANONYMIZED"})
PERSON_NAMES = ("PatientName", "ReferringPhysicianName", "OperatorsName",
                "PerformingPhysicianName")
IDENTIFIERS = ("PatientID", "OtherPatientIDs", "AccessionNumber", "PatientBirthDate",
               "InstitutionName", "InstitutionAddress")
UIDS = ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")
CODED_VRS = frozenset({"CS"})
CODED_KEYWORDS = frozenset({"Manufacturer", "ManufacturerModelName", "CodeMeaning",
                            "CodeValue", "CodingSchemeDesignator"})
TEXT_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST",
                      "TM", "UC", "UI", "UR", "UT"})


# ------------------------------------------------------------------------- the file set


def package_roots() -> dict[str, Path]:
    """Where each package keeps its DICOM test files (the packages are in the test extra and
    the Makefile's install step; a missing one is an error, not a skip)."""
    import data_store
    import heudiconv
    import nibabel

    return {
        "pydicom": Path(pydicom.__file__).parent / "data" / "test_files",
        "pydicom-data": Path(data_store.__file__).parent / "data",
        "nibabel": Path(nibabel.__file__).parent,
        "heudiconv": Path(heudiconv.__file__).parent / "tests" / "data",
    }


def readable(path: Path) -> bool:
    """``pydicom.dcmread`` without ``force`` reads it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pydicom.dcmread(path)
    except Exception:
        return False
    return True


def collect(root: Path) -> list[Path]:
    """Copies of every readable file of the packages under ``root``, one folder per package."""
    copies = []
    for package, folder in package_roots().items():
        for n, path in enumerate(sorted(p for p in folder.rglob("*") if p.is_file())):
            if path.suffix in (".py", ".pyc") or not readable(path):
                continue
            target = root / package / f"{n:04d}_{path.name}"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            copies.append(target)
    return copies


# ------------------------------------------------------------------------- identifying values


@dataclass
class Identifiers:
    """What must not be found in an output: words (matched whole, any case) and exact
    strings (also searched in the file bytes when long enough not to occur by chance)."""

    words: set[str] = field(default_factory=set)
    strings: set[str] = field(default_factory=set)
    # Words the input carries as coded or defined terms: a string among them found in a coded
    # element of the output (an institution called like its equipment's maker, in
    # Manufacturer) is that term, not a leak.
    coded: set[str] = field(default_factory=set)


def _texts(ds: Dataset) -> Iterator[tuple[DataElement, str]]:
    """Every text value of a data set (file meta and sequences included), as decoded."""
    meta = getattr(ds, "file_meta", None)
    elements = list(meta.iterall()) if meta is not None else []
    for elem in [*elements, *ds.iterall()]:
        if elem.VR not in TEXT_VRS or elem.value is None:
            continue
        values = elem.value if elem.VM > 1 else [elem.value]
        for v in values:
            yield elem, str(v)


def _words(value: str) -> set[str]:
    return {w for w in re.split(r"[^A-Za-z]+", value)
            if len(w) >= 3 and w.upper() not in GENERIC_WORDS}


def identifiers_of(ds: Dataset) -> Identifiers:
    ids = Identifiers()
    coded = {w.upper() for elem, text in _texts(ds)
             if elem.VR in CODED_VRS or elem.keyword in CODED_KEYWORDS
             for w in re.split(r"[^A-Za-z]+", text)}
    ids.coded = coded
    for keyword in PERSON_NAMES:
        for value in _values(ds, keyword):
            ids.words |= {w for w in _words(value) if w.upper() not in coded}
    for keyword in (*IDENTIFIERS, *UIDS):
        for value in _values(ds, keyword):
            if value.strip().upper() not in PLACEHOLDER_VALUES and len(value.strip()) >= 3:
                ids.strings.add(value.strip())
    return ids


def _values(ds: Dataset, keyword: str) -> list[str]:
    elem = ds[keyword] if keyword in ds else None  # noqa: SIM401 (the element, not its value)
    if elem is None or elem.value is None:
        return []
    value = elem.value
    return [str(v) for v in value] if elem.VM > 1 else [str(value)]


def findings(output: Path, ids: Identifiers) -> list[str]:
    """Identifying values found in an output: where, never the value."""
    found = []
    ds = pydicom.dcmread(output)
    word_re = re.compile(r"\b(" + "|".join(map(re.escape, ids.words)) + r")\b", re.I) \
        if ids.words else None
    for elem, text in _texts(ds):
        if word_re is not None and word_re.search(text):
            found.append(f"name component in {elem.tag}")
        coded_here = elem.VR in CODED_VRS or elem.keyword in CODED_KEYWORDS
        for s in ids.strings:
            if coded_here and s.upper() in ids.coded:
                continue
            if re.search(r"(?<![\w.])" + re.escape(s) + r"(?![\w.])", text, re.I):
                found.append(f"identifier in {elem.tag}")
    data = output.read_bytes()
    for s in ids.strings | ids.words:
        if s.upper() in ids.coded:
            continue  # (where in the bytes is not known: the coded element's own value)
        if len(s) >= 6 and s.encode("utf-8", "ignore") in data:
            found.append("identifier in the file bytes")
    return found


# ------------------------------------------------------------------------- the run


@dataclass
class Run:
    inputs: list[Path]
    out: Path
    stdout: str
    stderr: str
    uid_map: dict[str, str]  # output pseudonym -> original UID


def _summary(stdout: str) -> tuple[dict[str, int], Counter[str]]:
    head = re.search(r"done (\d+), filtered (\d+), quarantined (\d+), unreadable (\d+) "
                     r"\(of (\d+)\)", stdout)
    assert head is not None, stdout
    counts = dict(zip(("done", "filtered", "quarantined", "unreadable", "total"),
                      map(int, head.groups()), strict=True))
    reasons: Counter[str] = Counter()
    for line in stdout.splitlines():
        m = re.match(r"\s+(\d+)\s{2}(.+)$", line)
        if m:
            reasons[m.group(2)] += int(m.group(1))
    return counts, reasons


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    root = tmp_path_factory.mktemp("realworld")
    inputs = collect(root / "in")
    config = root / "gateway.yaml"
    config.write_text(yaml.safe_dump({
        "spool": {"root": str(root / "spool")},
        "database": {"url": f"sqlite:///{root / 'gateway.db'}"},
        "pseudonyms": {"reidentification_enabled": True},  # to pair outputs with inputs
    }))
    env = {**os.environ, "TCP_NODELAY": "1"}
    proc = subprocess.run(
        [*CLI, "anonymize", str(root / "in"), str(root / "out"), "-p", "basic", "-j", "2",
         "--quarantine", str(root / "q"), "-c", str(config)],
        capture_output=True, text=True, cwd=root, env=env, timeout=1200,
    )
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    export = subprocess.run([*CLI, "map", "export", str(root / "map"), "--reason", "test",
                             "-c", str(config)], capture_output=True, text=True, cwd=root,
                            timeout=300)
    assert export.returncode == 0, export.stderr[-2000:]
    uid_map = {}
    with open(root / "map" / "uid_mapping.csv", newline="") as fh:
        for row in csv.reader(fh):
            if len(row) == 2 and row[0] != "id_old":
                uid_map[row[1]] = row[0]
    return Run(inputs, root / "out", proc.stdout, proc.stderr, uid_map)


def test_the_set_is_the_packaged_files(run: Run) -> None:
    """The set holds every readable file of the four packages (about 250)."""
    by_package = Counter(p.parent.name for p in run.inputs)
    assert set(by_package) == {"pydicom", "pydicom-data", "nibabel", "heudiconv"}
    assert len(run.inputs) >= 240
    counts, _ = _summary(run.stdout)
    assert counts["total"] == len(run.inputs) and counts["unreadable"] == 0


def test_few_inputs_are_quarantined_and_only_for_known_reasons(run: Run) -> None:
    """At most 2 % of the inputs are held, each for one of the listed reasons."""
    counts, reasons = _summary(run.stdout)
    quarantined = Counter({r: n for r, n in reasons.items() if r.startswith("quarantined: ")})
    assert quarantined == EXPECTED_QUARANTINE, "\n".join(
        f"{n:4d}  {r}" for r, n in (quarantined - EXPECTED_QUARANTINE).most_common())
    assert counts["quarantined"] <= MAX_QUARANTINED * len(run.inputs)


def test_no_identifying_value_of_any_input_is_in_the_outputs(run: Run) -> None:
    """Every output is checked against the identifying values of the inputs it came from
    (inputs that share a SOP Instance UID write one output: their values are all checked)."""
    by_key: dict[str, Identifiers] = {}
    for path in run.inputs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path)
        ids = identifiers_of(ds)
        # an input without SOP Instance UID is written under a hash of its path (offline.py)
        key = str(ds.get("SOPInstanceUID", "") or "") or \
            hashlib.sha256(str(path).encode()).hexdigest()[:32]
        merged = by_key.setdefault(key, Identifiers())
        merged.words |= ids.words
        merged.strings |= ids.strings
        merged.coded |= ids.coded
    outputs = sorted(run.out.rglob("*.dcm"))
    assert outputs
    leaks = {}
    for output in outputs:
        key = run.uid_map.get(output.stem, output.stem)
        assert key in by_key, "an output that no input explains"
        found = findings(output, by_key[key])
        if found:
            leaks[str(output.relative_to(run.out))] = sorted(set(found))
    assert leaks == {}
    assert not any(p.stem in run.stdout + run.stderr for p in run.inputs)


def test_the_leak_check_finds_each_inputs_own_values(run: Run) -> None:
    """The check above can fail: run on the inputs themselves, it flags every input that has
    an identifying value."""
    flagged = with_values = 0
    for path in run.inputs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ids = identifiers_of(pydicom.dcmread(path))
        if ids.words or ids.strings:
            with_values += 1
            flagged += bool(findings(path, ids))
    assert with_values >= 0.9 * len(run.inputs)
    assert flagged == with_values
