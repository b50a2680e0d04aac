"""The runtime folder (metrics files, sockets, health, identity memory) lives off the spool's
file system, so that a full spool cannot kill the processes that free it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gateway.app import StartupError, prepare_runtime
from gateway.config import SHARED_MEMORY, parse_settings


def test_runtime_on_the_spool_file_system_is_refused(tmp_path: Path) -> None:
    """A runtime folder on the spool's file system stops the start with a message that says
    why and what to set."""
    (tmp_path / "spool").mkdir()
    with pytest.raises(StartupError) as refused:
        prepare_runtime(tmp_path / "run", tmp_path / "spool")
    message = str(refused.value)
    assert "same file system as the spool" in message and "runtime.dir" in message


@pytest.mark.skipif(not SHARED_MEMORY.is_dir(), reason="no /dev/shm on this system")
def test_runtime_on_another_file_system_is_created_private(tmp_path: Path) -> None:
    """A runtime folder on another file system (/dev/shm here) is created, readable by the
    gateway's user only."""
    (tmp_path / "spool").mkdir()
    runtime = SHARED_MEMORY / f"deid-test-{tmp_path.name}"
    try:
        assert prepare_runtime(runtime, tmp_path / "spool") == runtime
        assert runtime.stat().st_mode & 0o777 == 0o700
    finally:
        runtime.rmdir()


def test_default_runtime_folder_is_one_per_spool(tmp_path: Path) -> None:
    """Without runtime.dir each spool gets its own folder in /dev/shm, the same one every time
    it is read; runtime.dir wins when given."""
    a = parse_settings({"spool": {"root": str(tmp_path / "a")}})
    again = parse_settings({"spool": {"root": str(tmp_path / "a")}})
    b = parse_settings({"spool": {"root": str(tmp_path / "b")}})
    assert a.runtime_dir.parent == SHARED_MEMORY
    assert a.runtime_dir == again.runtime_dir != b.runtime_dir
    given = parse_settings({"spool": {"root": str(tmp_path / "a")},
                            "runtime": {"dir": str(tmp_path / "run")}})
    assert given.runtime_dir == tmp_path / "run"


def test_serve_refuses_a_runtime_folder_on_the_spool_file_system(tmp_path: Path) -> None:
    """`serve` with runtime.dir beside the spool exits 1 with one clear log line."""
    cfg = tmp_path / "g.yaml"
    cfg.write_text(yaml.safe_dump({
        "spool": {"root": str(tmp_path / "spool")},
        "runtime": {"dir": str(tmp_path / "run")},
        "database": {"url": f"sqlite:///{tmp_path / 'g.db'}"},
        "pipeline": {"stages": ["passthrough"]},
        "metrics": {"port": 0},
    }))
    run = subprocess.run([sys.executable, "-m", "gateway.cli", "serve", "-c", str(cfg)],
                         capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert run.returncode == 1
    [failed] = [json.loads(line) for line in run.stderr.splitlines()
                if '"startup_failed"' in line]
    assert "same file system as the spool" in failed["error"]
    assert "Traceback" not in run.stderr
