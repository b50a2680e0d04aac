"""Run by test_observe_multiprocess.py in a fresh interpreter: serve-like parent, spawned children.

Prints a JSON summary of the merged exposition before and after one child is marked dead.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import sys
from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gateway.observe.metrics import (
    GatewayMetrics,
    enable_multiprocess,
    exposition_registry,
    multiprocess_enabled,
    process_dead,
)

STORED = {"calling_ae": "MODALITY", "modality": "CT", "sop_class_uid": "1.2.840.10008.5.1.4.1.1.2"}


def child(worker: int, count: int) -> None:
    metrics = GatewayMetrics()
    for _ in range(count):
        metrics.observe("stored", STORED, 100.0)
    metrics.observe("worker_heartbeat", {"worker": str(worker)}, 1000.0 + worker)


def summary(directory: Path) -> dict[str, float]:
    text = generate_latest(exposition_registry(directory)).decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = s.name + "".join(f"|{k}={v}" for k, v in sorted(s.labels.items()))
            out[key] = s.value
    return out


def main(root: str) -> None:
    directory = enable_multiprocess(Path(root) / "metrics")
    parent = GatewayMetrics()
    parent.observe("stored", STORED, 100.0)
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=child, args=(i, 3)) for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    before = summary(directory)
    assert procs[0].pid is not None
    process_dead(procs[0].pid, directory)
    after = summary(directory)
    print(json.dumps({"multiprocess": multiprocess_enabled(), "before": before, "after": after}))


if __name__ == "__main__":
    main(sys.argv[1])
