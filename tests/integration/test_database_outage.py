"""The job database goes away during traffic (PostgreSQL stopped, then started again): the
receiver answers 0xA700, workers and forwarder wait and resume, nothing is lost or held.

The test runs a PostgreSQL server of its own (initdb, pg_ctl on a free port), so that stopping
it disturbs no other test.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import pytest
from pydicom.uid import generate_uid

import dicomgen
from harness import (
    PG_BINS,
    Postgres,
    c_store,
    destination,
    gateway,
    orthanc,
    wait_for,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not PG_BINS, reason="PostgreSQL's server programs are not installed"),
]

OUT_OF_RESOURCES = 0xA700
OUTAGE_SECONDS = 20.0


def _instances(folder: Path, n: int, seed: int) -> list[Path]:
    study = dicomgen.Study.random(random.Random(seed))
    series = generate_uid()
    return [dicomgen.save(dicomgen.ct(study, series, i + 1, size=64, seed=seed * 1000 + i),
                          folder / f"{i:03d}.dcm") for i in range(n)]


class Trickle(threading.Thread):
    """A modality sending one instance at a time, each until it is stored: an answer of
    0xA700 is sent again a second later (every answer is recorded)."""

    def __init__(self, port: int, files: list[Path], pause: float) -> None:
        super().__init__(daemon=True)
        self.port, self.files, self.pause = port, files, pause
        self.statuses: list[int] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for f in self.files:
                while True:
                    [status] = c_store(self.port, [f])
                    self.statuses.append(status)
                    if status == 0:
                        break
                    assert status == OUT_OF_RESOURCES, hex(status)
                    time.sleep(1.0)
                time.sleep(self.pause)
        except BaseException as exc:  # reported by the test
            self.error = exc


def test_database_outage_loses_nothing_and_holds_nothing(tmp_path: Path) -> None:
    """While PostgreSQL is stopped the sender gets 0xA700 (never an abort) and no process
    dies; once it is back, every instance sent before, during and after is delivered once
    and none is quarantined."""
    before = _instances(tmp_path / "before", 20, seed=1)
    during = _instances(tmp_path / "during", 40, seed=2)
    pg = Postgres().start()
    try:
        with orthanc(tmp_path / "orthanc") as pacs:
            config = {
                "database": {"url": pg.url},
                "pipeline": {"stages": ["deidentify", "verify"]},
                "workers": {"count": 2, "max_attempts": 2},
                "destinations": [destination(pacs, max_attempts=3, backoff_initial=0.2,
                                             backoff_max=1.0)],
            }
            with gateway(tmp_path / "gw", config) as g:
                assert c_store(g.port, before) == [0] * len(before)
                wait_for(lambda: g.status().get("sent") == len(before), 120, 0.5, "sent")
                sender = Trickle(g.port, during, pause=0.25)
                sender.start()
                time.sleep(2.0)  # traffic in every stage: received, processing, forwarding
                pg.stop()
                stopped = time.monotonic()
                time.sleep(OUTAGE_SECONDS)
                assert OUT_OF_RESOURCES in sender.statuses
                assert "process_died" not in g.log()
                pg.start()
                back = time.monotonic()
                sender.join(180)
                assert sender.error is None and not sender.is_alive()
                total = len(before) + len(during)
                wait_for(lambda: pacs.count_instances() == total, 180, 0.5, "all delivered")
                delivered = time.monotonic() - back
                wait_for(lambda: g.status().get("sent") == total, 60, 0.5, "all sent")
                st = g.status()
                assert st["quarantined"] == 0 and st["received"] == 0 and st["ready"] == 0
                refused = sender.statuses.count(OUT_OF_RESOURCES)
                print(f"database down {back - stopped:.1f} s; {refused} answers 0xA700; all "
                      f"{total} delivered {delivered:.1f} s after it came back")
            assert g.proc is not None and g.proc.returncode == 0
            log = g.log()
            assert "process_died" not in log
            assert '"condition": "database"' in log and "worker_resumed" in log
            assert '"reason": "database"' in log  # the receiver's refusals, named
    finally:
        pg.destroy()
