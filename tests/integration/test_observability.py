"""Observability end to end: a gateway run with traffic, scraped by the test and by a real
Prometheus; the deploy/ artefacts checked by promtool; no PHI in the logs or in /metrics."""

from __future__ import annotations

import contextlib
import json
import random
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.filewriter import write_file_meta_info
from pydicom.tag import Tag
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE, _config

import dicomgen
from harness import Gateway, destination, free_port, gateway, orthanc, storescu, wait_for

pytestmark = pytest.mark.integration

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PROMETHEUS = shutil.which("prometheus", path="/usr/bin:/usr/local/bin") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool", path="/usr/bin:/usr/local/bin") or "/usr/bin/promtool"


@dataclass
class Traffic:
    """What the test sent, and every identifying string of its synthetic patients."""

    good: list[Path] = field(default_factory=list)  # forwarded
    dropped: list[Path] = field(default_factory=list)  # filter rule drop-ot
    held: list[Path] = field(default_factory=list)  # filter rule hold-us (quarantine)
    leaking: list[Path] = field(default_factory=list)  # verify finds an identifier (quarantine)
    garbage: list[Path] = field(default_factory=list)  # refused 0xC000
    phi: set[str] = field(default_factory=set)

    @property
    def stored(self) -> list[Path]:
        return self.good + self.dropped + self.held + self.leaking


@dataclass
class Run:
    gw: Gateway
    traffic: Traffic
    exposition: str
    metrics_port: int


def _patient_phi(study: dicomgen.Study) -> set[str]:
    p = study.patient
    family, given = p.name.split("^")
    return {p.name, family, given, p.patient_id, p.birth_date, study.accession, study.study_uid}


def _garbage_with_phi(path: Path, study: dicomgen.Study, root: Path) -> Path:
    """Valid file meta, then the patient's name and an element running past the end."""
    ds = dicomgen.ct(study, generate_uid(), 99, size=8)
    dicomgen.save(ds, root / "source.dcm")
    meta = dcmread(root / "source.dcm").file_meta
    with open(path, "wb") as fh:
        fh.write(b"\x00" * 128 + b"DICM")
        write_file_meta_info(fh, meta)  # type: ignore[arg-type]
        name = study.patient.name.encode()
        fh.write(b"\x10\x00\x10\x00PN" + len(name).to_bytes(2, "little") + name)
        fh.write(b"\x10\x00\x20\x00LO\xf0\xff" + study.patient.patient_id.encode())
    return path


def _build_traffic(root: Path) -> Traffic:
    rng = random.Random(20240611)
    t = Traffic()
    for k in range(4):
        study = dicomgen.Study.random(rng)
        t.phi |= _patient_phi(study)
        series = generate_uid()
        for i in range(3):
            ds = dicomgen.ct(study, series, i + 1, size=16) if k % 2 else dicomgen.mr(
                study, series, i + 1, size=16)
            if i == 2:
                ds.PatientBirthDate = study.patient.name  # invalid DA: pydicom quotes it
            t.phi |= {str(ds.SOPInstanceUID), series}
            t.good.append(dicomgen.save(ds, root / f"good/{k}-{i}.dcm"))
        us = dicomgen.us(study, generate_uid(), 1, rows=16, cols=16)
        sc = dicomgen.sc(study, generate_uid(), 1, size=16)
        t.phi |= {str(us.SOPInstanceUID), str(sc.SOPInstanceUID), str(us.SeriesInstanceUID),
                  str(sc.SeriesInstanceUID)}
        t.held.append(dicomgen.save(us, root / f"held/{k}.dcm"))
        t.dropped.append(dicomgen.save(sc, root / f"dropped/{k}.dcm"))
    leak_study = dicomgen.Study.random(rng)
    t.phi |= _patient_phi(leak_study)
    leak = dicomgen.ct(leak_study, generate_uid(), 1, size=16)
    family, given = leak_study.patient.name.split("^")[:2]
    leak.Manufacturer = f"{given} {family}"  # kept by the profile, a name all the same: a leak
    t.phi |= {str(leak.SOPInstanceUID), str(leak.SeriesInstanceUID)}
    t.leaking.append(dicomgen.save(leak, root / "leak/0.dcm"))
    # Malformed: an IS value that is the Patient ID; pydicom warns quoting it, verify holds it.
    bad = dicomgen.ct(leak_study, generate_uid(), 2, size=16)
    value = (leak_study.patient.patient_id + " ").encode()
    bad[0x00200011] = RawDataElement(Tag(0x00200011), "IS", len(value), value, 0, False, True)
    t.phi |= {str(bad.SOPInstanceUID), str(bad.SeriesInstanceUID)}
    t.leaking.append(dicomgen.save(bad, root / "leak/1.dcm"))
    bad_study = dicomgen.Study.random(rng)
    t.phi |= _patient_phi(bad_study)
    (root / "garbage").mkdir()
    t.garbage.append(_garbage_with_phi(root / "garbage/0.dcm", bad_study, root / "garbage"))
    return t


