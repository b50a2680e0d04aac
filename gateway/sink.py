"""A local research-PACS sink for trying the gateway out: a storage SCP writing what it receives
to ``<root>/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm``.

It answers Success only after the file is written and fsynced, like a PACS that deserves the
name. It is also the reference receiver of the benchmarks.
"""

from __future__ import annotations

import os
import re
import signal
import tempfile
import threading
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pynetdicom import AE, _config, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from gateway import flowcontrol
from gateway.config import SinkSettings
from gateway.spool import fsync_dir, fsync_file

_SAFE = re.compile(r"[^0-9A-Za-z.]")


def _component(uid: object) -> str:
    text = _SAFE.sub("_", str(uid or "unknown"))[:64]
    return text or "unknown"


class SinkHandler:
    def __init__(self, root: Path, fsync: bool = True) -> None:
        self.root = root
        self.fsync = fsync
        self.count = 0
        self._lock = threading.Lock()

    def __call__(self, event: Any) -> int:
        src = Path(event.dataset_path)
        try:
            ds = dcmread(
                src,
                stop_before_pixels=True,
                specific_tags=["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"],
            )
        except Exception:
            return 0xC000
        folder = self.root / _component(ds.get("StudyInstanceUID")) / _component(
            ds.get("SeriesInstanceUID")
        )
        folder.mkdir(parents=True, exist_ok=True)
        dst = folder / f"{_component(ds.get('SOPInstanceUID'))}.dcm"
        try:
            if self.fsync:
                fsync_file(src)
            os.replace(src, dst)
            if self.fsync:
                fsync_dir(folder)
        except OSError:
            return 0xA700
        with self._lock:
            self.count += 1
        return 0x0000


def start_sink(settings: SinkSettings, fsync: bool = True) -> tuple[Any, SinkHandler]:
    """Start the sink SCP in the background; returns (server, handler)."""
    root = settings.root.resolve()
    (root / ".tmp").mkdir(parents=True, exist_ok=True)
    tempfile.tempdir = str(root / ".tmp")  # received streams land on the same file system
    flowcontrol.install()
    _config.STORE_RECV_CHUNKED_DATASET = True
    _config.UNRESTRICTED_STORAGE_SERVICE = True
    _config.LOG_REQUEST_IDENTIFIERS = False
    _config.LOG_RESPONSE_IDENTIFIERS = False
    handler = SinkHandler(root, fsync)
    ae = AE(ae_title=settings.ae_title)
    ae.maximum_associations = 64
    ae.maximum_pdu_size = settings.maximum_pdu_size
    ae.add_supported_context(Verification)
    server = ae.start_server(
        (settings.bind_address, settings.port),
        block=False,
        evt_handlers=[(evt.EVT_C_STORE, handler)],
    )
    return server, handler


def run_sink(settings: SinkSettings, fsync: bool = True) -> None:
    """Run the sink in the foreground until SIGTERM or SIGINT."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server, _handler = start_sink(settings, fsync)
    try:
        stop.wait()
    finally:
        server.shutdown()
