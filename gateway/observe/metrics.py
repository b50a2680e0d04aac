"""Every metric of the gateway, declared in this one module, with bounded labels (DESIGN 9).

Labels carry only AE titles, destination and stage names, modality, the SOP class *keyword*
from pydicom's UID dictionary, states and reason classes: never an identifier, a UID of an
instance or a patient value, and every label's set of values is bounded (see
:class:`BoundedValues`).

The pipeline never imports this module: the receiver, the job runner and the forwarders call an
:data:`Observer` with an event name, labels and a value, and :meth:`GatewayMetrics.observe`
maps each event to its metrics (the table in :meth:`GatewayMetrics.__init__`). The pixel scrubber,
which has counts of its own, calls the small :class:`ScrubberMetrics` view.

Worker processes write their samples to memory-mapped files (prometheus-client's multiprocess
mode): ``serve`` calls :func:`enable_multiprocess` on a directory of its own before it spawns
any child, the children inherit ``PROMETHEUS_MULTIPROC_DIR``, and the serve process's
``/metrics`` merges every file (:func:`exposition_registry`). Gauges derived from the database
(jobs per state, oldest job age) and from the serve process's own objects (destinations,
workers, spool) are computed at scrape time by :class:`StateCollector`, so the hot path never
queries the database for metrics.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from pydicom.uid import UID_dictionary

Observer = Callable[[str, dict[str, str], float], None]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
PREFIX = "deid"
OTHER = "other"
UNKNOWN = "unknown"
NONE = "none"

# The pipeline stage that scrubs pixels (DESIGN decision 6); /readyz checks the scrubber only
# when one of these is configured in pipeline.stages.
SCRUBBER_STAGES = frozenset({"pixels"})
# Steps timed besides the configured stages.
RECEIVE, DECODE, ENCODE, FORWARD = "receive", "decode", "encode", "forward"
DEIDENTIFY, VERIFY = "deidentify", "verify"

# Quarantine reason classes that are decisions, not errors (everything else counts as failed).
DECISION_CLASSES = frozenset({"filter", "leak", "pseudonym"})
KNOWN_REASON_CLASSES = (
    "filter", "leak", "pseudonym", "rule", "error", "decode", "encode", "missing", "spool",
    "retries", "transient", "forward", "disk_full", "storage_error", "database",
)
REJECT_REASONS = ("not_allowed", "too_many_associations", "other")
REFUSE_REASONS = ("spool_full", "disk_full", "cannot_understand", "spool_write", "database",
                  "shutting_down")

STAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                 10.0, 30.0, 60.0)
END_TO_END_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
                      1800.0, 3600.0, 14400.0, 86400.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
FPS_BUCKETS = (1, 2, 5, 10, 20, 30, 50, 100, 200, 500, 1000)

# Modality defined terms (PS3.3 C.7.3.1.1.1, current and retired); anything else is "other".
_MODALITY_TERMS = (
    "ANN AR ASMT AU BDUS BI BMD CFM CR CT CTPROTOCOL DMS DG DOC DX ECG EEG EMG EOG EPS ES FID "
    "GM HC HD IO IOL IVOCT IVUS KER KO LEN LS MG MR M3D NM OAM OCT OP OPM OPT OPTBSV OPTENF "
    "OPV OSS OT PA PLAN POS PR PT PX REG RESP RF RG RTDOSE RTIMAGE RTINTENT RTPLAN RTRAD "
    "RTRECORD RTSEGANN RTSTRUCT RWV SEG SM SMR SR SRF STAIN TEXTUREMAP TG US VA XA XAPROTOCOL "
    "XC AS CD CF CP CS DD DF DM DS EC FA FS LP MA MS OPR ST VF"
)
MODALITIES = frozenset(_MODALITY_TERMS.split())
_TOKEN = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def modality_label(value: str | None) -> str:
    """A Modality defined term as is; empty is "none"; any other value is "other"."""
    text = (value or "").strip().upper()
    if not text:
        return NONE
    return text if text in MODALITIES else OTHER


def sop_class_label(uid: str | None) -> str:
    """The keyword of a SOP class in pydicom's UID dictionary (``CTImageStorage``), else
    "unknown": the UID itself is never a label (a private class's UID could name a site)."""
    entry = UID_dictionary.get(str(uid or "").strip())
    if entry is None or entry[1] != "SOP Class" or not entry[4]:
        return UNKNOWN
    return str(entry[4])


def token_label(value: str | None, limit: int = 64) -> str:
    """A short name-like token (stage, reason class, destination) or "other"."""
    text = (value or "").strip()
    if not text:
        return NONE
    return text if len(text) <= limit and _TOKEN.match(text) else OTHER


class BoundedValues:
    """Admits at most ``limit`` distinct values of one label (plus the configured ones); every
    later value becomes "other", so that a flood of new AE titles cannot grow the series."""

    def __init__(self, limit: int, preset: Iterable[str] = ()) -> None:
        self._limit = limit
        self._seen: set[str] = {v for v in preset if v}
        self._lock = threading.Lock()

    def __call__(self, value: str | None) -> str:
        text = (value or "").strip()[:16]
        if not text:
            return NONE
        if text in self._seen:
            return text
        with self._lock:
            if len(self._seen) >= self._limit:
                return OTHER
            self._seen.add(text)
        return text


# -- multiprocess mode -----------------------------------------------------------------------
def enable_multiprocess(directory: Path) -> Path:
    """Make this process and every child spawned after this call write their samples under
    ``directory`` (wiped first: one directory per run; the spool lock makes it ours).

    The environment variable is how prometheus-client's children find the directory; the value
    class of this process is switched too, since the library chose it when it was imported.
    """
    from prometheus_client import values

    directory = directory.resolve()
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(directory)
    if not getattr(values.ValueClass, "_multiprocess", False):
        values.ValueClass = values.MultiProcessValue()
    return directory


def multiprocess_enabled() -> bool:
    from prometheus_client import values

    return bool(getattr(values.ValueClass, "_multiprocess", False))


def process_dead(pid: int, directory: Path) -> None:
    """Forget the live gauges (heartbeats) of a dead worker; its counters stay counted."""
    mark_process_dead(pid, str(directory))


def exposition_registry(directory: Path, collectors: Sequence[Any] = ()) -> CollectorRegistry:
    """The registry ``/metrics`` serves: every process's files merged, plus scrape-time
    collectors of the serve process."""
    registry = CollectorRegistry(auto_describe=False)
    MultiProcessCollector(registry, path=str(directory))
    for c in collectors:
        registry.register(c)
    return registry


def read_live_gauges(directory: Path) -> dict[str, float]:
    """Current values of the unlabelled live gauges (max over live processes), read from the
    multiprocess files; used by /readyz for the scrubber's heartbeat."""
    files = [str(p) for p in Path(directory).glob("gauge_live*.db")]
    out: dict[str, float] = {}
    for metric in MultiProcessCollector.merge(files, accumulate=False):
        for sample in metric.samples:
            if not sample.labels:
                out[sample.name] = max(out.get(sample.name, float("-inf")), sample.value)
    return out


# -- the metrics -----------------------------------------------------------------------------
def _name(short: str) -> str:
    return f"{PREFIX}_{short}"


class ScrubberMetrics:
    """What the pixel scrubber reports. Whichever process runs the model calls :meth:`batch`
    after each batch and :meth:`alive` at least every few seconds (and with ``False`` when the
    model cannot run); ``/readyz`` and the ``DeidScrubberDown`` alert read the heartbeat. Built
    without metrics (``parent=None``) every call does nothing."""

    def __init__(self, parent: GatewayMetrics | None) -> None:
        self._m = parent

    def batch(self, frames: int, seconds: float) -> None:
        """One batch of ``frames`` frames went through the detector in ``seconds``."""
        m = self._m
        if m is None:
            return
        m.scrubber_frames.inc(frames)
        m.scrubber_batch_frames.observe(frames)
        if seconds > 0:
            m.scrubber_frames_per_second.observe(frames / seconds)
        self.alive(True)

    def alive(self, ready: bool = True) -> None:
        """Heartbeat: the scrubber runs (``ready``) or is up but cannot scrub (``False``)."""
        if self._m is None:
            return
        self._m.scrubber_up.set(1.0 if ready else 0.0)
        self._m.scrubber_heartbeat.set(time.time())


def scrubber_metrics(extras: Mapping[str, Any]) -> ScrubberMetrics:
    """The scrubber's view for the pixel stage: ``scrubber_metrics(services.extras)``.

    Worker processes put their :class:`GatewayMetrics` in ``StageServices.extras["metrics"]``;
    with metrics disabled the view does nothing. A scrubber process of its own (spawned by
    ``serve`` after :func:`enable_multiprocess`) builds ``GatewayMetrics()`` once at its start
    and uses ``.scrubber``. Instances whose pixels were cleaned are counted from
    ``ctx.notes["pixels_cleaned"]`` by the job runner, not here.
    """
    metrics = extras.get("metrics")
    return metrics.scrubber if isinstance(metrics, GatewayMetrics) else ScrubberMetrics(None)


class GatewayMetrics:
    """The gateway's metrics; build one per process (after :func:`enable_multiprocess` in
    ``serve``; workers inherit the mode). ``registry`` is for in-process use (tests, tools):
    in multiprocess mode metrics are not registered, the files are the registry."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        calling_aes: Iterable[str] = (),
        max_ae_titles: int = 64,
    ) -> None:
        reg = registry
        self.calling_ae = BoundedValues(max_ae_titles, calling_aes)
        self.reason_class = BoundedValues(32, KNOWN_REASON_CLASSES)

        def counter(short: str, doc: str, labels: Sequence[str] = ()) -> Counter:
            return Counter(_name(short), doc, labels, registry=reg)

        def histogram(short: str, doc: str, buckets: Sequence[float],
                      labels: Sequence[str] = ()) -> Histogram:
            return Histogram(_name(short), doc, labels, registry=reg, buckets=buckets)

        def live_gauge(short: str, doc: str, labels: Sequence[str] = ()) -> Gauge:
            return Gauge(_name(short), doc, labels, registry=reg, multiprocess_mode="livemax")

        # Receiver
        self.associations_accepted = counter(
            "associations_accepted", "Associations accepted, by calling AE title.", ["calling_ae"])
        self.associations_rejected = counter(
            "associations_rejected", "Associations rejected, by reason.", ["reason"])
        self.received = counter(
            "instances_received", "Instances made durable and acknowledged with Success.",
            ["calling_ae", "modality", "sop_class"])
        self.refused = counter(
            "instances_refused", "C-STORE requests refused (0xA700/0xC000), by reason.",
            ["calling_ae", "reason"])
        self.received_bytes = counter(
            "received_bytes", "Bytes of instances received.", ["calling_ae"])
        # Pipeline
        self.filtered = counter("instances_filtered", "Instances dropped by a filter rule.",
                                ["modality"])
        self.scrubbed = counter("instances_scrubbed", "Instances whose pixels were scrubbed.")
        self.deidentified = counter("instances_deidentified",
                                    "Instances the de-identification stage completed.",
                                    ["modality"])
        self.verified = counter("instances_verified",
                                "Instances the leak check passed.", ["modality"])
        self.processed = counter("instances_processed",
                                 "Instances whose output is ready to forward.", ["modality"])
        self.failed = counter("instances_failed",
                              "Instances that failed with an error, by the step that failed.",
                              ["stage"])
        self.quarantined = counter("instances_quarantined",
                                   "Instances sent to quarantine, by reason class.",
                                   ["reason_class"])
        self.stage_outcomes = counter("stage_outcomes", "How each step ended, per instance.",
                                      ["stage", "outcome"])
        self.job_retries = counter("job_retries", "Jobs given back to the queue to retry.",
                                   ["reason_class"])
        self.stage_seconds = histogram("stage_duration_seconds",
                                       "Time one instance spends in one step.", STAGE_BUCKETS,
                                       ["stage"])
        self.worker_heartbeat = live_gauge(
            "worker_heartbeat_timestamp_seconds", "Last loop of each worker process (Unix time).",
            ["worker"])
        # Forwarders
        self.forwarded = counter("instances_forwarded",
                                 "Instances a destination confirmed.", ["destination", "modality"])
        self.forwarded_bytes = counter("forwarded_bytes", "Bytes of instances confirmed.",
                                       ["destination"])
        self.forward_retries = counter("forward_retries",
                                       "Deliveries retried after a transient refusal.",
                                       ["destination"])
        self.forward_failures = counter("forward_failures",
                                        "Deliveries failed permanently (job quarantined).",
                                        ["destination"])
        self.destination_outages = counter("destination_outages",
                                           "Times a destination could not be reached.",
                                           ["destination"])
        self.response_timeouts = counter(
            "forward_response_timeouts",
            "C-STOREs with no response within the destination's response timeout.",
            ["destination"])
        self.destination_probes = counter("destination_probes",
                                          "C-ECHO probes of a destination that was down.",
                                          ["destination"])
        self.destination_probe_failures = counter("destination_probe_failures",
                                                  "Probes the destination did not answer.",
                                                  ["destination"])
        self.end_to_end = histogram("end_to_end_seconds",
                                    "From receipt to the destination's confirmation.",
                                    END_TO_END_BUCKETS, ["destination"])
        # Scrubber
        self.scrubber_frames = counter("scrubber_frames", "Frames through the text detector.")
        self.scrubber_batch_frames = histogram("scrubber_batch_frames",
                                               "Frames per detector batch.", BATCH_BUCKETS)
        self.scrubber_frames_per_second = histogram("scrubber_frames_per_second",
                                                    "Detector rate of each batch.", FPS_BUCKETS)
        self.scrubber_up = live_gauge("scrubber_up", "1 while the scrubber can scrub.")
        self.scrubber_heartbeat = live_gauge("scrubber_heartbeat_timestamp_seconds",
                                             "Last heartbeat of the scrubber (Unix time).")
        self.metrics_errors = counter("metrics_errors", "Events the metrics could not record.")
        self.scrubber = ScrubberMetrics(self)
        self._handlers: dict[str, Callable[[Mapping[str, str], float], None]] = {
            "association_accepted": self._on_association_accepted,
            "association_rejected": self._on_association_rejected,
            "store_refused": self._on_store_refused,
            "stored": self._on_stored,
            "stage": self._on_stage,
            "scrubbed": self._on_scrubbed,
            "job_continue": self._on_job_continue,
            "job_filter": self._on_job_filter,
            "job_quarantine": self._on_job_quarantine,
            "job_retry": self._on_job_retry,
            "worker_heartbeat": self._on_worker_heartbeat,
            "forwarded": self._on_forwarded,
            "forward_failed": self._on_forward_failed,
            "forward_retry": self._on_forward_retry,
            "destination_down": self._on_destination_down,
            "response_timeout": self._on_response_timeout,
            "destination_probe": self._on_destination_probe,
            "destination_probe_failed": self._on_destination_probe_failed,
            "end_to_end": self._on_end_to_end,
        }

    def event_names(self) -> frozenset[str]:
        """The event names :meth:`observe` understands."""
        return frozenset(self._handlers)

    def observe(self, event: str, labels: dict[str, str], value: float) -> None:
        """The :data:`Observer` the pipeline calls; never raises into the hot path."""
        handler = self._handlers.get(event)
        if handler is None:
            return
        try:
            handler(labels, value)
        except Exception:
            self.metrics_errors.inc()

    def initialise(self, stages: Iterable[str], destinations: Iterable[str]) -> None:
        """Create the known label sets at zero so that rates and alerts see them from the start."""
        for stage in (RECEIVE, DECODE, *stages, ENCODE, FORWARD):
            self.stage_seconds.labels(stage)
            self.failed.labels(stage)
        for reason in REJECT_REASONS:
            self.associations_rejected.labels(reason)
        for cls in KNOWN_REASON_CLASSES:
            self.quarantined.labels(cls)
        for cls in ("transient", "spool"):
            self.job_retries.labels(cls)
        for dest in destinations:
            for metric in (self.forwarded_bytes, self.forward_retries, self.forward_failures,
                           self.destination_outages, self.response_timeouts,
                           self.destination_probes, self.destination_probe_failures,
                           self.end_to_end):
                metric.labels(dest)

    # -- event handlers ------------------------------------------------------------------
    def _on_association_accepted(self, labels: Mapping[str, str], _value: float) -> None:
        self.associations_accepted.labels(self.calling_ae(labels.get("calling_ae"))).inc()

    def _on_association_rejected(self, labels: Mapping[str, str], _value: float) -> None:
        reason = labels.get("reason", OTHER)
        self.associations_rejected.labels(reason if reason in REJECT_REASONS else OTHER).inc()

    def _on_store_refused(self, labels: Mapping[str, str], _value: float) -> None:
        reason = labels.get("reason", OTHER)
        self.refused.labels(self.calling_ae(labels.get("calling_ae")),
                            reason if reason in REFUSE_REASONS else OTHER).inc()

    def _on_stored(self, labels: Mapping[str, str], value: float) -> None:
        ae = self.calling_ae(labels.get("calling_ae"))
        self.received.labels(ae, modality_label(labels.get("modality")),
                             sop_class_label(labels.get("sop_class_uid"))).inc()
        self.received_bytes.labels(ae).inc(max(0.0, value))

    def _on_stage(self, labels: Mapping[str, str], value: float) -> None:
        stage = token_label(labels.get("stage"))
        outcome = token_label(labels.get("outcome"))
        self.stage_seconds.labels(stage).observe(max(0.0, value))
        self.stage_outcomes.labels(stage, outcome).inc()
        if outcome == "continue" and stage in (DEIDENTIFY, VERIFY):
            counter = self.deidentified if stage == DEIDENTIFY else self.verified
            counter.labels(modality_label(labels.get("modality"))).inc()

    def _on_scrubbed(self, _labels: Mapping[str, str], _value: float) -> None:
        self.scrubbed.inc()

    def _on_job_continue(self, labels: Mapping[str, str], _value: float) -> None:
        self.processed.labels(modality_label(labels.get("modality"))).inc()

    def _on_job_filter(self, labels: Mapping[str, str], _value: float) -> None:
        self.filtered.labels(modality_label(labels.get("modality"))).inc()

    def _on_job_quarantine(self, labels: Mapping[str, str], _value: float) -> None:
        cls = self.reason_class(token_label(labels.get("reason_class"), 32))
        self.quarantined.labels(cls).inc()
        if cls not in DECISION_CLASSES:
            self.failed.labels(token_label(labels.get("stage"))).inc()

    def _on_job_retry(self, labels: Mapping[str, str], _value: float) -> None:
        cls = self.reason_class(token_label(labels.get("reason_class"), 32))
        self.job_retries.labels(cls).inc()

    def _on_worker_heartbeat(self, labels: Mapping[str, str], value: float) -> None:
        self.worker_heartbeat.labels(token_label(labels.get("worker"), 8)).set(value)

    def _on_forwarded(self, labels: Mapping[str, str], value: float) -> None:
        dest = token_label(labels.get("destination"))
        self.forwarded.labels(dest, modality_label(labels.get("modality"))).inc()
        self.forwarded_bytes.labels(dest).inc(max(0.0, value))

    def _on_forward_failed(self, labels: Mapping[str, str], _value: float) -> None:
        self.forward_failures.labels(token_label(labels.get("destination"))).inc()
        self.failed.labels(FORWARD).inc()
        self.quarantined.labels("forward").inc()

    def _on_forward_retry(self, labels: Mapping[str, str], _value: float) -> None:
        self.forward_retries.labels(token_label(labels.get("destination"))).inc()

    def _on_destination_down(self, labels: Mapping[str, str], _value: float) -> None:
        self.destination_outages.labels(token_label(labels.get("destination"))).inc()

    def _on_response_timeout(self, labels: Mapping[str, str], _value: float) -> None:
        self.response_timeouts.labels(token_label(labels.get("destination"))).inc()

    def _on_destination_probe(self, labels: Mapping[str, str], _value: float) -> None:
        self.destination_probes.labels(token_label(labels.get("destination"))).inc()

    def _on_destination_probe_failed(self, labels: Mapping[str, str], _value: float) -> None:
        self.destination_probe_failures.labels(token_label(labels.get("destination"))).inc()

    def _on_end_to_end(self, labels: Mapping[str, str], value: float) -> None:
        self.end_to_end.labels(token_label(labels.get("destination"))).observe(max(0.0, value))


# -- scrape-time gauges of the serve process -------------------------------------------------
class HealthView(Protocol):
    """What a forwarder knows of its destination (``gateway.forward.scu.DestinationHealth``)."""

    up: bool
    last_contact: float
    consecutive_failures: int


class StoreView(Protocol):
    def counts(self) -> dict[str, int]: ...

    def delivery_counts(self) -> dict[str, dict[str, int]]: ...

    def oldest_age_seconds(self) -> dict[str, float]: ...


class SpoolView(Protocol):
    root: Path

    def used_bytes(self) -> int: ...

    def free_bytes(self) -> int: ...


@dataclass(frozen=True)
class ServeState:
    """The serve process's objects the scrape reads (callables: read at scrape time)."""

    store: StoreView
    spool: SpoolView
    spool_limit_bytes: int
    spool_min_free_bytes: int
    destinations: Callable[[], Mapping[str, HealthView]]
    workers: Callable[[], Sequence[bool]]
    scrubber_configured: bool
    version: str
    node: str
    forwarder: Callable[[], bool] = lambda: True


def _gauge(short: str, doc: str, labels: Sequence[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(_name(short), doc, labels=list(labels))


class StateCollector:
    """Gauges computed when Prometheus scrapes: database counts, spool, destinations (as the
    forwarder process last published them), worker and forwarder processes."""

    def __init__(self, state: ServeState) -> None:
        self._s = state

    def describe(self) -> list[Metric]:
        return []  # computed at scrape time only; registering must not query the database

    def collect(self) -> Iterator[Metric]:
        s = self._s
        info = _gauge("build_info", "The gateway's version and node.", ["version", "node"])
        info.add_metric([s.version, token_label(s.node)], 1.0)
        yield info
        yield from self._database()
        yield from self._spool()
        yield from self._destinations()
        yield from self._workers()
        scrubber = _gauge("scrubber_configured", "1 when a pixel stage is in the pipeline.")
        scrubber.add_metric([], 1.0 if s.scrubber_configured else 0.0)
        yield scrubber

    def _database(self) -> Iterator[Metric]:
        up = _gauge("database_up", "1 when the job database answered this scrape.")
        try:
            counts = self._s.store.counts()
            oldest = self._s.store.oldest_age_seconds()
            deliveries = self._s.store.delivery_counts()
        except Exception:
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        yield up
        jobs = _gauge("jobs", "Jobs in the database per state.", ["state"])
        for state, n in sorted(counts.items()):
            jobs.add_metric([state], float(n))
        yield jobs
        age = _gauge("job_oldest_age_seconds",
                     "Seconds since the oldest job of each state last changed.", ["state"])
        for state, seconds in sorted(oldest.items()):
            age.add_metric([state], seconds)
        yield age
        dgauge = _gauge("deliveries", "Deliveries per destination and state.",
                        ["destination", "state"])
        for dest, by_state in sorted(deliveries.items()):
            for state, n in sorted(by_state.items()):
                dgauge.add_metric([token_label(dest), state], float(n))
        yield dgauge

    def _spool(self) -> Iterator[Metric]:
        s = self._s
        values = {
            "spool_limit_bytes": ("Unfinished bytes above which receiving is refused.",
                                  float(s.spool_limit_bytes)),
            "spool_min_free_bytes": ("Free disk below which receiving is refused.",
                                     float(s.spool_min_free_bytes)),
        }
        try:
            values["spool_bytes"] = ("Bytes of unfinished work in the spool.",
                                     float(s.spool.used_bytes()))
            usage = shutil.disk_usage(s.spool.root)
            values["spool_free_bytes"] = ("Free bytes on the spool's file system.",
                                          float(usage.free))
            values["spool_disk_bytes"] = ("Size of the spool's file system.", float(usage.total))
        except OSError:
            pass
        for short, (doc, value) in values.items():
            g = _gauge(short, doc)
            g.add_metric([], value)
            yield g

    def _destinations(self) -> Iterator[Metric]:
        up = _gauge("destination_up", "0 while the destination cannot be reached, else 1.",
                    ["destination"])
        contact = _gauge("destination_last_contact_timestamp_seconds",
                         "Last successful exchange with the destination (Unix time, 0: never).",
                         ["destination"])
        failures = _gauge("destination_consecutive_failures",
                          "Failed attempts to reach the destination since the last success.",
                          ["destination"])
        for name, health in sorted(self._s.destinations().items()):
            label = [token_label(name)]
            up.add_metric(label, 0.0 if health.consecutive_failures > 0 else 1.0)
            contact.add_metric(label, float(health.last_contact))
            failures.add_metric(label, float(health.consecutive_failures))
        yield from (up, contact, failures)

    def _workers(self) -> Iterator[Metric]:
        alive = list(self._s.workers())
        per = _gauge("worker_up", "1 while the worker process is alive.", ["worker"])
        for i, ok in enumerate(alive):
            per.add_metric([str(i)], 1.0 if ok else 0.0)
        configured = _gauge("workers_configured", "Worker processes the gateway runs.")
        configured.add_metric([], float(len(alive)))
        count = _gauge("workers_alive", "Worker processes alive now.")
        count.add_metric([], float(sum(alive)))
        forwarder = _gauge("forwarder_up", "1 while the forwarder process is alive.")
        forwarder.add_metric([], 1.0 if self._s.forwarder() else 0.0)
        yield from (per, configured, count, forwarder)
