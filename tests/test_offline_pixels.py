"""The offline command with the default pipeline (filter, pixels, deidentify, verify): with no
scrubber process to serve the pixel stage, the detector runs in the worker processes, so that
``deid-gateway anonymize IN OUT`` scrubs burned-in text out of the box."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml
from pydicom import dcmread

from gateway.config import Settings, parse_settings
from gateway.deid.offline import pixel_service
from gateway.pixels.service import socket_path

import pixels_data

CLI = [sys.executable, "-m", "gateway.cli"]


def _settings(tmp_path: Path) -> Settings:
    return parse_settings({"spool": {"root": str(tmp_path / "spool")},
                           "runtime": {"dir": str(tmp_path / "run")}})


@pytest.fixture
def answering_scrubber(tmp_path: Path) -> Iterator[Path]:
    """A Unix socket at the configured scrubber path that answers the scrubber's hello."""
    path = socket_path(_settings(tmp_path))
    path.parent.mkdir(parents=True, exist_ok=True)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(4)
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn, conn.makefile("rb") as reader:
                if reader.readline():
                    conn.sendall(json.dumps({"version": "fake@1"}).encode() + b"\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield path
    stop.set()
    thread.join(5)
    server.close()


def test_no_scrubber_means_the_detector_runs_in_process(tmp_path: Path) -> None:
    """With nothing on the scrubber socket, the offline workers get ``mode: inprocess`` and a
    notice that says so."""
    settings = _settings(tmp_path)
    assert settings.pixels.service.mode == "scrubber"
    chosen, notice = pixel_service(settings)
    assert chosen.pixels.service.mode == "inprocess"
    assert notice is not None and "runs in each worker process" in notice
    assert chosen.pipeline.stages == settings.pipeline.stages


def test_a_scrubber_that_answers_is_used(tmp_path: Path, answering_scrubber: Path) -> None:
    """When a scrubber answers on the configured socket, the offline command uses it."""
    settings = _settings(tmp_path)
    chosen, notice = pixel_service(settings)
    assert (chosen.pixels.service.mode, notice) == ("scrubber", None)


def test_anonymize_with_the_embedded_defaults_scrubs_burned_in_text(tmp_path: Path) -> None:
    """``deid-gateway anonymize IN OUT`` with no pixel settings: the ultrasound frame is
    scrubbed and written, not quarantined for want of a scrubber process."""
    planted = pixels_data.ultrasound(rows=240, columns=320)
    src = tmp_path / "in" / "us.dcm"
    src.parent.mkdir()
    planted.ds.save_as(src, enforce_file_format=True)
    before = planted.ds.pixel_array
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump({
        "spool": {"root": str(tmp_path / "spool")},
        "database": {"url": f"sqlite:///{tmp_path / 'g.db'}"},
    }))
    run = subprocess.run([*CLI, "anonymize", str(src.parent), str(tmp_path / "out"), "-c",
                          str(config), "--quarantine", str(tmp_path / "q")],
                         capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr[-2000:]
    assert "done 1, filtered 0, quarantined 0" in run.stdout
    assert "the text detector runs in each worker process" in run.stderr
    [out] = list((tmp_path / "out").rglob("*.dcm"))
    ds = dcmread(out)
    assert ds.BurnedInAnnotation == "NO"
    assert "113101" in {item.CodeValue for item in ds.DeidentificationMethodCodeSequence}
    after = ds.pixel_array
    for box in planted.boxes:
        region = (slice(box.y0, box.y1), slice(box.x0, box.x1))
        assert not np.array_equal(after[region], before[region])
    assert pixels_data.PATIENT_ID not in run.stderr + run.stdout
