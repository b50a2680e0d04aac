"""The metrics module: bounded labels, the event table, and the scrubber's view."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from gateway.observe.metrics import (
    OTHER,
    UNKNOWN,
    BoundedValues,
    GatewayMetrics,
    modality_label,
    scrubber_metrics,
    sop_class_label,
    token_label,
)

GATEWAY = Path(__file__).resolve().parents[2] / "gateway"


@pytest.fixture
def reg() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(reg: CollectorRegistry) -> GatewayMetrics:
    return GatewayMetrics(registry=reg, max_ae_titles=3)


def value(reg: CollectorRegistry, name: str, **labels: str) -> float:
    got = reg.get_sample_value(name, labels)
    return 0.0 if got is None else got


def test_sop_class_label_is_the_dictionary_keyword_never_a_uid() -> None:
    """A known SOP class becomes its keyword; a private or instance UID becomes 'unknown'."""
    assert sop_class_label("1.2.840.10008.5.1.4.1.1.2") == "CTImageStorage"
    assert sop_class_label("1.2.840.10008.1.2") == UNKNOWN  # a transfer syntax, not a class
    assert sop_class_label("1.2.826.0.1.3680043.8.498.12345") == UNKNOWN
    assert sop_class_label("") == UNKNOWN
    assert sop_class_label("Fakename123^Zebulon") == UNKNOWN


def test_modality_label_admits_defined_terms_only() -> None:
    """Modality values outside PS3.3's defined terms collapse to 'other'."""
    assert modality_label("CT") == "CT"
    assert modality_label("us ") == "US"
    assert modality_label("") == "none"
    assert modality_label("SYN12345678") == OTHER


def test_token_label_refuses_free_text() -> None:
    """Stage, destination and reason-class labels must look like names, not sentences."""
    assert token_label("deidentify") == "deidentify"
    assert token_label("filter rule drop-us") == OTHER
    assert token_label("x" * 65) == OTHER


def test_bounded_values_stop_growing_at_the_limit() -> None:
    """Past the limit every new AE title is 'other'; preset and seen titles stay themselves."""
    bound = BoundedValues(3, preset=["GOODSCU"])
    assert [bound(v) for v in ["A", "B", "C", "A", "GOODSCU"]] == ["A", "B", OTHER, "A",
                                                                    "GOODSCU"]


def test_observe_counts_received_and_bytes(metrics: GatewayMetrics, reg: CollectorRegistry) -> None:
    """A 'stored' event counts the instance by AE, modality and SOP class keyword, and bytes."""
    labels = {"calling_ae": "MODALITY", "modality": "CT",
              "sop_class_uid": "1.2.840.10008.5.1.4.1.1.2"}
    metrics.observe("stored", labels, 1000.0)
    metrics.observe("stored", labels, 500.0)
    assert value(reg, "deid_instances_received_total", calling_ae="MODALITY", modality="CT",
                 sop_class="CTImageStorage") == 2
    assert value(reg, "deid_received_bytes_total", calling_ae="MODALITY") == 1500


def test_stage_events_feed_latency_and_named_counters(
    metrics: GatewayMetrics, reg: CollectorRegistry
) -> None:
    """Continue outcomes of deidentify and verify count de-identified and verified instances."""
    for stage in ("filter", "deidentify", "verify"):
        metrics.observe("stage", {"stage": stage, "outcome": "continue", "modality": "MR"}, 0.01)
    metrics.observe("stage", {"stage": "verify", "outcome": "quarantine", "modality": "MR"}, 0.01)
    assert value(reg, "deid_instances_deidentified_total", modality="MR") == 1
    assert value(reg, "deid_instances_verified_total", modality="MR") == 1
    assert value(reg, "deid_stage_duration_seconds_count", stage="verify") == 2
    assert value(reg, "deid_stage_outcomes_total", stage="verify", outcome="quarantine") == 1


def test_quarantine_decisions_are_not_failures(
    metrics: GatewayMetrics, reg: CollectorRegistry
) -> None:
    """A leak or filter quarantine counts as quarantined; an exception also as failed."""
    metrics.observe("job_quarantine", {"reason_class": "leak", "stage": "verify"}, 0.1)
    metrics.observe("job_quarantine", {"reason_class": "error", "stage": "deidentify"}, 0.1)
    assert value(reg, "deid_instances_quarantined_total", reason_class="leak") == 1
    assert value(reg, "deid_instances_quarantined_total", reason_class="error") == 1
    assert value(reg, "deid_instances_failed_total", stage="verify") == 0
    assert value(reg, "deid_instances_failed_total", stage="deidentify") == 1


