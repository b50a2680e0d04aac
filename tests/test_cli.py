"""The command line as a user runs it: clear errors, no tracebacks, exit statuses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

CLI = [sys.executable, "-m", "gateway.cli"]


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_unreachable_database_is_one_clear_line(tmp_path: Path) -> None:
    """`status` against a database that does not answer exits 1 with a message, no traceback."""
    cfg = tmp_path / "g.yaml"
    cfg.write_text(yaml.safe_dump({"database": {
        "url": "postgresql+psycopg://nobody:s3cret@127.0.0.1:1/none"}}))
    run = _run("status", "-c", str(cfg), cwd=tmp_path)
    assert run.returncode == 1
    assert "cannot use the database" in run.stderr
    assert "Traceback" not in run.stderr and "s3cret" not in run.stderr


def test_bad_configuration_exits_2_naming_the_key(tmp_path: Path) -> None:
    """`config check` on a file with a misspelt key exits 2 and names it."""
    cfg = tmp_path / "g.yaml"
    cfg.write_text("receiver:\n  portt: 104\n")
    run = _run("config", "check", "-c", str(cfg), cwd=tmp_path)
    assert run.returncode == 2 and "receiver.portt: unknown key" in run.stderr


def test_status_of_a_fresh_gateway(tmp_path: Path) -> None:
    """`status` on the embedded defaults creates the database and prints every state."""
    run = _run("status", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    for state in ("received", "processing", "ready", "sent", "filtered", "quarantined"):
        assert state in run.stdout
    assert (tmp_path / "var" / "gateway.db").exists()
