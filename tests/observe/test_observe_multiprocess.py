"""Metrics of spawned worker processes are merged into the serve process's exposition."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).with_name("observe_multiprocess_run.py")
RECEIVED = ("deid_instances_received_total|calling_ae=MODALITY|modality=CT"
            "|sop_class=CTImageStorage")


def _run(tmp_path: Path) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True, text=True,
        timeout=120, cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_children_counters_sum_and_dead_workers_lose_live_gauges(tmp_path: Path) -> None:
    """Counters of the parent and two spawned children add up; a dead child's heartbeat goes,
    its counts stay."""
    result = _run(tmp_path)
    before, after = result["before"], result["after"]
    assert isinstance(before, dict) and isinstance(after, dict)
    assert result["multiprocess"] is True
    assert before[RECEIVED] == 7
    assert before["deid_worker_heartbeat_timestamp_seconds|worker=0"] == 1000.0
    assert before["deid_worker_heartbeat_timestamp_seconds|worker=1"] == 1001.0
    assert after[RECEIVED] == 7
    assert "deid_worker_heartbeat_timestamp_seconds|worker=0" not in after
    assert after["deid_worker_heartbeat_timestamp_seconds|worker=1"] == 1001.0


def test_directory_is_wiped_at_start(tmp_path: Path) -> None:
    """A second run starts from zero: the previous run's files are removed."""
    _run(tmp_path)
    result = _run(tmp_path)
    before = result["before"]
    assert isinstance(before, dict)
    assert before[RECEIVED] == 7