def _send_raw(port: int, path: Path) -> int:
    """Send a file's bytes as they are (pynetdicom chunked sending), as a broken modality would."""
    saved = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True
    try:
        ae = AE(ae_title="TESTSCU")
        ae.add_requested_context(dicomgen.CT_IMAGE, [ExplicitVRLittleEndian])
        assoc = ae.associate("127.0.0.1", port, ae_title="DEID_GATEWAY")
        assert assoc.is_established
        status = int(assoc.send_c_store(path).Status)
        assoc.release()
        return status
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = saved


def _config_for(o_dest: dict[str, Any]) -> dict[str, Any]:
    return {
        "receiver": {"allowed_callers": [{"ae_title": "MODALITY"}, {"ae_title": "TESTSCU"}]},
        "destinations": [o_dest],
        "logging": {"level": "debug"},
        "filters": {"rules": [
            {"name": "drop-ot", "action": "drop", "modality": ["OT"]},
            {"name": "hold-us", "action": "quarantine", "modality": ["US"]},
        ]},
    }


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        body: bytes = r.read()
    return body.decode()


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def total(text: str, name: str, **labels: str) -> float:
    """Sum of a sample over the label sets that match ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples(text).items() if n == name and want <= ls)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    root = tmp_path_factory.mktemp("observe")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # building invalid values on purpose
        traffic = _build_traffic(root / "data")
    with orthanc(root / "orthanc") as o, gateway(root / "gw", _config_for(destination(o))) as g:
        port = int(g.settings["metrics"]["port"])
        bad = storescu(g.port, traffic.good[:1], calling="BADSCU", check=False)
        assert bad.returncode != 0
        storescu(g.port, traffic.stored)
        assert _send_raw(g.port, traffic.garbage[0]) == 0xC000
        wait_for(lambda: g.status().get("sent") == len(traffic.good)
                 and g.status().get("quarantined") == len(traffic.held) + len(traffic.leaking)
                 and g.status().get("filtered") == len(traffic.dropped), 120, 0.5, "settled")
        wait_for(lambda: total(scrape(port), "deid_instances_forwarded_total")
                 == len(traffic.good), 30, 0.2, "forwarded counted")
        yield Run(g, traffic, scrape(port), port)


def test_counters_match_what_was_sent_and_forwarded(run: Run) -> None:
    """Every counter (from the receiver, the worker processes, the forwarder) equals the traffic."""
    t, text = run.traffic, run.exposition
    good, leak = len(t.good), len(t.leaking)
    assert total(text, "deid_instances_received_total") == len(t.stored)
    assert total(text, "deid_instances_received_total", modality="US",
                 sop_class="UltrasoundImageStorage", calling_ae="MODALITY") == len(t.held)
    assert total(text, "deid_instances_forwarded_total", destination="research") == good
    assert total(text, "deid_instances_filtered_total", modality="OT") == len(t.dropped)
    assert total(text, "deid_instances_quarantined_total", reason_class="filter") == len(t.held)
    assert total(text, "deid_instances_quarantined_total", reason_class="leak") == leak
    assert total(text, "deid_instances_deidentified_total") == good + leak
    assert total(text, "deid_instances_verified_total") == good
    assert total(text, "deid_instances_processed_total") == good
    assert total(text, "deid_instances_failed_total") == 0
    assert total(text, "deid_instances_refused_total", reason="cannot_understand") == 1
    assert total(text, "deid_associations_rejected_total", reason="not_allowed") == 1
    assert total(text, "deid_associations_accepted_total", calling_ae="MODALITY") == 1
    assert total(text, "deid_end_to_end_seconds_count", destination="research") == good
    assert total(text, "deid_stage_duration_seconds_count", stage="verify") == good + leak
    assert total(text, "deid_received_bytes_total") >= sum(p.stat().st_size for p in t.stored)
    assert total(text, "deid_forwarded_bytes_total") > 0
    assert total(text, "deid_jobs", state="sent") == good
    assert total(text, "deid_jobs", state="quarantined") == len(t.held) + leak
    assert total(text, "deid_destination_up", destination="research") == 1
    assert total(text, "deid_workers_alive") == 2
    assert total(text, "deid_worker_heartbeat_timestamp_seconds") > 0


def test_health_and_readiness_of_a_running_gateway(run: Run) -> None:
    """/healthz answers 200 and /readyz 200 with every check ok while the gateway runs."""
    base = f"http://127.0.0.1:{run.metrics_port}"
    with urllib.request.urlopen(f"{base}/healthz", timeout=10) as r:
        assert r.status == 200
    with urllib.request.urlopen(f"{base}/readyz", timeout=10) as r:
        body = json.loads(r.read())
    assert r.status == 200 and body["ready"] is True and body["failed"] == []
    # the default pipeline scrubs pixels: the scrubber process sends its heartbeat
    assert body["checks"]["scrubber"]["state"] == "up"


def test_no_phi_in_the_log_or_in_metrics(run: Run) -> None:
    """None of the synthetic patients' names, IDs, birth dates, accession numbers or original
    UIDs appears in the gateway's log (at debug level) or in its /metrics."""
    log = run.gw.log()
    assert '"event": "stage"' in log and '"event": "forwarded"' in log  # the log has content
    # (the invalid birth dates no longer make pydicom warn: the engine's fast path copies or
    # replaces values without decoding them; the reduction of such warnings is pinned by
    # tests/observe/test_observe_logs.py)
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert len(lines) == len(log.strip().splitlines()), "every log line is JSON"
    metrics = scrape(run.metrics_port)
    for value in sorted(run.traffic.phi):
        assert value not in log, f"PHI in the log: {value[:3]}..."
        assert value not in metrics, f"PHI in /metrics: {value[:3]}..."


