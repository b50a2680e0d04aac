"""Where the detector runs: one scrubber process for all workers, or inside the caller.

The scrubber owns the model (and the GPU when there is one). Workers connect to a Unix socket
in the runtime folder and send small JSON requests; the frames themselves travel through
``multiprocessing.shared_memory``: the worker writes its frames, already windowed to 8-bit
grey, into a segment it creates, and the scrubber reads them from there. The scrubber collects
frames from all connections for up to ``batch_wait_ms`` (or ``max_batch_frames``), runs them as
batches of equal padded size, and answers each request with its boxes. A worker that gets no
answer within ``timeout_seconds``, or cannot connect, raises :class:`ScrubberUnavailable`; the
stage then retries or quarantines the instance, never passes it unscrubbed.

Wire format (one JSON object per line, UTF-8): ``{"op": "hello"}`` -> ``{"version": ...}``;
``{"op": "detect", "id": n, "shm": name, "frames": [[rows, cols, offset], ...]}`` ->
``{"id": n, "boxes": [[[x0, y0, x1, y1, score], ...], ...]}`` or ``{"id": n, "error": ...}``.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import queue as queue_mod
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing import resource_tracker, shared_memory
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from gateway.pixels.boxes import Box

if TYPE_CHECKING:
    from gateway.config import Settings
    from gateway.pixels.model import Detector
    from gateway.pixels.settings import PixelSettings


class ScrubberUnavailable(Exception):
    """The scrubber process cannot be reached or did not answer in time."""


class DetectorClient(Protocol):
    """What the stage needs: boxes of text for each frame (grey of any depth, or RGB)."""

    @property
    def version(self) -> str: ...

    def detect(self, frames: Sequence[np.ndarray]) -> list[list[Box]]: ...


def grey_u8(frame: np.ndarray) -> np.ndarray:
    """The detector's input for one frame, windowed and quantised to 8 bits."""
    from gateway.pixels.model import frame_to_grey

    return (frame_to_grey(frame) * 255.0 + 0.5).astype(np.uint8)


# --------------------------------------------------------------------------- in-process


class InProcessClient:
    """Runs the detector in the calling process; the model loads on first use."""

    def __init__(self, settings: PixelSettings, max_batch: int | None = None) -> None:
        self._settings = settings
        self._detector: Detector | None = None
        self._max_batch = max_batch or settings.service.max_batch_frames
        self._lock = threading.Lock()

    def _load(self) -> Detector:
        with self._lock:
            if self._detector is None:
                import torch

                from gateway.pixels.model import load_detector

                torch.set_num_threads(self._settings.model.torch_threads)
                m = self._settings.model
                self._detector = load_detector(self._settings.weights_path(), m.device,
                                               m.threshold)
            return self._detector

    @property
    def version(self) -> str:
        return self._load().version

    def detect(self, frames: Sequence[np.ndarray]) -> list[list[Box]]:
        det = self._load()
        out: list[list[Box]] = []
        for i in range(0, len(frames), self._max_batch):
            grey = [grey_u8(f) for f in frames[i:i + self._max_batch]]
            out.extend(detect_grey(det, grey))
        return out


def detect_grey(det: Detector, grey: Sequence[np.ndarray]) -> list[list[Box]]:
    """Boxes for 8-bit grey frames (the common path of both modes)."""
    scaled = [g.astype(np.float32) * np.float32(1 / 255) for g in grey]
    probs = det.probability(scaled)
    return [det.boxes(p, g) for p, g in zip(probs, scaled, strict=True)]


# --------------------------------------------------------------------------- client


