"""End to end: DCMTK storescu -> gateway (CLI subprocess) -> a real Orthanc, checked over REST."""

from __future__ import annotations

import random
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)

import dicomgen
from harness import (
    Gateway,
    Orthanc,
    dcmsend,
    destination,
    free_port,
    gateway,
    orthanc,
    storescu,
    wait_for,
)

pytestmark = pytest.mark.integration


def _uids(paths: list[Path]) -> set[str]:
    return {str(dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in paths}


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """300 instances: CT, MR, US and SC, explicit and implicit VR, and RLE Lossless."""
    root = tmp_path_factory.mktemp("mixed")
    return [p for p, _ts in dicomgen.mixed_set(root, 300)]


def _passthrough(o_dest: dict[str, object], url: str | None = None) -> dict[str, object]:
    cfg: dict[str, object] = {
        "destinations": [o_dest],
        "pipeline": {"stages": ["passthrough"]},
    }
    if url:
        cfg["database"] = {"url": url}
    return cfg


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_every_instance_arrives_once(
    backend: str, mixed: list[Path], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Hundreds of mixed-syntax instances from storescu each reach Orthanc exactly once."""
    url = request.getfixturevalue("pg_url") if backend == "postgresql" else None
    with orthanc(tmp_path / "orthanc") as o, gateway(
        tmp_path / "gw", _passthrough(destination(o), url)
    ) as g:
        storescu(g.port, [mixed[0].parent.parent])
        wait_for(lambda: g.status().get("sent") == len(mixed), 180, 0.5, "all sent")
        assert o.count_instances() == len(mixed)
        assert o.new_instance_events() == len(mixed)
        assert set(o.sop_instance_uids()) == _uids(mixed)
        st = g.status()
        assert st["quarantined"] == 0 and st["received"] == 0 and st["ready"] == 0
        # nothing is left in the spool once the PACS confirmed
        spool = tmp_path / "gw" / "spool"
        assert not list((spool / "incoming").iterdir())
        assert not list((spool / "outgoing").iterdir())
    # the compressed instances were forwarded as received, not transcoded
    rle = [p for p in (tmp_path / "orthanc" / "storage").rglob("*") if p.is_file()]
    syntaxes = {str(dcmread(p, stop_before_pixels=True).file_meta.TransferSyntaxUID) for p in rle}
    assert "1.2.840.10008.1.2.5" in syntaxes


def _acknowledged(stdout: str) -> list[Path]:
    """Files storescu saw acknowledged with Success (from its -v log)."""
    acked: list[Path] = []
    current: Path | None = None
    for line in stdout.splitlines():
        m = re.search(r"Sending file: (.+\.dcm)", line)
        if m:
            current = Path(m.group(1).strip())
        elif "Received Store Response (Success)" in line and current is not None:
            acked.append(current)
            current = None
    return acked


def _send_in_background(
    g: Gateway, mixed: list[Path], o: Orthanc, tmp_path: Path
) -> tuple[threading.Thread, dict[str, subprocess.CompletedProcess[str]]]:
    """Start storescu on the whole set in a thread; return once ~60 instances are in."""
    result: dict[str, subprocess.CompletedProcess[str]] = {}

    def send() -> None:
        result["p"] = storescu(
            g.port, [mixed[0].parent.parent], options=("-xr", "-v"), check=False
        )

    t = threading.Thread(target=send)
    t.start()
    wait_for(lambda: len(list((tmp_path / "gw" / "spool" / "incoming").iterdir()))
             + o.count_instances() >= 60, 60, 0.05, "some instances received")
    return t, result


def test_sigkill_mid_stream_loses_nothing_acknowledged(mixed: list[Path], tmp_path: Path) -> None:
    """The gateway is SIGKILLed while receiving; every acknowledged instance still arrives."""
    with orthanc(tmp_path / "orthanc") as o:
        g = Gateway(tmp_path / "gw", _passthrough(destination(o))).start()
        t, result = _send_in_background(g, mixed, o, tmp_path)
        g.kill()
        t.join(120)
        acked = _acknowledged(result["p"].stdout + result["p"].stderr)
        assert 30 <= len(acked) < len(mixed), "the kill should land mid-stream"
        g2 = Gateway(tmp_path / "gw", g.settings).start()
        try:
            wait_for(lambda: _uids(acked) <= set(o.sop_instance_uids()), 120, 1.0,
                     "acknowledged instances at the PACS")
            st = g2.status()
            assert st["quarantined"] == 0
        finally:
            g2.stop()


def test_destination_down_then_up(mixed: list[Path], tmp_path: Path) -> None:
    """With the PACS down, instances queue; once it comes up, all arrive and none is held."""
    files = mixed[:40]
    o_root = tmp_path / "orthanc"
    o = Orthanc(o_root)  # configured but not started yet
    dest = destination(o, backoff_initial=0.2, backoff_max=1.0, max_attempts=3)
    with gateway(tmp_path / "gw", _passthrough(dest)) as g:
        storescu(g.port, files)
        wait_for(lambda: g.status().get("ready") == len(files), 60, 0.3, "all queued")
        o.start()
        try:
            wait_for(lambda: g.status().get("sent") == len(files), 120, 0.5, "all sent")
            assert o.count_instances() == len(files)
            assert g.status()["quarantined"] == 0  # an outage is not the instances' fault
        finally:
            o.stop()


def test_caller_not_on_allow_list_is_rejected(mixed: list[Path], tmp_path: Path) -> None:
    """Only allow-listed calling AE titles (and hosts) may associate."""
    cfg = {
        "receiver": {
            "allowed_callers": [
                {"ae_title": "GOODSCU"},
                {"ae_title": "PINNEDSCU", "host": "192.0.2.10"},
            ]
        },
        "destinations": [
            {"name": "nowhere", "ae_title": "NONE", "host": "127.0.0.1", "port": free_port()}
        ],
        "pipeline": {"stages": ["passthrough"]},
    }
    files = mixed[:2]
    with gateway(tmp_path / "gw", cfg) as g:
        bad = storescu(g.port, files, calling="BADSCU", check=False)
        assert bad.returncode != 0
        assert "Rejected" in (bad.stdout + bad.stderr) or "rejected" in (bad.stdout + bad.stderr)
        pinned = storescu(g.port, files, calling="PINNEDSCU", check=False)
        assert pinned.returncode != 0  # right title, wrong host
        storescu(g.port, files, calling="GOODSCU")
        st = g.status()
        assert st["received"] + st["processing"] + st["ready"] == len(files)


def test_sigterm_mid_stream_then_restart_resumes(mixed: list[Path], tmp_path: Path) -> None:
    """SIGTERM while receiving: the gateway exits cleanly and a restart delivers the rest."""
    with orthanc(tmp_path / "orthanc") as o:
        g = Gateway(tmp_path / "gw", _passthrough(destination(o))).start()
        t, result = _send_in_background(g, mixed, o, tmp_path)
        assert g.stop(timeout=60) == 0
        t.join(120)
        acked = _acknowledged(result["p"].stdout + result["p"].stderr)
        assert len(acked) >= 60
        g2 = Gateway(tmp_path / "gw", g.settings).start()
        try:
            wait_for(lambda: _uids(acked) <= set(o.sop_instance_uids()), 120, 0.5, "all sent")
            # at most the one instance in flight at the signal may be stored unacknowledged
            assert len(acked) <= o.count_instances() <= len(acked) + 1
            assert o.new_instance_events() == o.count_instances()
            assert len(acked) < len(mixed), "senders are refused once shutdown begins"
        finally:
            g2.stop()


def test_sigterm_to_the_whole_process_group_exits(tmp_path: Path) -> None:
    """A service manager's SIGTERM to every process of the gateway at once still ends in a clean
    exit (a shared multiprocessing.Event used to deadlock the parent here)."""
    import os
    import signal

    g = Gateway(tmp_path / "gw", {"destinations": [
        {"name": "nowhere", "ae_title": "NONE", "host": "127.0.0.1", "port": free_port()}]}
    ).start()
    assert g.proc is not None
    time.sleep(3)  # workers, forwarder, scrubber up and waiting
    os.killpg(g.proc.pid, signal.SIGTERM)
    try:
        assert g.proc.wait(45) == 0
    finally:
        g.kill()


def _compressed_folder(root: Path) -> dict[str, str]:
    """One folder of SC instances in six transfer syntaxes, uncompressed and compressed;
    SOP Instance UID -> syntax of its file."""
    rng = random.Random(7)
    study, series = dicomgen.Study.random(rng), generate_uid()
    out: dict[str, str] = {}
    for i, ts in enumerate((ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless,
                            JPEGLSLossless, JPEG2000Lossless, JPEGBaseline8Bit)):
        ds = dicomgen.sc(study, series, i + 1)
        dicomgen.save(ds, root / f"{i}.dcm", ts)
        out[str(ds.SOPInstanceUID)] = ts
    return out


def test_dcmsend_sends_a_folder_of_mixed_compressed_syntaxes_whole(tmp_path: Path) -> None:
    """The README's command for mixed folders: DCMTK's dcmsend proposes each file's own
    syntax, the gateway accepts every one, and each instance reaches Orthanc in the syntax it
    was received in (passthrough), in one run."""
    folder = tmp_path / "mixed"
    folder.mkdir()
    sent = _compressed_folder(folder)
    assert len(set(sent.values())) == 6
    with orthanc(tmp_path / "orthanc") as o, gateway(
        tmp_path / "gw", _passthrough(destination(o))
    ) as g:
        dcmsend(g.port, folder)
        wait_for(lambda: g.status().get("sent") == len(sent), 120, 0.5, "all sent")
        assert set(o.sop_instance_uids()) == set(sent)
        assert g.status()["quarantined"] == 0
    stored = {}
    for p in (tmp_path / "orthanc" / "storage").rglob("*"):
        if p.is_file():
            ds = dcmread(p, stop_before_pixels=True)
            stored[str(ds.SOPInstanceUID)] = str(ds.file_meta.TransferSyntaxUID)
    # implicit VR may be re-encoded as explicit on the way (a network syntax, not a codec)
    compressed = {u: ts for u, ts in sent.items()
                  if ts not in (ImplicitVRLittleEndian, ExplicitVRLittleEndian)}
    assert {u: stored[u] for u in compressed} == compressed