def test_quarantine_reason_is_logged_without_values(run: Run) -> None:
    """The leak quarantines' log lines name the tag, not the value found there."""
    jobs = [json.loads(line) for line in run.gw.log().splitlines()
            if '"event": "job"' in line and '"leak"' in line]
    assert len(jobs) == len(run.traffic.leaking)
    assert {j["reason"] for j in jobs} == {"identifying value of the input found at (0008,0070)",
                                           "identifying value of the input found at (0020,0011)"}


# -- the real Prometheus -------------------------------------------------------------------
@contextlib.contextmanager
def prometheus(root: Path, target_port: int) -> Iterator[int]:
    """Debian's Prometheus scraping the gateway every second, with deploy/'s alert rules."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(DEPLOY / "prometheus" / "alerts.yml", root / "alerts.yml")
    (root / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": ["alerts.yml"],
        "scrape_configs": [{"job_name": "deid-gateway",
                            "static_configs": [{"targets": [f"127.0.0.1:{target_port}"]}]}],
    }))
    port = free_port()
    log = open(root / "prometheus.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [PROMETHEUS, f"--config.file={root / 'prometheus.yml'}",
         f"--storage.tsdb.path={root / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=log,
    )
    try:
        wait_for(lambda: _ready(port, proc, root), 60, 0.2, "Prometheus ready")
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _ready(port: int, proc: subprocess.Popen[bytes], root: Path) -> bool:
    if proc.poll() is not None:
        raise RuntimeError((root / "prometheus.log").read_text()[-2000:])
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, ConnectionError, OSError):
        return False


def _api(port: int, path: str, **params: str) -> Any:
    url = f"http://127.0.0.1:{port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())["data"]


def _query(port: int, expr: str) -> list[Any]:
    result: list[Any] = _api(port, "query", query=expr)["result"]
    return result


def test_prometheus_scrapes_the_gateway_and_answers_queries(run: Run, tmp_path: Path) -> None:
    """A real Prometheus scrapes /metrics, answers a query on a gateway counter, and evaluates
    every alert rule of deploy/ without error."""
    with prometheus(tmp_path / "prom", run.metrics_port) as port:
        expr = 'sum(deid_instances_forwarded_total{job="deid-gateway"})'
        wait_for(lambda: bool(_query(port, expr)), 30, 0.5, "first scrape")
        assert float(_query(port, expr)[0]["value"][1]) == len(run.traffic.good)
        [target] = _api(port, "targets")["activeTargets"]
        assert target["health"] == "up"
        time.sleep(2.5)  # a few rule evaluations
        rules = [r for g in _api(port, "rules")["groups"] for r in g["rules"]]
        assert len(rules) >= 8
        assert all(r["health"] == "ok" for r in rules), [(r["name"], r.get("lastError"))
                                                         for r in rules if r["health"] != "ok"]
        firing = {a["labels"]["alertname"] for a in _api(port, "alerts")["alerts"]}
        assert "DeidQuarantineNotEmpty" in firing or any(
            r["name"] == "DeidQuarantineNotEmpty" and r["state"] == "pending" for r in rules)


# -- deploy/ artefacts ---------------------------------------------------------------------
def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60)


def test_promtool_accepts_the_deploy_config_and_rules() -> None:
    """promtool check config (which also checks alerts.yml) and check rules both pass."""
    config = _promtool("check", "config", str(DEPLOY / "prometheus" / "prometheus.yml"))
    assert config.returncode == 0, config.stdout + config.stderr
    rules = _promtool("check", "rules", str(DEPLOY / "prometheus" / "alerts.yml"))
    assert rules.returncode == 0, rules.stdout + rules.stderr


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_BRACES = re.compile(r"\{[^{}]*\}|\[[^\[\]]*\]")
_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """The gateway metric names a PromQL expression uses (label matchers, ranges and strings
    removed; only names with the gateway's prefix)."""
    text = _BRACES.sub(" ", _STRING.sub(" ", expr))
    return {name for name in _IDENT.findall(text) if name.startswith("deid_")}


def test_metric_name_parser() -> None:
    """The PromQL scan finds metric names, not label names, values or functions."""
    expr = ('histogram_quantile(0.95, sum by (le, stage) (rate(deid_stage_duration_seconds_bucket'
            '{instance=~"$instance", stage="deid_fake"}[$__rate_interval]))) / deid_jobs')
    assert metric_names(expr) == {"deid_stage_duration_seconds_bucket", "deid_jobs"}


def _alert_exprs() -> list[str]:
    groups = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"]
    return [rule["expr"] for g in groups for rule in g["rules"]]


def _dashboard_exprs() -> list[str]:
    dash = json.loads((DEPLOY / "grafana" / "deid-gateway.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    for var in dash["templating"]["list"]:
        query = var.get("query")
        if isinstance(query, dict):
            exprs.append(query["query"])
    return exprs


def test_every_metric_in_dashboard_and_alerts_is_exposed(run: Run) -> None:
    """Each gateway metric name in alerts.yml and the Grafana dashboard is a sample name of the
    running gateway's exposition (counters as _total, histograms as _bucket/_count/_sum)."""
    exposed = {name for name, _labels in samples(run.exposition)}
    used: dict[str, set[str]] = {
        "alerts": set().union(*map(metric_names, _alert_exprs())),
        "dashboard": set().union(*map(metric_names, _dashboard_exprs())),
    }
    assert len(used["alerts"]) >= 10 and len(used["dashboard"]) >= 25
    for where, names in used.items():
        assert names <= exposed, f"{where} uses unknown metrics: {sorted(names - exposed)}"


def test_dashboard_covers_what_operators_need() -> None:
    """The dashboard has panels for throughput per stage, queue depth, latency percentiles,
    quarantine, associations, scrubber rate and per-destination state."""
    dash = json.loads((DEPLOY / "grafana" / "deid-gateway.json").read_text())
    titles = " | ".join(p["title"].lower() for p in dash["panels"])
    for needle in ("throughput per stage", "queue depth", "latency", "quarantine",
                   "associations", "scrubber frames", "destination up"):
        assert needle in titles
    exprs = " ".join(_dashboard_exprs())
    assert "histogram_quantile(0.99" in exprs


ALERT_TESTS = """
rule_files: [{rules}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'deid_jobs{{state="quarantined", instance="gw1"}}'
        values: '0 0 2 2 2 2 2 2 2 2'
      - series: 'deid_destination_up{{destination="research", instance="gw1"}}'
        values: '1 0 0 0 0 0 0 0 0 0 0 0 0'
      - series: 'deid_scrubber_configured{{instance="gw1"}}'
        values: '1x20'
      - series: 'deid_build_info{{instance="gw1", node="n", version="0.1.0"}}'
        values: '1x800'
    alert_rule_test:
      - eval_time: 9m
        alertname: DeidQuarantineNotEmpty
        exp_alerts:
          - exp_labels: {{severity: warning}}
      - eval_time: 12m
        alertname: DeidDestinationDown
        exp_alerts:
          - exp_labels: {{severity: critical, destination: research, instance: gw1}}
      - eval_time: 5m
        alertname: DeidScrubberDown
        exp_alerts:
          - exp_labels: {{severity: critical, instance: gw1}}
      - eval_time: 3h
        alertname: DeidNoTrafficDuringWorkingHours
        exp_alerts: []
      - eval_time: 11h
        alertname: DeidNoTrafficDuringWorkingHours
        exp_alerts:
          - exp_labels: {{severity: warning, instance: gw1}}
"""


def test_alert_rules_fire_on_synthetic_series(tmp_path: Path) -> None:
    """promtool's rule unit test: quarantine, destination, scrubber and no-traffic alerts fire
    when they should (1970-01-01 was a Thursday; 03:00 UTC is outside working hours).

    The rules are deploy/'s, annotations removed (promtool would compare their text too)."""
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(rules))
    test = tmp_path / "alerts_test.yml"
    test.write_text(ALERT_TESTS.format(rules=json.dumps(str(tmp_path / "alerts.yml"))))
    result = _promtool("test", "rules", str(test))
    assert result.returncode == 0, result.stdout + result.stderr


def test_readyz_reports_an_unreachable_destination(tmp_path: Path) -> None:
    """With its only destination refusing connections (and no grace), /readyz answers 503 and
    names the destinations check; /healthz still answers 200."""
    files = [p for p, _ts in dicomgen.mixed_set(tmp_path / "data", 1)]
    cfg = {
        "destinations": [{"name": "nowhere", "ae_title": "NONE", "host": "127.0.0.1",
                          "port": free_port(), "backoff_initial": 0.2, "backoff_max": 0.5}],
        "pipeline": {"stages": ["passthrough"]},
        "metrics": {"ready_destination_grace_seconds": 0},
    }
    with gateway(tmp_path / "gw", cfg) as g:
        base = f"http://127.0.0.1:{g.settings['metrics']['port']}"
        storescu(g.port, files)

        def readyz() -> tuple[int, dict[str, Any]]:
            try:
                with urllib.request.urlopen(f"{base}/readyz", timeout=10) as r:
                    return r.status, json.loads(r.read())
            except urllib.error.HTTPError as err:
                return err.code, json.loads(err.read())

        wait_for(lambda: readyz()[0] == 503, 30, 0.3, "not ready")
        status, body = readyz()
        assert status == 503 and body["failed"] == ["destinations"]
        assert body["checks"]["destinations"]["nowhere"]["up"] is False
        with urllib.request.urlopen(f"{base}/healthz", timeout=10) as r:
            assert r.status == 200
        assert total(scrape(int(g.settings["metrics"]["port"])), "deid_destination_up") == 0