class ScrubberClient:
    """Talks to the scrubber over its Unix socket; one connection per worker process."""

    def __init__(self, socket_path: Path, timeout: float, max_batch: int = 64) -> None:
        self.socket_path = Path(socket_path)
        self.timeout = timeout
        self.max_batch = max_batch
        self._sock: socket.socket | None = None
        self._reader: Any = None
        self._version = ""
        self._next_id = 0
        self._pid = os.getpid()

    def _connect(self) -> None:
        if self._sock is not None and self._pid == os.getpid():
            return
        self.close()
        self._pid = os.getpid()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(str(self.socket_path))
        except OSError:
            s.close()
            raise ScrubberUnavailable("pixel scrubber is not running") from None
        self._sock, self._reader = s, s.makefile("rb")
        self._version = str(self._call({"op": "hello"}).get("version", ""))

    def close(self) -> None:
        if self._reader is not None:
            with contextlib.suppress(OSError):
                self._reader.close()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
        self._sock = self._reader = None

    def _call(self, msg: dict[str, Any]) -> dict[str, Any]:
        assert self._sock is not None
        try:
            self._sock.sendall(json.dumps(msg).encode() + b"\n")
            line = self._reader.readline()
        except (OSError, ValueError):
            self.close()
            raise ScrubberUnavailable("pixel scrubber did not answer in time") from None
        if not line:
            self.close()
            raise ScrubberUnavailable("pixel scrubber closed the connection")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise ScrubberUnavailable(f"pixel scrubber failed: {reply['error']}")
        return reply

    @property
    def version(self) -> str:
        self._connect()
        return self._version

    def server_stats(self) -> dict[str, int]:
        """The scrubber's counters: requests, frames, batches, largest batch."""
        self._connect()
        return {k: int(v) for k, v in self._call({"op": "stats"}).items()}

    def detect(self, frames: Sequence[np.ndarray]) -> list[list[Box]]:
        self._connect()
        out: list[list[Box]] = []
        for i in range(0, len(frames), self.max_batch):
            out.extend(self._detect_chunk([grey_u8(f) for f in frames[i:i + self.max_batch]]))
        return out

    def _detect_chunk(self, grey: list[np.ndarray]) -> list[list[Box]]:
        layout, offset = [], 0
        for g in grey:
            layout.append([int(g.shape[0]), int(g.shape[1]), offset])
            offset += g.size
        shm = shared_memory.SharedMemory(create=True, size=max(1, offset))
        try:
            buf = shm.buf
            assert buf is not None
            for g, (_, _, off) in zip(grey, layout, strict=True):
                buf[off:off + g.size] = g.tobytes()
            self._next_id += 1
            reply = self._call({"op": "detect", "id": self._next_id, "shm": shm.name,
                                "frames": layout})
        finally:
            shm.close()
            shm.unlink()
        boxes = reply.get("boxes")
        if reply.get("id") != self._next_id or boxes is None or len(boxes) != len(grey):
            self.close()
            raise ScrubberUnavailable("pixel scrubber answered for the wrong frames")
        return [[Box(int(b[0]), int(b[1]), int(b[2]), int(b[3]), float(b[4])) for b in fb]
                for fb in boxes]


# --------------------------------------------------------------------------- server


@dataclass
class _Request:
    conn: _Connection
    rid: int
    grey: list[np.ndarray]
    results: list[list[Box] | None] = field(default_factory=list)
    pending: int = 0
    done: bool = False

    def fail(self, reason: str) -> None:
        if not self.done:
            self.done = True
            self.conn.send({"id": self.rid, "error": reason})


class _Connection:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.lock = threading.Lock()

    def send(self, msg: dict[str, Any]) -> None:
        data = json.dumps(msg).encode() + b"\n"
        with self.lock, contextlib.suppress(OSError):
            self.sock.sendall(data)


_ATTACH_LOCK = threading.Lock()


def _attach(name: str) -> shared_memory.SharedMemory:
    """Open a worker's segment without registering it with a resource tracker.

    Python 3.11 registers segments it merely attaches to, so the tracker would later unlink
    (or warn about) memory that the worker owns and unlinks itself; 3.13 has ``track=False``.
    """
    with _ATTACH_LOCK:
        register = resource_tracker.register
        resource_tracker.register = lambda *a, **k: None
        try:
            return shared_memory.SharedMemory(name=name)
        finally:
            resource_tracker.register = register


