"""Composition and lifecycle of ``deid-gateway serve``: start-up, serve, graceful shutdown.

One serve process runs the SCP (a thread per association) and the metrics endpoint; a forwarder
process runs a thread per destination and the janitor; a pool of worker processes runs the
pipeline; the embedded sink, when enabled, is a child process of its own. Metrics of every
process are collected in prometheus-client's multiprocess mode (see
:mod:`gateway.observe.metrics`).

SIGTERM stops accepting associations, lets in-flight work finish (or hands it back to the
queue), and exits with nothing lost; the next start resumes every unfinished job.
"""

from __future__ import annotations

import contextlib
import fcntl
import multiprocessing as mp
import os
import shutil
import signal
import threading
import time
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Engine

from gateway import __version__, flowcontrol
from gateway.config import Settings
from gateway.db import make_engine, upgrade
from gateway.forward.process import forwarder_main, read_health
from gateway.forward.scu import DestinationHealth
from gateway.jobs.decisions import load_rules
from gateway.jobs.store import JobStore
from gateway.observe.endpoint import MetricsServer
from gateway.observe.logs import configure_logging, get_logger
from gateway.observe.metrics import (
    GatewayMetrics,
    Observer,
    ServeState,
    StateCollector,
    enable_multiprocess,
    exposition_registry,
    process_dead,
)
from gateway.observe.readiness import Readiness
from gateway.pipeline.compose import ReleasePipelines, build_pipeline
from gateway.pipeline.stage import StageServices
from gateway.pipeline.worker import JobRunner, worker_main
from gateway.receive import streamfile
from gateway.receive.scp import SpoolBudget, StoreHandler, start_receiver
from gateway.sink import run_sink
from gateway.spool import Spool

log = get_logger("gateway.app")


class StartupError(Exception):
    """The gateway cannot start; the message says why and what to do."""


def configure_pynetdicom(tmpdir: Path) -> None:
    """Process-wide pynetdicom switches of the serve process (set once at start-up)."""
    from pynetdicom import _config

    flowcontrol.install()
    streamfile.install(tmpdir)  # received streams land in the spool; a full disk: 0xA700
    _config.STORE_RECV_CHUNKED_DATASET = True
    _config.STORE_SEND_CHUNKED_DATASET = True
    _config.UNRESTRICTED_STORAGE_SERVICE = True
    _config.LOG_REQUEST_IDENTIFIERS = False
    _config.LOG_RESPONSE_IDENTIFIERS = False


def open_store(settings: Settings) -> tuple[Engine, JobStore]:
    engine = make_engine(settings.database.url, settings.database.echo)
    return engine, JobStore(engine, settings.node_id)


def uses_scrubber(settings: Settings) -> bool:
    """A pixel stage runs, with the detector in a scrubber process of its own."""
    return "pixels" in settings.pipeline.stages and settings.pixels.service.mode == "scrubber"


def needs_pseudonyms(settings: Settings) -> bool:
    return "deidentify" in settings.pipeline.stages


def build_services(settings: Settings) -> StageServices:
    """Per-process resources for the stages: the pseudonym store when de-identifying.

    Built inside each worker process (never before a fork): database connections and caches
    are per process; consistency across processes comes from the keyed derivation.
    """
    services = StageServices(settings=settings, memory_dir=settings.runtime_dir)
    if needs_pseudonyms(settings):
        from gateway.pseudonyms.factory import open_pseudonymizer

        services.pseudonymizer = open_pseudonymizer(settings)
    return services


def _ignore(_name: str, _labels: dict[str, str], _value: float) -> None:
    return None


def build_worker(
    settings: Settings, owner: str, index: int = 0
) -> tuple[JobRunner, JobStore, StageServices]:
    """Everything one worker process needs (called inside the spawned process).

    The worker's metrics go to the multiprocess files that serve set up before spawning it;
    a pixel stage finds them as ``services.extras["metrics"]`` (its ``.scrubber`` view).
    """
    configure_logging(settings.logging, process=f"worker-{index}")
    engine, store = open_store(settings)
    spool = Spool(settings.spool.root)
    services = build_services(settings)
    observe: Observer = _ignore
    if settings.metrics.enabled:
        metrics = GatewayMetrics(calling_aes=allowed_titles(settings))
        services.extras["metrics"] = metrics
        observe = metrics.observe
    stages = build_pipeline(settings.pipeline.stages, services)
    # jobs an operator released with their own profile or site override
    release = ReleasePipelines(stages, services, lambda sha256: load_rules(engine, sha256))
    flush = getattr(services.pseudonymizer, "flush", None)
    runner = JobRunner(
        settings, store, spool, stages, owner, observe=observe, flush=flush, worker=str(index),
        release=release,
    )
    return runner, store, services