def test_forward_events(metrics: GatewayMetrics, reg: CollectorRegistry) -> None:
    """Forwarded bytes, end-to-end latency, retries and outages are counted per destination."""
    labels = {"destination": "research", "modality": "CT"}
    metrics.observe("forwarded", labels, 2048.0)
    metrics.observe("end_to_end", labels, 3.0)
    metrics.observe("forward_retry", {"destination": "research"}, 1)
    metrics.observe("destination_down", {"destination": "research"}, 1)
    metrics.observe("forward_failed", {"destination": "research"}, 1)
    assert value(reg, "deid_instances_forwarded_total", destination="research", modality="CT") == 1
    assert value(reg, "deid_forwarded_bytes_total", destination="research") == 2048
    assert value(reg, "deid_end_to_end_seconds_sum", destination="research") == 3.0
    assert value(reg, "deid_forward_retries_total", destination="research") == 1
    assert value(reg, "deid_destination_outages_total", destination="research") == 1
    assert value(reg, "deid_instances_failed_total", stage="forward") == 1


def test_probe_and_response_timeout_events(metrics: GatewayMetrics, reg: CollectorRegistry) -> None:
    """Probes, failed probes and missing C-STORE responses are counted per destination only."""
    dest = {"destination": "research"}
    for event in ("destination_probe", "destination_probe", "destination_probe_failed",
                  "response_timeout"):
        metrics.observe(event, dest, 1)
    metrics.observe("destination_probe", {"destination": "Doe, John 1.2.3"}, 1)
    assert value(reg, "deid_destination_probes_total", destination="research") == 2
    assert value(reg, "deid_destination_probe_failures_total", destination="research") == 1
    assert value(reg, "deid_forward_response_timeouts_total", destination="research") == 1
    assert value(reg, "deid_destination_probes_total", destination="other") == 1


def test_association_rejections_have_bounded_reasons(
    metrics: GatewayMetrics, reg: CollectorRegistry
) -> None:
    """An unexpected rejection reason is recorded as 'other', not as new label text."""
    metrics.observe("association_rejected", {"reason": "not_allowed"}, 1)
    metrics.observe("association_rejected", {"reason": "Fakename123"}, 1)
    assert value(reg, "deid_associations_rejected_total", reason="not_allowed") == 1
    assert value(reg, "deid_associations_rejected_total", reason="other") == 1


def test_bad_event_values_never_raise(metrics: GatewayMetrics, reg: CollectorRegistry) -> None:
    """The observer is on the hot path: unknown events are ignored, broken ones counted."""
    metrics.observe("no_such_event", {}, 1)
    metrics.observe("stage", {"stage": "verify"}, "not a number")  # type: ignore[arg-type]
    assert value(reg, "deid_metrics_errors_total") == 1


def test_scrubber_view_records_batches_and_heartbeat(
    metrics: GatewayMetrics, reg: CollectorRegistry
) -> None:
    """ScrubberMetrics.batch feeds frames, batch size, frames/s and the liveness gauges."""
    metrics.scrubber.batch(16, 0.5)
    assert value(reg, "deid_scrubber_frames_total") == 16
    assert value(reg, "deid_scrubber_batch_frames_sum") == 16
    assert value(reg, "deid_scrubber_frames_per_second_sum") == 32
    assert value(reg, "deid_scrubber_up") == 1
    assert value(reg, "deid_scrubber_heartbeat_timestamp_seconds") > 1e9
    metrics.scrubber.alive(False)
    assert value(reg, "deid_scrubber_up") == 0


def test_initialise_creates_known_series_at_zero(
    metrics: GatewayMetrics, reg: CollectorRegistry
) -> None:
    """Configured destinations and stages are exposed before any traffic (so alerts see them)."""
    metrics.initialise(["filter", "deidentify"], ["research"])
    assert reg.get_sample_value("deid_forward_retries_total", {"destination": "research"}) == 0
    assert reg.get_sample_value("deid_instances_failed_total", {"stage": "deidentify"}) == 0
    assert reg.get_sample_value("deid_stage_duration_seconds_count", {"stage": "receive"}) == 0


def test_every_event_the_pipeline_emits_is_understood(metrics: GatewayMetrics) -> None:
    """Each event name passed to an observer in gateway/ has a handler in the metrics table."""
    pattern = re.compile(r"""(?:observe|_observe)\(\s*f?["']([a-z_{}.]+)["']""")
    emitted: set[str] = set()
    for path in GATEWAY.rglob("*.py"):
        for name in pattern.findall(path.read_text()):
            if "{kind.value}" in name:
                emitted.update(f"job_{k}" for k in ("continue", "filter", "quarantine", "retry"))
            else:
                emitted.add(name)
    assert {"stored", "stage", "forwarded", "end_to_end", "worker_heartbeat"} <= emitted
    assert emitted <= metrics.event_names(), emitted - metrics.event_names()


def test_scrubber_view_from_stage_services(metrics: GatewayMetrics,
                                           reg: CollectorRegistry) -> None:
    """A pixel stage gets the view from services.extras; without metrics it is a no-op."""
    scrubber_metrics({"metrics": metrics}).batch(4, 0.1)
    assert value(reg, "deid_scrubber_frames_total") == 4
    scrubber_metrics({}).batch(4, 0.1)  # metrics disabled: nothing to record, no error
    scrubber_metrics({}).alive(False)
    assert value(reg, "deid_scrubber_frames_total") == 4
