"""The offline command: ``anonymize_tree`` in one and several processes, and the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from deid_support import PLANTED, ct, sr

from gateway.config import Settings, parse_settings
from gateway.deid.offline import anonymize_tree
from gateway.pseudonyms.interface import InMemoryPseudonymizer, Pseudonymizer

CLI = [sys.executable, "-m", "gateway.cli"]


def memory_store(settings: Settings) -> Pseudonymizer:
    """A picklable pseudonymizer factory: the same key in every worker process."""
    return InMemoryPseudonymizer(b"offline-test")


def _tree(root: Path) -> None:
    (root / "Zebulon_Quixote" / "ct").mkdir(parents=True)
    for n in (1, 2, 3):
        ct(number=n).save_as(root / "Zebulon_Quixote" / "ct" / f"{n}.dcm",
                             enforce_file_format=True)
    sr().save_as(root / "Zebulon_Quixote" / "report.dcm", enforce_file_format=True)
    (root / "notes.txt").write_text("not dicom")


def _settings() -> Settings:
    return parse_settings({
        "deid": {"profile": "research"},
        "filters": {"rules": [{"name": "no-reports", "modality": ["SR"]}]},
    })


@pytest.mark.parametrize("jobs", [1, 2])
def test_anonymize_tree_counts_and_outputs(tmp_path: Path, jobs: int) -> None:
    """Outputs are named by pseudonymous UIDs; filtered and unreadable inputs are counted."""
    src, out = tmp_path / "in", tmp_path / "out"
    _tree(src)
    summary = anonymize_tree(src, out, _settings(), memory_store, jobs=jobs, progress=None)
    assert (summary.done, summary.filtered, summary.unreadable) == (3, 1, 1)
    assert summary.reasons["filtered: filter rule no-reports"] == 1
    files = sorted(out.rglob("*.dcm"))
    assert len(files) == 3
    for f in files:
        assert "Zebulon" not in str(f)
        ds = pydicom.dcmread(f)
        assert f.name == f"{ds.SOPInstanceUID}.dcm"
        assert PLANTED["family"].encode() not in f.read_bytes()
    assert len({pydicom.dcmread(f).StudyInstanceUID for f in files}) == 1


def test_same_output_in_one_or_two_processes(tmp_path: Path) -> None:
    """Parallel processes give byte-identical outputs to one process."""
    src = tmp_path / "in"
    _tree(src)
    for jobs in (1, 2):
        anonymize_tree(src, tmp_path / f"out{jobs}", _settings(), memory_store, jobs=jobs,
                       progress=None)
    one = {p.relative_to(tmp_path / "out1"): p.read_bytes() for p in
           (tmp_path / "out1").rglob("*.dcm")}
    two = {p.relative_to(tmp_path / "out2"): p.read_bytes() for p in
           (tmp_path / "out2").rglob("*.dcm")}
    assert one == two


def test_quarantined_inputs_are_counted_and_held(tmp_path: Path) -> None:
    """A profile override that keeps a name makes verify hold the file, with the reason."""
    profile = tmp_path / "leaky.yaml"
    profile.write_text("name: leaky\noptions: []\noverrides:\n"
                       "  - keyword: OperatorsName\n    action: K\n")
    src, out, held = tmp_path / "in", tmp_path / "out", tmp_path / "held"
    src.mkdir()
    ct().save_as(src / "a.dcm", enforce_file_format=True)
    settings = parse_settings({"deid": {"profile": str(profile)}})
    summary = anonymize_tree(src, out, settings, memory_store, quarantine=held, progress=None)
    assert summary.quarantined == 1
    (reason,) = summary.reasons
    assert reason.startswith("quarantined: verify: identifying value") and "(0008,1070)" in reason
    assert len(list(held.iterdir())) == 1 and not list(out.rglob("*.dcm"))


def test_explain_cli_hides_values_unless_asked(tmp_path: Path) -> None:
    """``explain`` lists actions and value classes; values appear only with --show-values."""
    f = tmp_path / "a.dcm"
    ct().save_as(f, enforce_file_format=True)
    plain = subprocess.run([*CLI, "explain", str(f), "-p", "research"], capture_output=True,
                           text=True, check=True).stdout
    assert "PatientName" in plain and "name -> name" in plain
    assert "InstitutionName" in plain and "removed" in plain
    assert PLANTED["family"] not in plain
    shown = subprocess.run([*CLI, "explain", str(f), "-p", "research", "--show-values"],
                           capture_output=True, text=True, check=True).stdout
    assert PLANTED["family"] in shown


def test_explain_cli_names_profile_error(tmp_path: Path) -> None:
    """A bad profile makes ``explain`` exit 2 with the profile's line and key."""
    f = tmp_path / "a.dcm"
    ct().save_as(f, enforce_file_format=True)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\noptions: [nope]\n")
    run = subprocess.run([*CLI, "explain", str(f), "-p", str(bad)], capture_output=True,
                         text=True)
    assert run.returncode == 2 and "line 2: options.0" in run.stderr


def test_anonymize_cli_with_the_real_store(tmp_path: Path) -> None:
    """``anonymize`` on a folder, twice, with the database-backed store: same pseudonyms both
    times, no planted value in the outputs, and a summary of what was done."""
    import yaml

    src = tmp_path / "in"
    src.mkdir()
    for i in range(4):
        ct(number=i + 1).save_as(src / f"PATIENT_NAME_{i}.dcm", enforce_file_format=True)
    cfg = tmp_path / "gw.yaml"
    cfg.write_text(yaml.safe_dump({
        "database": {"url": f"sqlite:///{tmp_path / 'map.db'}"},
        "pseudonyms": {"secret_file": str(tmp_path / "secret.key")},
    }))
    subprocess.run([*CLI, "keys", "init", "-c", str(cfg)], check=True, capture_output=True)
    outs = []
    for run_no in (1, 2):
        out = tmp_path / f"out{run_no}"
        run = subprocess.run([*CLI, "anonymize", str(src), str(out), "-p", "research",
                              "-j", "2", "-c", str(cfg)], capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        assert "4" in run.stdout + run.stderr
        files = sorted(p for p in out.rglob("*.dcm"))
        assert len(files) == 4
        blob = b"".join(p.read_bytes() for p in files)
        for value in PLANTED.values():
            assert str(value).encode() not in blob
        assert not any("PATIENT_NAME" in str(p) for p in files)
        outs.append({p.relative_to(out): p.read_bytes() for p in files})
    assert outs[0] == outs[1]
