"""The checks behind ``/readyz``: can this node take instances in and get them out?

Each check answers ok or not with a small, PHI-free detail. The node is ready when every check
is ok: the database answers, the spool is writable and below its limits, at least one worker
process and the forwarder process are alive, the scrubber has sent a recent heartbeat (only
when a pixel stage is configured; otherwise the check reports ``not_configured``), and no
destination has been
unreachable for longer than ``metrics.ready_destination_grace_seconds`` (the spool absorbs a
short outage; a long one means the instances taken in are not getting out).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Engine, text

from gateway.observe.metrics import read_live_gauges

SCRUBBER_STALE_SECONDS = 30.0


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: dict[str, Any] = field(default_factory=dict)


class DestinationHealthView(Protocol):
    up: bool
    last_contact: float
    consecutive_failures: int
    down_since: float


class SpoolLike(Protocol):
    root: Path
    tmp: Path

    def used_bytes(self) -> int: ...

    def free_bytes(self) -> int: ...


Clock = Callable[[], float]


@dataclass
class Readiness:
    """Runs the checks on the serve process's objects (each read when /readyz is asked)."""

    engine: Engine
    spool: SpoolLike
    spool_limit_bytes: int
    spool_min_free_bytes: int
    workers: Callable[[], Sequence[bool]]
    destinations: Callable[[], Mapping[str, DestinationHealthView]]
    scrubber_configured: bool
    metrics_dir: Path | None
    destination_grace_seconds: float = 300.0
    forwarder: Callable[[], bool] = lambda: True
    clock: Clock = time.time
    stopping: bool = False

    def run(self) -> list[CheckResult]:
        checks: list[tuple[str, Callable[[], CheckResult]]] = [
            ("database", self.database), ("spool", self.spool_check),
            ("workers", self.worker_check), ("forwarder", self.forwarder_check),
            ("scrubber", self.scrubber_check), ("destinations", self.destination_check),
        ]
        results = [_guarded(name, c) for name, c in checks]
        if self.stopping:
            results.insert(0, CheckResult("shutdown", False, {"stopping": True}))
        return results

    def database(self) -> CheckResult:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1 FROM jobs WHERE 1 = 0"))
        return CheckResult("database", True)

    def spool_check(self) -> CheckResult:
        probe = self.spool.tmp / f"ready-{uuid.uuid4().hex}.probe"
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, b"ready")
            finally:
                os.close(fd)
        finally:
            probe.unlink(missing_ok=True)
        used, free = self.spool.used_bytes(), self.spool.free_bytes()
        detail = {"used_bytes": used, "free_bytes": free}
        if used >= self.spool_limit_bytes:
            return CheckResult("spool", False, {**detail, "reason": "spool_full"})
        if free <= self.spool_min_free_bytes:
            return CheckResult("spool", False, {**detail, "reason": "disk_full"})
        return CheckResult("spool", True, detail)

    def worker_check(self) -> CheckResult:
        alive = list(self.workers())
        detail = {"alive": sum(alive), "configured": len(alive)}
        return CheckResult("workers", sum(alive) > 0, detail)

    def forwarder_check(self) -> CheckResult:
        return CheckResult("forwarder", bool(self.forwarder()))

    def scrubber_check(self) -> CheckResult:
        if not self.scrubber_configured:
            return CheckResult("scrubber", True, {"state": "not_configured"})
        live = read_live_gauges(self.metrics_dir) if self.metrics_dir is not None else {}
        beat = live.get("deid_scrubber_heartbeat_timestamp_seconds")
        up = live.get("deid_scrubber_up", 0.0) >= 1.0
        if beat is None:
            return CheckResult("scrubber", False, {"state": "no_heartbeat"})
        age = max(0.0, self.clock() - beat)
        ok = up and age <= SCRUBBER_STALE_SECONDS
        state = "up" if ok else ("stale" if up else "not_ready")
        return CheckResult("scrubber", ok, {"state": state, "heartbeat_age_seconds": round(age, 1)})

    def destination_check(self) -> CheckResult:
        now = self.clock()
        detail: dict[str, Any] = {}
        ok = True
        for name, h in sorted(self.destinations().items()):
            down_for = now - h.down_since if h.consecutive_failures > 0 and h.down_since else 0.0
            healthy = down_for <= self.destination_grace_seconds
            ok = ok and healthy
            detail[name] = {
                "ok": healthy,
                "up": h.consecutive_failures == 0,
                "last_contact_seconds_ago": round(now - h.last_contact, 1)
                if h.last_contact else None,
                "consecutive_failures": h.consecutive_failures,
            }
        return CheckResult("destinations", ok, detail)


def _guarded(name: str, check: Callable[[], CheckResult]) -> CheckResult:
    """A check that raises fails with the exception's class name (never its text)."""
    try:
        return check()
    except Exception as exc:
        return CheckResult(name, False, {"error": type(exc).__name__})


def report(results: Sequence[CheckResult]) -> tuple[int, dict[str, Any]]:
    """HTTP status (200 ready, 503 not) and the JSON body naming the failed checks."""
    ready = all(r.ok for r in results)
    body: dict[str, Any] = {
        "ready": ready,
        "failed": [r.name for r in results if not r.ok],
        "checks": {r.name: {"ok": r.ok, **r.detail} for r in results},
    }
    return (200 if ready else 503), body