def allowed_titles(settings: Settings) -> list[str]:
    return [c.ae_title for c in settings.receiver.allowed_callers]


def sink_main(settings: Settings) -> None:
    """Entry point of the embedded sink's process: the same PHI-free logging as the rest."""
    configure_logging(settings.logging, process="sink")
    run_sink(settings.sink)


class SpoolLock:
    """One serve process per spool (and per runtime folder): an exclusive lock file held for
    the process lifetime."""

    def __init__(self, path: Path, what: str = "spool") -> None:
        self.path = path
        self.what = what
        self._fh: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")  # noqa: SIM115 (held open until release)
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise StartupError(
                f"another gateway is running on the {self.what} {self.path.parent} (lock held)"
            ) from None
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


def prepare_runtime(runtime: Path, spool_root: Path) -> Path:
    """Create the runtime folder (mode 0700) and refuse one on the spool's file system (the
    same ``st_dev``): a process writing a memory-mapped file there would be killed (SIGBUS)
    when the spool fills, the forwarder that frees it included."""
    advice = ("set runtime.dir to a folder on another file system than the spool, such as a "
              "tmpfs (/dev/shm, /run)")
    try:
        runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
        same = os.stat(runtime).st_dev == os.stat(spool_root).st_dev
    except OSError as err:
        raise StartupError(f"runtime folder {runtime}: {err.strerror}; {advice}") from None
    if same:
        raise StartupError(
            f"runtime folder {runtime} is on the same file system as the spool {spool_root}: "
            f"a full spool would stop the processes that free it; {advice}"
        )
    return runtime.resolve()


