"""The operator commands: keys init, lookup import, reidentify (off by default, audited),
audit, and map export in the MIDI-B scorer's format; run in-process and as a subprocess."""

from __future__ import annotations

import csv
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pseudonym_support import synthetic_patient, synthetic_uid

from gateway.cli import main
from gateway.config import load_settings
from gateway.pseudonyms.factory import open_pseudonymizer
from gateway.pseudonyms.reidentify import os_user


def _config(tmp_path: Path, db_url: str, secret_file: Path, **pseudonyms: object) -> Path:
    path = tmp_path / "gateway.yaml"
    data = {"node_id": "node-cli", "database": {"url": db_url},
            "pseudonyms": {"secret_file": str(secret_file), **pseudonyms}}
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def config(tmp_path: Path, db_url: str, secret_file: Path) -> Path:
    """A configuration with re-identification left at its default (off)."""
    return _config(tmp_path, db_url, secret_file)


@pytest.fixture
def enabled(tmp_path: Path, db_url: str, secret_file: Path) -> Path:
    """A configuration that enables re-identification."""
    return _config(tmp_path, db_url, secret_file, reidentification_enabled=True)


def _populate(config: Path) -> tuple[dict[str, str], dict[str, str]]:
    """Map a few UIDs and patients through the store; returns (uid map, patient ID map)."""
    uids: dict[str, str] = {}
    patients: dict[str, str] = {}
    with open_pseudonymizer(load_settings(config)) as s:
        for i in range(3):
            uids[synthetic_uid(i)] = s.uid(synthetic_uid(i))
            pid, issuer, name = synthetic_patient(i)
            patients[pid] = s.patient(pid, issuer, name).patient_id
        s.identifier("accession", "ACC1")
    return uids, patients


def test_keys_init_creates_configured_file(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           db_url: str) -> None:
    """`keys init` creates the configured secret file (0600), prints a backup hint, and
    refuses a second time with exit status 1."""
    key = tmp_path / "keys" / "new.key"
    cfg = _config(tmp_path, db_url, key)
    assert main(["keys", "init", "-c", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert str(key) in out and "Back it up" in out
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_text().strip() not in out
    assert main(["keys", "init", "-c", str(cfg)]) == 1
    assert "refusing to replace" in capsys.readouterr().err


def test_keys_init_with_env_source_needs_path(tmp_path: Path, db_url: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """With the secret in an environment variable, `keys init` asks for --path."""
    cfg = tmp_path / "env.yaml"
    cfg.write_text(yaml.safe_dump({"database": {"url": db_url},
                                   "pseudonyms": {"secret_env": "GW_SECRET"}}))
    assert main(["keys", "init", "-c", str(cfg)]) == 1
    assert "--path" in capsys.readouterr().err
    assert main(["keys", "init", "-c", str(cfg), "--path", str(tmp_path / "k")]) == 0


def test_keys_check(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`keys check` confirms the secret matches the map."""
    assert main(["keys", "check", "-c", str(config)]) == 0
    assert "matches" in capsys.readouterr().out


def test_reidentify_disabled_by_default_and_audited(config: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """By default `reidentify` prints no original, exits 3, and the refusal is audited."""
    uids, _ = _populate(config)
    original, pseudonym = next(iter(uids.items()))
    assert main(["reidentify", "-c", str(config), pseudonym, "--reason", "curious"]) == 3
    captured = capsys.readouterr()
    assert original not in captured.out + captured.err
    assert "disabled" in captured.err
    assert main(["audit", "-c", str(config)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split("\t")[1:] == [os_user(), "node-cli", "reidentify", pseudonym,
                                        "refused", "curious"]


def test_reidentify_enabled_prints_and_audits(enabled: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Enabled, `reidentify` prints the original UID or patient and records who and why."""
    uids, patients = _populate(enabled)
    original, pseudonym = next(iter(uids.items()))
    assert main(["reidentify", "-c", str(enabled), pseudonym, "--reason", "IRB-42"]) == 0
    assert capsys.readouterr().out == f"uid\t{original}\n"
    pid, ppid = next(iter(patients.items()))
    assert main(["reidentify", "-c", str(enabled), ppid]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"patient_id\t{pid}\n") and "date_offset_days" in out
    assert main(["reidentify", "-c", str(enabled), "2.25.0"]) == 1
    capsys.readouterr()
    assert main(["audit", "-c", str(enabled)]) == 0
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()[1:]]
    assert [(r[4], r[5], r[6]) for r in rows] == [
        (pseudonym, "found", "IRB-42"), (ppid, "found", ""), ("2.25.0", "not-found", "")]
    assert all(original not in "\t".join(r) for r in rows)


def test_map_export_scorer_format(enabled: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    """`map export` writes uid_mapping.csv and patid_mapping.csv with header id_old,id_new,
    mode 0600, one row per original, and audits the export."""
    uids, patients = _populate(enabled)
    out = tmp_path / "mappings"
    assert main(["map", "export", "-c", str(enabled), str(out)]) == 0
    for name, expected in (("uid_mapping.csv", uids), ("patid_mapping.csv", patients)):
        path = out / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            assert reader.fieldnames == ["id_old", "id_new"]
            assert {r["id_old"]: r["id_new"] for r in reader} == expected
    assert main(["map", "export", "-c", str(enabled), str(out)]) == 1
    assert "--force" in capsys.readouterr().err
    assert main(["map", "export", "-c", str(enabled), str(out), "--force"]) == 0
    capsys.readouterr()
    main(["audit", "-c", str(enabled)])
    outcomes = [line.split("\t")[5] for line in capsys.readouterr().out.splitlines()[1:]]
    assert outcomes == ["written", "written"]


def test_map_export_disabled_by_default(config: Path, tmp_path: Path) -> None:
    """Without re-identification enabled, nothing is exported and exit status is 3."""
    _populate(config)
    assert main(["map", "export", "-c", str(config), str(tmp_path / "m")]) == 3
    assert not (tmp_path / "m").exists()


def test_lookup_import_command(config: Path, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    """`lookup import` reports what it added; a refused table exits 1 naming the line."""
    table = tmp_path / "lookup.csv"
    table.write_text("patient_id,issuer,pseudonym_id,pseudonym_name\nMRNX,H,S1,A^B\n")
    assert main(["lookup", "import", "-c", str(config), str(table)]) == 0
    assert "1 added" in capsys.readouterr().out
    table.write_text("MRNX,H,S2,A^B\n")
    assert main(["lookup", "import", "-c", str(config), str(table)]) == 1
    err = capsys.readouterr().err
    assert "line 1" in err and "MRNX" not in err


def test_cli_subprocess_round_trip(tmp_path: Path) -> None:
    """As a user runs it: keys init, lookup import and a disabled reidentify, as processes."""
    cfg = tmp_path / "g.yaml"
    cfg.write_text(yaml.safe_dump({
        "database": {"url": f"sqlite:///{tmp_path / 'g.db'}"},
        "pseudonyms": {"secret_file": str(tmp_path / "s.key")}}))
    table = tmp_path / "t.csv"
    table.write_text("MRN1,S1,A^B\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "gateway.cli", *args, "-c", str(cfg)],
                              capture_output=True, text=True, env=env, timeout=120)

    assert run("keys", "init").returncode == 0
    assert run("lookup", "import", str(table)).returncode == 0
    refused = run("reidentify", "S1")
    assert refused.returncode == 3 and "MRN1" not in refused.stdout + refused.stderr
