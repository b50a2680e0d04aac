"""A full spool (another program filled its file system): the gateway holds back, loses
nothing, quarantines nothing, keeps every process alive, and recovers by itself.

The spool lives on a small tmpfs the test mounts, with ``min_free_bytes: 0`` so that nothing
but the file system itself stops the writes. Senders are pynetdicom and DCMTK's storescu; the
destination is a real Orthanc.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
from pydicom.uid import generate_uid

import dicomgen
from harness import (
    Gateway,
    Orthanc,
    c_store,
    can_mount,
    destination,
    fill,
    gateway,
    orthanc,
    storescu,
    tmpfs,
    wait_for,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not can_mount(), reason="mounting a tmpfs needs root"),
]

OUT_OF_RESOURCES = 0xA700


def _instances(folder: Path, n: int, seed: int) -> list[Path]:
    """``n`` CT instances of 256x256 (about 130 KB each) of one synthetic patient."""
    study = dicomgen.Study.random(random.Random(seed))
    series = generate_uid()
    return [dicomgen.save(dicomgen.ct(study, series, i + 1, size=256, seed=seed * 1000 + i),
                          folder / f"{i:03d}.dcm") for i in range(n)]


def send_until_stored(port: int, files: Sequence[Path], timeout: float) -> int:
    """Send like a modality does: what was refused with 0xA700 is sent again a second later,
    until everything is stored; returns how many refusals it took."""
    left, refused = list(files), 0
    deadline = time.monotonic() + timeout
    while left:
        assert time.monotonic() < deadline, f"{len(left)} instances still refused"
        statuses = c_store(port, left)
        assert set(statuses) <= {0, OUT_OF_RESOURCES}, statuses
        left = [f for f, s in zip(left, statuses, strict=True) if s != 0]
        refused += len(left)
        if left:
            time.sleep(1.0)
    return refused


def _children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (the serve process's workers and forwarder)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry))
    return out


@contextmanager
def paused_children(g: Gateway) -> Iterator[None]:
    """SIGSTOP the gateway's child processes for the block (the serve process receives on)."""
    assert g.proc is not None
    pids = _children(g.proc.pid)
    assert pids
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


def _waiting_jobs(g: Gateway) -> list[tuple[str, int, str | None]]:
    """(state, attempts, reason class) of every job not sent yet."""
    from gateway.db import make_engine
    from gateway.jobs.states import JobState
    from gateway.jobs.store import JobStore

    engine = make_engine(g.settings["database"]["url"])
    try:
        store = JobStore(engine, "any")
        return [(j.state, j.attempts, j.reason_class)
                for state in (JobState.RECEIVED, JobState.PROCESSING, JobState.READY)
                for j in store.list_state(state)]
    finally:
        engine.dispose()


def test_full_spool_holds_back_and_recovers_by_itself(tmp_path: Path) -> None:
    """Outputs that cannot be written wait without using attempts, senders get 0xA700 on a
    live association, no process dies; when the destination comes back the forwarder frees
    space and everything is delivered, none lost and none quarantined."""
    a, b, c = (_instances(tmp_path / name, n, seed)
               for name, n, seed in (("a", 20, 1), ("b", 20, 2), ("c", 10, 3)))
    pacs = Orthanc(tmp_path / "orthanc")  # not started yet: the destination is down
    with tmpfs(tmp_path / "fs", "20m") as fs:
        config = {
            "spool": {"root": str(fs / "spool"), "min_free_bytes": 0},
            "pipeline": {"stages": ["deidentify", "verify"]},
            "workers": {"count": 2, "max_attempts": 2},
            "destinations": [destination(pacs, backoff_initial=0.2, backoff_max=1.0)],
        }
        try:
            with gateway(tmp_path / "gw", config) as g:
                spool = fs / "spool"
                assert not (spool / "metrics").exists()  # memory-mapped files live elsewhere
                assert (g.runtime_dir / "metrics").is_dir()
                # A: processed, waiting for the destination (their files hold space)
                assert c_store(g.port, a) == [0] * len(a)
                wait_for(lambda: g.status().get("ready") == len(a), 60, 0.5, "A ready")
                # B: received while the workers are paused, then the disk fills up
                with paused_children(g):
                    assert c_store(g.port, b) == [0] * len(b)
                    filler = fs / "filler"
                    fill(filler)
                # the workers cannot write B's outputs: they wait, attempts untouched
                wait_for(lambda: "write: spool output failed (ENOSPC)" in g.log(), 30, 0.5,
                         "a worker meeting ENOSPC")
                # C: refused with 0xA700 on a live association, by pynetdicom and storescu
                assert c_store(g.port, c) == [OUT_OF_RESOURCES] * len(c)
                dcmtk = storescu(g.port, c[:2], options=("-v",), check=False)
                assert "Refused: OutOfResources" in dcmtk.stdout + dcmtk.stderr
                assert "Abort" not in dcmtk.stdout + dcmtk.stderr
                time.sleep(5)  # several retry rounds on a full disk
                waiting = _waiting_jobs(g)
                assert g.status()["quarantined"] == 0
                assert sorted({(st, n) for st, n, _ in waiting}) == [("ready", 1),
                                                                    ("received", 0)]
                assert {cls for st, _, cls in waiting if st == "received"} == {"disk_full"}
                # the destination comes back: the forwarder frees space, the rest follows
                came_back = time.monotonic()
                pacs.start()
                refused = send_until_stored(g.port, c, timeout=180)
                total = len(a) + len(b) + len(c)
                wait_for(lambda: g.status().get("sent") == total, 180, 0.5, "all sent")
                recovered = time.monotonic() - came_back
                assert pacs.count_instances() == total  # none lost, none doubled
                st = g.status()
                assert st["quarantined"] == 0 and st["received"] == 0 and st["ready"] == 0
                assert filler.exists()  # it recovered by itself: the filler is still there
                print(f"recovered in {recovered:.1f} s after the destination came back; "
                      f"C refused {refused} more times meanwhile")
            assert g.proc is not None and g.proc.returncode == 0
            log = g.log()
            assert "process_died" not in log and "uncaught_exception" not in log
            assert '"reason": "disk_full"' in log  # the receiver's refusals, named
        finally:
            pacs.stop()


def test_full_spool_refuses_and_takes_everything_once_space_frees(tmp_path: Path) -> None:
    """With the spool's file system full before any traffic, every instance is refused with
    0xA700; once the filler is deleted the sender's retries are stored and all delivered."""
    files = _instances(tmp_path / "in", 30, seed=4)
    with tmpfs(tmp_path / "fs", "20m") as fs, orthanc(tmp_path / "orthanc") as pacs:
        config = {
            "spool": {"root": str(fs / "spool"), "min_free_bytes": 0},
            "pipeline": {"stages": ["passthrough"]},
            "destinations": [destination(pacs)],
        }
        with gateway(tmp_path / "gw", config) as g:
            filler = fs / "filler"
            fill(filler)
            time.sleep(1.1)  # the receiver's view of the spool is refreshed every second
            assert c_store(g.port, files) == [OUT_OF_RESOURCES] * len(files)
            assert g.status()["received"] == 0
            freed = time.monotonic()
            filler.unlink()
            refused = send_until_stored(g.port, files, timeout=60)
            wait_for(lambda: g.status().get("sent") == len(files), 120, 0.2, "all sent")
            print(f"all {len(files)} delivered {time.monotonic() - freed:.1f} s after the "
                  f"space freed ({refused} more refusals)")
            assert pacs.count_instances() == len(files)
            assert g.status()["quarantined"] == 0
        assert g.proc is not None and g.proc.returncode == 0
        assert "process_died" not in g.log()
