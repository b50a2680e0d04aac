"""Log lines of several processes sharing one stderr stay whole: one JSON object per line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

_WRITER = """
import sys
from gateway.config import LogSettings
from gateway.observe.logs import configure_logging, get_logger
configure_logging(LogSettings(), process=sys.argv[1])
log = get_logger("test")
for n in range(int(sys.argv[2])):
    log.info("line", n=n, payload=sys.argv[1] * int(sys.argv[3]))
"""


@pytest.mark.parametrize("size", [300, 20000])
def test_lines_of_concurrent_processes_do_not_interleave(tmp_path: Path, size: int) -> None:
    """Four processes logging long lines at once into one appended file leave only whole
    JSON lines, each carrying its own process's payload."""
    path = tmp_path / "shared.log"
    lines = 150
    with open(path, "ab") as shared:  # what a service manager or the test harness gives
        procs = [
            subprocess.Popen([sys.executable, "-c", _WRITER, name, str(lines), str(size)],
                             stderr=shared)
            for name in "abcd"
        ]
        for p in procs:
            assert p.wait(120) == 0
    seen: dict[str, int] = {}
    for raw in path.read_text().splitlines():
        line = json.loads(raw)  # two objects on one line, or half of one, fail here
        assert line["payload"] == line["process"] * size
        seen[line["process"]] = seen.get(line["process"], 0) + 1
    assert seen == {name: lines for name in "abcd"}
