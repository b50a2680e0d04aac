"""The forwarder process: one thread per destination, plus the janitor of sent files.

Forwarders run in a process of their own rather than in the serve process: sending and
receiving are both pynetdicom code that needs the GIL for every PDU, and in one process the
two paths slowed each other down (measured in docs/performance.md). Destination health is
published to ``<runtime folder>/destinations.json`` for the serve process (status, readiness):
not in the spool, which may be full while the forwarder is what frees it.

A destination's thread that ends while the process runs (the job database went away under
it, a spool file could not be moved) is started again after a growing delay (up to 10 s), so
that the node recovers by itself once the condition is over.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from gateway.config import Settings
from gateway.forward.scu import DestinationHealth, Forwarder, Observer
from gateway.jobs.states import JobState
from gateway.jobs.store import JobStore
from gateway.observe.logs import get_logger
from gateway.spool import Spool

log = get_logger("gateway.forward")
HEALTH_FILE = "destinations.json"


class Janitor:
    """Removes the spool files of sent jobs once their retention has passed."""

    def __init__(self, store: JobStore, spool: Spool, keep_seconds: float) -> None:
        self._store = store
        self._spool = spool
        self._keep = keep_seconds

    def on_sent(self, job_ids: Sequence[str]) -> None:
        if self._keep <= 0:
            for job_id in job_ids:
                self._spool.remove_job(job_id)

    def sweep(self) -> int:
        """Remove files of sent jobs older than the retention; returns how many jobs."""
        if self._keep <= 0:
            return 0
        cutoff = time.time() - self._keep
        old = {
            p.stem
            for d in (self._spool.incoming, self._spool.outgoing)
            for p in d.glob("*.dcm")
            if p.stat().st_mtime < cutoff
        }
        removed = 0
        for job_id in old:
            info = self._store.get(job_id)
            if info is not None and info.state == JobState.SENT:
                self._spool.remove_job(job_id)
                removed += 1
        return removed


def health_path(runtime: Path) -> Path:
    return runtime / HEALTH_FILE


def write_health(runtime: Path, forwarders: Sequence[Forwarder]) -> None:
    """Publish each destination's health atomically (a small JSON file)."""
    path = health_path(runtime)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {f.dest.name: {**asdict(f.health), "updated": time.time()} for f in forwarders}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def read_health(runtime: Path) -> dict[str, DestinationHealth]:
    """The last published health of each destination (empty before the first report)."""
    try:
        data = json.loads(health_path(runtime).read_text())
    except (OSError, ValueError):
        return {}
    out = {}
    for name, h in data.items():
        out[name] = DestinationHealth(
            up=bool(h.get("up")),
            last_contact=float(h.get("last_contact", 0.0)),
            consecutive_failures=int(h.get("consecutive_failures", 0)),
            down_since=float(h.get("down_since", 0.0)),
        )
    return out


def _ignore(_name: str, _labels: dict[str, str], _value: float) -> None:
    return None


def _observer(settings: Settings) -> Observer:
    """This process's metrics (multiprocess files set up by serve before spawning it)."""
    if not settings.metrics.enabled:
        return _ignore
    from gateway.observe.metrics import GatewayMetrics

    return GatewayMetrics().observe


def run_forwarders(settings: Settings, stop: threading.Event) -> None:
    """Run every destination's forwarder and the janitor until ``stop`` is set."""
    from gateway.app import configure_pynetdicom, open_store

    spool = Spool(settings.spool.root)
    configure_pynetdicom(spool.tmp)
    _engine, store = open_store(settings)
    janitor = Janitor(store, spool, settings.spool.keep_sent_seconds)
    observe = _observer(settings)
    forwarders = [
        Forwarder(dest, store, spool, stop, janitor.on_sent, observe=observe)
        for dest in settings.destinations
    ]
    threads = [_DestinationThread(f, store) for f in forwarders]
    last_sweep = time.monotonic()
    while not stop.wait(1.0):
        for t in threads:
            t.restart_if_ended(stop)
        with contextlib.suppress(OSError):
            write_health(settings.runtime_dir, forwarders)
        if time.monotonic() - last_sweep > 30.0:
            with contextlib.suppress(Exception):
                janitor.sweep()
            last_sweep = time.monotonic()
    for t in threads:
        t.join(30)
    with contextlib.suppress(OSError):
        write_health(settings.runtime_dir, forwarders)
    _engine.dispose()


class _DestinationThread:
    """The thread running one destination's :class:`Forwarder`, started again when it ends
    before the process is told to stop: after 1 s, then doubling up to 10 s while it keeps
    ending within a minute. The deliveries it was sending go back to pending first (this
    process is the only sender of the node's deliveries to that destination)."""

    def __init__(self, forwarder: Forwarder, store: JobStore) -> None:
        self._forwarder = forwarder
        self._store = store
        self._restarts = 0
        self._ended_at = 0.0
        self._thread = self._start()

    def _start(self) -> threading.Thread:
        name = f"forward-{self._forwarder.dest.name}"
        thread = threading.Thread(target=self._forwarder.run, name=name, daemon=True)
        thread.start()
        self._started_at = time.monotonic()
        return thread

    def restart_if_ended(self, stop: threading.Event) -> None:
        if self._thread.is_alive() or stop.is_set():
            return
        now = time.monotonic()
        if not self._ended_at:
            self._ended_at = now  # its exception was logged by the thread excepthook
            if now - self._started_at > 60.0:
                self._restarts = 0
            log.warning("forwarder_thread_ended", destination=self._forwarder.dest.name)
        if now - self._ended_at < min(10.0, 2.0**self._restarts):
            return
        self._restarts += 1
        try:
            self._store.recover_deliveries(self._forwarder.dest.name)
        except Exception as exc:  # the database is still away: try again later
            self._ended_at = now
            log.warning("forwarder_recovery_failed", destination=self._forwarder.dest.name,
                        exc_type=type(exc).__name__)
            return
        self._ended_at = 0.0
        self._thread = self._start()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


def forwarder_main(settings: Settings, parent_pid: int) -> None:
    """Entry point of the forwarder process (spawned by serve); it stops on SIGTERM or when its
    parent is gone (no shared multiprocessing.Event: see ``worker_main``)."""
    from gateway.observe.logs import configure_logging, get_logger
    from gateway.pipeline.worker import _set_parent_death_signal

    _set_parent_death_signal()
    configure_logging(settings.logging, process="forwarder")
    local = threading.Event()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: local.set())

    def watch() -> None:
        while not local.is_set():
            if local.wait(0.2) or os.getppid() != parent_pid:
                local.set()

    threading.Thread(target=watch, name="stop-watch", daemon=True).start()
    try:
        run_forwarders(settings, local)
    except Exception as exc:
        # multiprocessing would print the traceback, message included, to stderr.
        get_logger("gateway.forward").error("forwarder_failed", exc_type=type(exc).__name__)
        raise SystemExit(1) from None
