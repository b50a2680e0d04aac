"""The scrubber process: workers send frames through shared memory and get the same boxes."""

from __future__ import annotations

import multiprocessing
import socket
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from gateway.config import Settings
from gateway.pipeline.stage import OutcomeKind, StageContext, StageServices
from gateway.pixels.model import TextDetNet
from gateway.pixels.service import (
    InProcessClient,
    ScrubberClient,
    ScrubberUnavailable,
    start_scrubber,
    wait_ready,
)
from gateway.pixels.stage import make_stage
from tests.pixels_data import ultrasound


def _weights(path: Path) -> Path:
    """A seeded, untrained network: enough to compare the two serving paths exactly."""
    torch.manual_seed(3)
    net = TextDetNet()
    torch.save({"state_dict": net.state_dict(), "widths": {}, "threshold": 0.5,
                "version": "textdet@test"}, path)
    return path


def _settings(tmp_path: Path, **service: Any) -> Settings:
    # A short socket path: Unix sockets allow about 100 characters.
    sock = Path("/tmp") / f"pxs-{tmp_path.name[-20:]}.sock"
    return Settings.model_validate({
        "spool": {"root": str(tmp_path)},
        "pixels": {"model": {"weights": str(_weights(tmp_path / "w.pt"))},
                   "service": {"socket": str(sock), "timeout_seconds": 20, **service}}})


def _frames(seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = [ultrasound(rows=120, columns=160, seed=seed).ds.pixel_array]
    out.append(rng.integers(0, 4096, (96, 128), dtype=np.uint16))
    out.append(ultrasound(rows=64, columns=64, colour=True, seed=seed).ds.pixel_array)
    return out * 3


def _as_tuples(found: list[list[Any]]) -> list[list[tuple[int, int, int, int]]]:
    return [[(b.x0, b.y0, b.x1, b.y1) for b in fb] for fb in found]


def _worker(sock: str, seed: int, ready: Any, go: Any, out: Any) -> None:
    client = ScrubberClient(Path(sock), timeout=20)
    frames = _frames(seed)
    _ = client.version  # connect before the common start
    ready.put(seed)
    go.wait()
    out.put((seed, _as_tuples(client.detect(frames))))


@pytest.fixture
def scrubber(tmp_path: Path) -> Any:
    settings = _settings(tmp_path, batch_wait_ms=1000, max_batch_frames=64)
    proc = start_scrubber(settings)
    path = settings.pixels.socket_path(settings.spool.root)
    assert wait_ready(path, 120, proc), "scrubber did not start"
    yield settings, path, proc
    proc.terminate()
    proc.join(10)


def test_two_workers_share_one_scrubber_and_get_in_process_results(scrubber: Any) -> None:
    """Two worker processes' frames are batched together and answered exactly as in-process."""
    settings, path, _proc = scrubber
    ctx = multiprocessing.get_context("spawn")
    ready, go, out = ctx.Queue(), ctx.Event(), ctx.Queue()
    workers = [ctx.Process(target=_worker, args=(str(path), s, ready, go, out)) for s in (1, 2)]
    for w in workers:
        w.start()
    for _ in workers:  # both connected with their frames made (spawned interpreters are slow)
        ready.get(timeout=120)
    go.set()
    results = dict(out.get(timeout=120) for _ in workers)
    for w in workers:
        w.join(30)
    local = InProcessClient(settings.pixels)
    for seed in (1, 2):
        assert results[seed] == _as_tuples(local.detect(_frames(seed)))
    stats = ScrubberClient(path, timeout=5).server_stats()
    # each worker sends 3 frames of each size; a batch of more than 3 mixes both workers
    assert stats["requests"] >= 2 and stats["largest_batch"] > 3


def test_stopped_scrubber_removes_its_socket(scrubber: Any) -> None:
    """SIGTERM ends the scrubber and removes the socket, after which clients fail fast."""
    _, path, proc = scrubber
    proc.terminate()
    proc.join(20)
    assert not path.exists()
    with pytest.raises(ScrubberUnavailable):
        ScrubberClient(path, timeout=2).detect(_frames(0))


def test_silent_scrubber_times_out(tmp_path: Path) -> None:
    """A scrubber that accepts but never answers makes the client give up after its timeout."""
    path = Path("/tmp") / f"pxsilent-{tmp_path.name[-16:]}.sock"
    lst = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lst.bind(str(path))
    lst.listen(1)
    held: list[socket.socket] = []
    threading.Thread(target=lambda: held.append(lst.accept()[0]), daemon=True).start()
    start = time.monotonic()
    try:
        with pytest.raises(ScrubberUnavailable):
            ScrubberClient(path, timeout=0.5).detect(_frames(0))
    finally:
        lst.close()
        path.unlink()
    assert time.monotonic() - start < 5


def test_stage_retries_when_no_scrubber_runs(tmp_path: Path) -> None:
    """The stage built in scrubber mode with nothing listening answers retry, pixels intact."""
    settings = _settings(tmp_path)
    stage = make_stage(StageServices(settings=settings))
    pl = ultrasound()
    data = bytes(pl.ds.PixelData)
    ctx = StageContext(job_id="j")
    assert stage(pl.ds, ctx).kind is OutcomeKind.RETRY
    assert bytes(pl.ds.PixelData) == data and "pixels_cleaned" not in ctx.notes


def test_stage_scrubs_through_the_scrubber(scrubber: Any) -> None:
    """In scrubber mode the stage gets its boxes from the scrubber process and marks the job."""
    settings, _path, _proc = scrubber
    stage = make_stage(StageServices(settings=settings))
    pl = ultrasound(rows=120, columns=160, frames=2)
    ctx = StageContext(job_id="j")
    assert stage(pl.ds, ctx).kind is OutcomeKind.CONTINUE
    assert ctx.notes["pixels_cleaned"] is True and "textdet@test" in ctx.versions