class Gateway:
    """The serve process: start-up, serve, shutdown as three visible steps."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.spool = Spool(settings.spool.root)
        self.stop = threading.Event()  # set by SIGTERM/SIGINT: begin shutdown
        self._ctx = mp.get_context("spawn")
        # Parent-side flags only; children are stopped with SIGTERM (see worker_main).
        self._worker_stop = threading.Event()
        self._fwd_stop = threading.Event()  # forwarders run on until workers have stopped
        self._workers: list[BaseProcess] = []
        self._forwarder: BaseProcess | None = None
        self._sink: BaseProcess | None = None
        self._scrubber: BaseProcess | None = None
        self._server: Any = None
        self._handler: StoreHandler | None = None
        self._lock = SpoolLock(self.spool.root / "gateway.lock")
        self.runtime = settings.runtime_dir
        self._runtime_lock = SpoolLock(self.runtime / "gateway.lock", "runtime folder")
        self.engine: Engine | None = None
        self.store: JobStore | None = None
        self.metrics: GatewayMetrics | None = None
        self._metrics_dir: Path | None = None
        self._http: MetricsServer | None = None
        self._readiness: Readiness | None = None

    # -- start-up --------------------------------------------------------------------------
    def start(self) -> None:
        s = self.settings
        self.spool.create()
        self._lock.acquire()
        self.runtime = prepare_runtime(self.runtime, self.spool.root)
        self._runtime_lock.acquire()
        observe = self._start_metrics()
        self.engine, self.store = open_store(s)
        upgrade(self.engine)
        if needs_pseudonyms(s):
            self._check_secret()
        jobs, deliveries = self.store.recover_node()
        partial = self.spool.clean_tmp()
        log.info("recovered", jobs=jobs, deliveries=deliveries, partial_files=partial)
        configure_pynetdicom(self.spool.tmp)
        if s.sink_enabled:
            self._sink = self._ctx.Process(target=sink_main, args=(s,), name="sink")
            self._sink.start()
        if uses_scrubber(s):
            self._scrubber = self._start_scrubber()
        for i in range(s.workers.count):
            self._workers.append(self._spawn_worker(i))
        self._forwarder = self._spawn_forwarder()
        self._start_endpoint()
        budget = SpoolBudget(self.spool, s.spool)
        handler = StoreHandler(
            self.store, self.spool, budget, s.receiver.ae_title, observe=observe
        )
        self._handler = handler
        self._server = start_receiver(s.receiver, handler, observe)
        log.info(
            "started",
            ae_title=s.receiver.ae_title,
            address=s.receiver.bind_address,
            port=self.port,
            workers=s.workers.count,
            destinations=[d.name for d in s.destinations],
            sink=s.sink_enabled,
            metrics_port=self._http.port if self._http is not None else None,
            runtime=str(self.runtime),
        )

    # -- metrics ---------------------------------------------------------------------------
    def _start_metrics(self) -> Observer:
        """Multiprocess metrics for this run (before any child is spawned); the observer."""
        s = self.settings
        if not s.metrics.enabled:
            return _ignore
        self._metrics_dir = enable_multiprocess(self.runtime / "metrics")
        self.metrics = GatewayMetrics(calling_aes=allowed_titles(s))
        self.metrics.initialise(s.pipeline.stages, [d.name for d in s.destinations])
        return self.metrics.observe

    def _start_endpoint(self) -> None:
        """/metrics, /healthz and /readyz, once everything they read exists."""
        s = self.settings
        if not s.metrics.enabled or self._metrics_dir is None:
            return
        assert self.store is not None and self.engine is not None
        scrubber = uses_scrubber(s)
        state = ServeState(
            store=self.store, spool=self.spool, spool_limit_bytes=s.spool.max_bytes,
            spool_min_free_bytes=s.spool.min_free_bytes, destinations=self._health,
            workers=self._alive, scrubber_configured=scrubber, version=__version__,
            node=s.node_id, forwarder=self._forwarder_alive,
        )
        self._readiness = Readiness(
            engine=self.engine, spool=self.spool, spool_limit_bytes=s.spool.max_bytes,
            spool_min_free_bytes=s.spool.min_free_bytes, workers=self._alive,
            destinations=self._health, scrubber_configured=scrubber,
            metrics_dir=self._metrics_dir, forwarder=self._forwarder_alive,
            destination_grace_seconds=s.metrics.ready_destination_grace_seconds,
        )
        registry = exposition_registry(self._metrics_dir, [StateCollector(state)])
        try:
            self._http = MetricsServer(
                s.metrics.bind_address, s.metrics.port, registry, self._readiness
            ).start()
        except OSError as err:
            raise StartupError(
                f"metrics endpoint {s.metrics.bind_address}:{s.metrics.port}: {err.strerror}"
            ) from None

    def _health(self) -> dict[str, Any]:
        """What the forwarder process last published about each destination."""
        published = read_health(self.runtime)
        return {d.name: published.get(d.name, DestinationHealth()) for d in
                self.settings.destinations}

    def _alive(self) -> list[bool]:
        return [p.is_alive() for p in self._workers]

    def _forwarder_alive(self) -> bool:
        return self._forwarder is not None and self._forwarder.is_alive()

    def _check_secret(self) -> None:
        """The site secret exists (created on a first start with the embedded defaults) and
        is the one the pseudonym map was written with; otherwise refuse to start."""
        from gateway.pseudonyms.factory import open_pseudonymizer
        from gateway.pseudonyms.secret import SecretError, ensure_secret

        try:
            ensure_secret(self.settings)
            open_pseudonymizer(self.settings).close()
        except SecretError as err:
            raise StartupError(str(err)) from None
        except Exception as err:
            raise StartupError(f"pseudonym store: {type(err).__name__}: {err}") from None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1]) if self._server is not None else 0

    def _spawn_worker(self, index: int) -> BaseProcess:
        p = self._ctx.Process(
            target=worker_main,
            args=(self.settings, index, os.getpid()),
            name=f"worker-{index}",
        )
        p.start()  # a spawned child inherits PROMETHEUS_MULTIPROC_DIR set by _start_metrics
        return p

    def _start_scrubber(self, timeout: float = 180.0) -> BaseProcess:
        """The one process that owns the text detector (DESIGN decision 6), up before the
        workers that send it frames."""
        from gateway.pixels.service import socket_path, start_scrubber, wait_ready

        proc = start_scrubber(self.settings)
        if not wait_ready(socket_path(self.settings), timeout, proc):
            proc.terminate()
            raise StartupError("the pixel scrubber did not start (torch installed? weights?)")
        return proc

    def _spawn_forwarder(self) -> BaseProcess:
        p = self._ctx.Process(
            target=forwarder_main,
            args=(self.settings, os.getpid()),
            name="forwarder",
        )
        p.start()
        return p

    # -- serve -----------------------------------------------------------------------------
    def serve_forever(self) -> None:
        """Supervise until stopped: a worker or forwarder process that dies is replaced
        (at most once per 10 s each, so that one failing at start-up cannot spin the CPU)."""
        respawned: dict[str, float] = {}

        def due(key: str, proc: BaseProcess | None, stop: Any) -> bool:
            if proc is None or proc.is_alive() or stop.is_set():
                return False
            if time.monotonic() - respawned.get(key, -1e9) < 10.0:
                return False
            log.warning("process_died", process=key, exitcode=proc.exitcode)
            if self._metrics_dir is not None and proc.pid is not None:
                process_dead(proc.pid, self._metrics_dir)  # its heartbeats go, counts stay
            respawned[key] = time.monotonic()
            return True

        while not self.stop.wait(1.0):
            for i, p in enumerate(self._workers):
                if due(f"worker-{i}", p, self._worker_stop):
                    self._workers[i] = self._spawn_worker(i)
            if due("forwarder", self._forwarder, self._fwd_stop):
                self._forwarder = self._spawn_forwarder()
            if due("scrubber", self._scrubber, self._worker_stop):
                # meanwhile pixel stages answer "retry later": nothing passes unscrubbed
                with contextlib.suppress(StartupError):
                    self._scrubber = self._start_scrubber(timeout=60.0)

    # -- shutdown --------------------------------------------------------------------------
    def _stop_receiving(self, deadline: float) -> None:
        """Refuse new instances, let established associations finish until the deadline."""
        if self._handler is not None:
            self._handler.draining.set()  # an in-flight C-STORE finishes; later ones: 0xA700
        if self._server is not None:
            ae = self._server.ae
            self._server.shutdown()  # no new associations
            # Established associations may finish what they are sending; a connection that
            # has not even asked for an association yet is simply closed.
            while (
                any(a.is_established for a in ae.active_associations)
                and time.monotonic() < deadline
            ):
                time.sleep(0.1)
            for assoc in ae.active_associations:
                assoc.abort()  # unacknowledged instances stay with their senders

    def shutdown(self, grace: float = 30.0) -> None:
        """Stop accepting, let in-flight work finish or hand it back, then exit."""
        log.info("stopping")
        if self._readiness is not None:
            self._readiness.stopping = True  # load balancers see 503 from now on
        deadline = time.monotonic() + grace
        self._stop_receiving(deadline)
        self._worker_stop.set()
        _stop_processes(self._workers, deadline)  # batches finish; leases of the rest return
        self.stop.set()
        self._fwd_stop.set()  # in-flight sends finish; the rest waits for the next start
        if self._forwarder is not None:
            _stop_processes([self._forwarder], max(deadline, time.monotonic() + 5.0))
        for proc in (self._scrubber, self._sink):
            if proc is not None:
                proc.terminate()
                proc.join(5)
        if self._http is not None:
            self._http.stop()
        if self._metrics_dir is not None:  # this run's samples; the next start begins afresh
            shutil.rmtree(self._metrics_dir, ignore_errors=True)
        if self.engine is not None:
            self.engine.dispose()
        self._runtime_lock.release()
        self._lock.release()
        log.info("stopped")


def _stop_processes(procs: list[BaseProcess], deadline: float) -> None:
    """SIGTERM each live child, wait for them until ``deadline``, then SIGKILL the rest."""
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(max(0.1, deadline - time.monotonic()))
        if p.is_alive():
            p.kill()  # what it held is recovered at the next start
            p.join(5)


def serve(settings: Settings) -> int:
    """``deid-gateway serve``: run until SIGTERM or SIGINT."""
    configure_logging(settings.logging, process="serve")
    gw = Gateway(settings)
    signal.signal(signal.SIGTERM, lambda *_: gw.stop.set())
    signal.signal(signal.SIGINT, lambda *_: gw.stop.set())
    try:
        gw.start()
    except StartupError as err:
        log.error("startup_failed", error=str(err))
        gw.shutdown(grace=1.0)
        return 1
    try:
        gw.serve_forever()
    finally:
        gw.shutdown()
    return 0
