"""What observability costs on the hot path: the same traffic through the gateway with metrics
and per-stage logs on, and with both off, next to a bare sink measured in the same run.

    .venv/bin/python tests/bench/bench_observe.py [N] [STAGES]

N instances (default 400) of mixed CT/MR/US/SC go from DCMTK storescu to the receiver; the time
is until the embedded sink holds all N. STAGES is a comma list (default ``passthrough``).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import dicomgen
from harness import Gateway, free_port, port_open, storescu, wait_for


def _count(root: Path) -> int:
    return sum(1 for p in root.rglob("*.dcm") if ".tmp" not in p.parts)


def bare_sink(files: list[Path], root: Path) -> float:
    """storescu straight into the sink (fsync on): the ceiling."""
    port = free_port()
    root.mkdir(parents=True)
    cfg = root / "sink.yaml"
    cfg.write_text(yaml.safe_dump({"sink": {"port": port, "root": str(root / "out")}}))
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "sink", "-c", str(cfg)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: port_open(port), 30)
        started = time.perf_counter()
        storescu(port, files, called="RESEARCH_PACS")
        wait_for(lambda: _count(root / "out") >= len(files), 300, 0.02)
        return len(files) / (time.perf_counter() - started)
    finally:
        proc.terminate()
        proc.wait(10)


def through_gateway(files: list[Path], root: Path, stages: list[str], observe: bool) -> float:
    sink_root = root / "research"
    config: dict[str, Any] = {
        "pipeline": {"stages": stages},
        "sink": {"port": free_port(), "root": str(sink_root)},
        "metrics": {"enabled": observe},
        "logging": {"level": "info" if observe else "error"},
        "workers": {"count": 2},
    }
    g = Gateway(root, config).start()
    try:
        started = time.perf_counter()
        storescu(g.port, files)
        wait_for(lambda: _count(sink_root) >= len(files), 600, 0.02)
        return len(files) / (time.perf_counter() - started)
    finally:
        g.stop()


def per_event_costs(root: Path, n: int = 20000) -> tuple[float, float]:
    """Microseconds per observer event (multiprocess mode, mmap writes) and per JSON log line
    (to a file), in this process."""
    from gateway.config import LogSettings
    from gateway.observe.logs import configure_logging, get_logger
    from gateway.observe.metrics import GatewayMetrics, enable_multiprocess

    enable_multiprocess(root / "metrics")
    metrics = GatewayMetrics()
    labels = {"stage": "deidentify", "outcome": "continue", "modality": "CT"}
    started = time.perf_counter()
    for _ in range(n):
        metrics.observe("stage", labels, 0.004)
    event_us = (time.perf_counter() - started) / n * 1e6
    with open(root / "log.jsonl", "w") as fh:
        configure_logging(LogSettings(), process="bench", stream=fh)
        log = get_logger("gateway.worker")
        started = time.perf_counter()
        for i in range(n):
            log.info("stage", job_id="0" * 32, stage="deidentify", outcome="continue",
                     duration_ms=4.0, sop_instance_uid=f"2.25.{i}")
        line_us = (time.perf_counter() - started) / n * 1e6
    return event_us, line_us


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 400
    stages = (sys.argv[2] if len(sys.argv) > 2 else "passthrough").split(",")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = [p for p, _ts in dicomgen.mixed_set(root / "data", n)]
        sink = bare_sink(files, root / "sink")
        off = through_gateway(files, root / "off", stages, observe=False)
        on = through_gateway(files, root / "on", stages, observe=True)
    print(f"{n} instances, stages {','.join(stages)}, 2 workers")
    print(f"{'what':<44} {'inst/s':>8} {'vs sink':>8}")
    print(f"{'bare sink (baseline)':<44} {sink:>8.1f} {1.0:>8.2f}")
    print(f"{'gateway, metrics off, log level error':<44} {off:>8.1f} {off / sink:>8.2f}")
    print(f"{'gateway, metrics on, per-stage logs (info)':<44} {on:>8.1f} {on / sink:>8.2f}")
    print(f"observability costs {100 * (1 - on / off):.1f}% of gateway throughput")
    with tempfile.TemporaryDirectory() as tmp:
        event_us, line_us = per_event_costs(Path(tmp))
    # Per instance: receiver 2 events + 1 line; worker 7 events + 6 lines for 4 steps;
    # forwarder 3 events + 1 line (passthrough pipeline: 3 steps).
    events, lines = 12, 8
    print(f"one observer event {event_us:.1f} us, one JSON log line {line_us:.1f} us; "
          f"about {events * event_us + lines * line_us:.0f} us per instance in all processes")


if __name__ == "__main__":
    main()
