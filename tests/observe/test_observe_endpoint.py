"""/healthz, /readyz and /metrics of the serve process, and the scrape-time gauges
(on SQLite and PostgreSQL: the ``engine`` fixture of conftest.py)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from gateway.db import make_engine
from gateway.forward.scu import DestinationHealth
from gateway.jobs.store import JobStore, NewJob
from gateway.observe.endpoint import MetricsServer
from gateway.observe.metrics import ServeState, StateCollector
from gateway.observe.readiness import Readiness, report
from gateway.spool import Spool

NOW = 1_800_000_000.0


@pytest.fixture
def spool(tmp_path: Path) -> Spool:
    sp = Spool(tmp_path / "spool")
    sp.create()
    return sp


def _readiness(engine: Engine, spool: Spool, **kw: Any) -> Readiness:
    args: dict[str, Any] = dict(
        engine=engine, spool=spool, spool_limit_bytes=10**12, spool_min_free_bytes=0,
        workers=lambda: [True, True], destinations=lambda: {"research": DestinationHealth()},
        scrubber_configured=False, metrics_dir=None, clock=lambda: NOW,
    )
    args.update(kw)
    return Readiness(**args)


def _failed(r: Readiness) -> list[str]:
    status, body = report(r.run())
    assert (status == 200) == (not body["failed"])
    failed: list[str] = body["failed"]
    return failed


def test_ready_when_every_check_passes(engine: Engine, spool: Spool) -> None:
    """All checks ok and no pixel stage configured: 200, the scrubber reported not configured."""
    status, body = report(_readiness(engine, spool).run())
    assert status == 200 and body["ready"] is True
    assert body["checks"]["scrubber"]["state"] == "not_configured"


def test_database_unreachable_fails_readiness(spool: Spool, tmp_path: Path) -> None:
    """A database without the job tables (or none at all) fails the database check."""
    bare = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        assert _failed(_readiness(bare, spool)) == ["database"]
    finally:
        bare.dispose()


def test_spool_full_or_unwritable_fails(engine: Engine, spool: Spool) -> None:
    """A spool above its limit fails; so does one whose tmp folder cannot be written."""
    assert _failed(_readiness(engine, spool, spool_limit_bytes=0)) == ["spool"]
    spool.tmp.rmdir()
    status, body = report(_readiness(engine, spool).run())
    assert status == 503 and body["checks"]["spool"]["error"] == "FileNotFoundError"


def test_no_live_worker_fails(engine: Engine, spool: Spool) -> None:
    """With every worker process dead the node cannot process: 503 naming 'workers'."""
    assert _failed(_readiness(engine, spool, workers=lambda: [False, False])) == ["workers"]
    assert _failed(_readiness(engine, spool, workers=lambda: [False, True])) == []


def test_destination_down_past_the_grace_fails(engine: Engine, spool: Spool) -> None:
    """A destination unreachable for longer than the grace fails; a short outage does not."""
    h = DestinationHealth(up=False, last_contact=NOW - 1000, consecutive_failures=4,
                          down_since=NOW - 400)
    dests = {"research": h}
    r = _readiness(engine, spool, destinations=lambda: dests, destination_grace_seconds=300)
    assert _failed(r) == ["destinations"]
    h.down_since = NOW - 100
    assert _failed(r) == []
    _, body = report(r.run())
    assert body["checks"]["destinations"]["research"]["last_contact_seconds_ago"] == 1000


def test_configured_scrubber_needs_a_recent_heartbeat(engine: Engine, spool: Spool,
                                                      tmp_path: Path) -> None:
    """With a pixel stage configured, a missing scrubber heartbeat fails readiness."""
    r = _readiness(engine, spool, scrubber_configured=True, metrics_dir=tmp_path)
    status, body = report(r.run())
    assert status == 503 and body["checks"]["scrubber"]["state"] == "no_heartbeat"


def test_shutting_down_is_not_ready(engine: Engine, spool: Spool) -> None:
    """Once shutdown begins, /readyz says so, so load balancers stop sending."""
    r = _readiness(engine, spool)
    r.stopping = True
    assert _failed(r) == ["shutdown"]


def _state(engine: Engine, spool: Spool, store: Any = None) -> ServeState:
    return ServeState(
        store=store or JobStore(engine, "node-a"), spool=spool, spool_limit_bytes=1000,
        spool_min_free_bytes=10, destinations=lambda: {"research": DestinationHealth(
            up=False, consecutive_failures=2, last_contact=NOW)},
        workers=lambda: [True, False], scrubber_configured=False, version="0.1.0", node="node-a",
        forwarder=lambda: False,
    )


def _samples(collector: StateCollector) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for m in collector.collect() for s in m.samples}


def test_state_collector_reads_jobs_spool_destinations_workers(engine: Engine,
                                                               spool: Spool) -> None:
    """Jobs per state and their age come from the database at scrape time, with the rest."""
    store = JobStore(engine, "node-a")
    for i in range(3):
        store.add_received(NewJob(f"job{i}", "MODALITY", "DEID", "1.2.840.10008.5.1.4.1.1.2",
                                  "1.2.840.10008.1.2.1", "CT", 100))
    got = _samples(StateCollector(_state(engine, spool, store)))
    assert got[("deid_jobs", (("state", "received"),))] == 3
    assert got[("deid_jobs", (("state", "quarantined"),))] == 0
    assert ("deid_job_oldest_age_seconds", (("state", "received"),)) in got
    assert got[("deid_database_up", ())] == 1
    assert got[("deid_destination_up", (("destination", "research"),))] == 0
    assert got[("deid_destination_consecutive_failures", (("destination", "research"),))] == 2
    assert got[("deid_workers_alive", ())] == 1 and got[("deid_workers_configured", ())] == 2
    assert got[("deid_forwarder_up", ())] == 0
    assert got[("deid_spool_limit_bytes", ())] == 1000
    assert got[("deid_spool_free_bytes", ())] > 0


def test_state_collector_survives_a_database_failure(engine: Engine, spool: Spool) -> None:
    """When the database does not answer, the scrape still succeeds with database_up 0."""

    class Broken:
        def counts(self) -> dict[str, int]:
            raise OSError("down")

        delivery_counts = oldest_age_seconds = counts

    got = _samples(StateCollector(_state(engine, spool, Broken())))
    assert got[("deid_database_up", ())] == 0
    assert ("deid_workers_alive", ()) in got


@pytest.fixture
def server(engine: Engine, spool: Spool) -> Iterator[tuple[MetricsServer, Readiness]]:
    registry = CollectorRegistry()
    registry.register(StateCollector(_state(engine, spool)))
    readiness = _readiness(engine, spool)
    srv = MetricsServer("127.0.0.1", 0, registry, readiness).start()
    yield srv, readiness
    srv.stop()


def _get(port: int, path: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            return r.status, r.headers["Content-Type"], r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read().decode()


def test_http_endpoints(server: tuple[MetricsServer, Readiness]) -> None:
    """/healthz 200, /readyz 200 then 503 with JSON naming the check, /metrics parses, else 404."""
    srv, readiness = server
    assert _get(srv.port, "/healthz")[0] == 200
    status, ctype, body = _get(srv.port, "/readyz")
    assert status == 200 and ctype == "application/json" and json.loads(body)["ready"]
    readiness.workers = lambda: [False]
    status, _, body = _get(srv.port, "/readyz")
    assert status == 503 and json.loads(body)["failed"] == ["workers"]
    status, ctype, body = _get(srv.port, "/metrics")
    assert status == 200 and ctype.startswith("text/plain")
    names = {f.name for f in text_string_to_metric_families(body)}
    assert {"deid_jobs", "deid_workers_alive", "deid_destination_up"} <= names
    assert _get(srv.port, "/nothing")[0] == 404


def test_dead_forwarder_process_fails_readiness(engine: Engine, spool: Spool) -> None:
    """Without the forwarder process nothing leaves the node: 503 naming 'forwarder'."""
    assert _failed(_readiness(engine, spool, forwarder=lambda: False)) == ["forwarder"]


def test_published_health_round_trips_down_since(spool: Spool) -> None:
    """The forwarder process publishes down_since, which /readyz's grace is measured from."""
    from gateway.forward.process import health_path, read_health

    runtime = spool.root / "run"  # the runtime folder (its own file system in a gateway)
    health_path(runtime).parent.mkdir(parents=True, exist_ok=True)
    health_path(runtime).write_text(json.dumps({"research": {
        "up": False, "last_contact": NOW - 50, "consecutive_failures": 3,
        "down_since": NOW - 20, "extra": {}, "updated": NOW}}))
    h = read_health(runtime)["research"]
    assert (h.up, h.consecutive_failures, h.down_since) == (False, 3, NOW - 20)
