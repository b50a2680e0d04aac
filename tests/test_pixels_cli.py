"""The ``deid-gateway pixels check`` command, run as a user would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.pixels_data import ultrasound


def test_pixels_check_reports_policy_and_boxes_without_patient_values(tmp_path: Path) -> None:
    """The command prints the decision and box coordinates, and no identifying value."""
    pl = ultrasound()
    path = tmp_path / "us.dcm"
    pl.ds.save_as(path, enforce_file_format=True)
    res = subprocess.run([sys.executable, "-m", "gateway.cli", "pixels", "check", str(path)],
                         capture_output=True, text=True, check=True, timeout=300)
    row = json.loads(res.stdout.strip().splitlines()[-1])
    assert row["scrub"] is True and "modality:US" in row["reasons"]
    assert row["frames"] and row["frames"][0]
    assert "TESTPATIENT" not in res.stdout + res.stderr
    assert str(pl.ds.PatientID) not in res.stdout + res.stderr