def _read_frames(name: str, layout: list[list[int]]) -> list[np.ndarray]:
    """Copy the request's frames out of the worker's shared-memory segment."""
    shm = _attach(name)
    try:
        out = []
        for rows, cols, off in layout:
            a = np.frombuffer(shm.buf or b"", np.uint8, rows * cols, off).reshape(rows, cols).copy()
            out.append(a)
        return out
    finally:
        shm.close()


class Scrubber:
    """The server: accepts connections, batches frames across them, runs the detector."""

    def __init__(self, detector: Detector, socket_path: Path, max_batch: int = 64,
                 batch_wait_ms: float = 5.0, metrics: Any = None) -> None:
        self.detector = detector
        # gateway.observe.metrics.ScrubberMetrics (batch sizes, frames/s, heartbeat) or None
        self.metrics = metrics
        self.socket_path = Path(socket_path)
        self.max_batch = max_batch
        self.batch_wait = batch_wait_ms / 1000.0
        self._frames: queue_mod.Queue[tuple[_Request, int]] = queue_mod.Queue()
        self._stop = threading.Event()
        self._listener: socket.socket | None = None
        self.stats = {"requests": 0, "frames": 0, "batches": 0, "largest_batch": 0}

    def serve_forever(self) -> None:
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        lst = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        lst.bind(str(self.socket_path))
        os.chmod(self.socket_path, 0o600)
        lst.listen(256)
        lst.settimeout(0.2)
        self._listener = lst
        threading.Thread(target=self._batch_loop, name="pixels-batch", daemon=True).start()
        if self.metrics is not None:
            threading.Thread(target=self._heartbeat, name="pixels-heartbeat", daemon=True).start()
        try:
            while not self._stop.is_set():
                try:
                    sock, _ = lst.accept()
                except TimeoutError:
                    continue
                sock.settimeout(None)
                threading.Thread(target=self._conn_loop, args=(sock,), daemon=True).start()
        finally:
            lst.close()
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()

    def stop(self) -> None:
        self._stop.set()

    def _heartbeat(self) -> None:
        while not self._stop.wait(2.0):
            self.metrics.alive(True)

    def _conn_loop(self, sock: socket.socket) -> None:
        conn = _Connection(sock)
        reader = sock.makefile("rb")
        try:
            for line in reader:
                self._handle(conn, json.loads(line))
        except (OSError, ValueError):
            pass
        finally:
            with contextlib.suppress(OSError):
                sock.close()

    def _handle(self, conn: _Connection, msg: dict[str, Any]) -> None:
        if msg.get("op") == "hello":
            conn.send({"version": self.detector.version})
            return
        if msg.get("op") == "stats":
            conn.send(dict(self.stats))
            return
        rid = int(msg.get("id", 0))
        try:
            grey = _read_frames(str(msg["shm"]), msg["frames"])
        except (OSError, KeyError, ValueError, TypeError):
            conn.send({"id": rid, "error": "bad request"})
            return
        req = _Request(conn, rid, grey, [None] * len(grey), len(grey))
        self.stats["requests"] += 1
        if not grey:
            conn.send({"id": rid, "boxes": []})
        for i in range(len(grey)):
            self._frames.put((req, i))

    def _take_batch(self) -> list[tuple[_Request, int]]:
        first = self._frames.get()
        batch = [first]
        deadline = time.monotonic() + self.batch_wait
        while len(batch) < self.max_batch:
            left = deadline - time.monotonic()
            try:
                batch.append(self._frames.get(timeout=max(0.0, left)) if left > 0
                             else self._frames.get_nowait())
            except queue_mod.Empty:
                break
        return batch

    def _batch_loop(self) -> None:
        while not self._stop.is_set():
            batch = self._take_batch()
            groups: dict[tuple[int, int], list[tuple[_Request, int]]] = {}
            for req, i in batch:
                g = req.grey[i]
                key = (-(-g.shape[0] // 64), -(-g.shape[1] // 64))
                groups.setdefault(key, []).append((req, i))
            for items in groups.values():
                self._run(items)

    def _run(self, items: list[tuple[_Request, int]]) -> None:
        self.stats["batches"] += 1
        self.stats["frames"] += len(items)
        self.stats["largest_batch"] = max(self.stats["largest_batch"], len(items))
        started = time.monotonic()
        try:
            found = detect_grey(self.detector, [req.grey[i] for req, i in items])
        except Exception as err:  # answer every waiting worker rather than hang them
            for req, _ in items:
                req.fail(type(err).__name__)
            if self.metrics is not None:
                self.metrics.alive(False)
            return
        if self.metrics is not None:
            self.metrics.batch(len(items), time.monotonic() - started)
        for (req, i), boxes in zip(items, found, strict=True):
            req.results[i] = boxes
            req.pending -= 1
            if req.pending == 0 and not req.done:
                req.done = True
                req.conn.send({"id": req.rid, "boxes": [
                    [[b.x0, b.y0, b.x1, b.y1, round(b.score, 4)] for b in fb or []]
                    for fb in req.results]})


# --------------------------------------------------------------------------- entry points


def socket_path(settings: Settings) -> Path:
    return settings.pixels.socket_path(settings.runtime_dir)


def run_scrubber(settings: Settings) -> None:
    """The scrubber process's main function: load the model, serve until killed."""
    import signal

    import torch

    from gateway.pixels.model import load_detector

    px = settings.pixels
    torch.set_num_threads(px.service.scrubber_threads or os.cpu_count() or 1)
    det = load_detector(px.weights_path(), px.model.device, px.model.threshold)
    metrics = None
    if settings.metrics.enabled and os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from gateway.observe.metrics import GatewayMetrics

        metrics = GatewayMetrics().scrubber  # serve spawned us in multiprocess mode
        metrics.alive(True)
    server = Scrubber(det, socket_path(settings), px.service.max_batch_frames,
                      px.service.batch_wait_ms, metrics)
    signal.signal(signal.SIGTERM, lambda *_: server.stop())
    server.serve_forever()


def start_scrubber(settings: Settings) -> multiprocessing.process.BaseProcess:
    """Start the scrubber as a child process (spawned, so CUDA initialises cleanly).

    Call it from ``serve`` before the workers start; :func:`wait_ready` waits for its socket.
    Terminate it (SIGTERM) at shutdown; it removes its socket.
    """
    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(target=run_scrubber, args=(settings,), name="pixel-scrubber",
                       daemon=True)
    proc.start()
    return proc


def wait_ready(path: Path, timeout: float = 60.0,
               proc: multiprocessing.process.BaseProcess | None = None) -> bool:
    """Wait until the scrubber answers on ``path``; False on timeout or if ``proc`` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and not proc.is_alive():
            return False
        try:
            c = ScrubberClient(path, timeout=2.0)
            _ = c.version
            c.close()
            return True
        except ScrubberUnavailable:
            time.sleep(0.05)
    return False


def scrubber_answers(settings: Settings, timeout: float = 2.0) -> bool:
    """Whether a scrubber (of ``serve`` on the same spool, or ``pixels scrubber``) answers on
    the configured socket now."""
    client = ScrubberClient(socket_path(settings), timeout)
    try:
        _ = client.version
        return True
    except (ScrubberUnavailable, ValueError):
        return False
    finally:
        client.close()


def build_client(settings: Settings, mode: str | None = None) -> DetectorClient:
    """The client the stage uses: in-process or through the scrubber, per settings."""
    px = settings.pixels
    if (mode or px.service.mode) == "inprocess":
        return InProcessClient(px)
    return ScrubberClient(socket_path(settings), px.service.timeout_seconds,
                          px.service.max_batch_frames)
