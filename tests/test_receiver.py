"""The C-STORE SCP in-process, driven by a pynetdicom client: statuses, durability, streaming."""

from __future__ import annotations

import random
import shutil
import ssl
import subprocess
import tempfile
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    RLELossless,
    generate_uid,
)
from pynetdicom import AE, _config
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from gateway.app import configure_pynetdicom
from gateway.config import parse_settings
from gateway.db import make_engine, upgrade
from gateway.jobs.states import JobState
from gateway.jobs.store import JobStore
from gateway.receive.negotiation import accepted_transfer_syntaxes
from gateway.receive.scp import SpoolBudget, StoreHandler, read_header_facts, start_receiver
from gateway.spool import Spool

import dicomgen
from harness import can_mount, free_port, tmpfs

_FLAGS = (
    "STORE_RECV_CHUNKED_DATASET",
    "STORE_SEND_CHUNKED_DATASET",
    "UNRESTRICTED_STORAGE_SERVICE",
    "LOG_REQUEST_IDENTIFIERS",
    "LOG_RESPONSE_IDENTIFIERS",
)


@dataclass
class Receiver:
    port: int
    store: JobStore
    spool: Spool
    events: list[tuple[str, dict[str, str], float]]


@pytest.fixture
def pynetdicom_flags() -> Iterator[None]:
    saved = {f: getattr(_config, f) for f in _FLAGS}
    saved_tmp = tempfile.tempdir
    yield
    for f, v in saved.items():
        setattr(_config, f, v)
    tempfile.tempdir = saved_tmp


def _receiver(tmp_path: Path, **receiver: Any) -> Iterator[Receiver]:
    spool_cfg = receiver.pop("spool", {})
    settings = parse_settings({
        "receiver": {"port": free_port(), **receiver},
        "spool": {"root": str(tmp_path / "spool"), **spool_cfg},
    })
    spool = Spool(settings.spool.root)
    spool.create()
    engine = make_engine(f"sqlite:///{tmp_path / 'g.db'}")
    upgrade(engine)
    store = JobStore(engine, "node")
    configure_pynetdicom(spool.tmp)
    events: list[tuple[str, dict[str, str], float]] = []
    handler = StoreHandler(
        store, spool, SpoolBudget(spool, settings.spool), "DEID_GATEWAY",
        lambda n, labels, v: events.append((n, labels, v)),
    )
    server = start_receiver(settings.receiver, handler)
    try:
        yield Receiver(settings.receiver.port, store, spool, events)
    finally:
        server.shutdown()
        engine.dispose()


@pytest.fixture
def receiver(tmp_path: Path, pynetdicom_flags: None) -> Iterator[Receiver]:
    yield from _receiver(tmp_path)


def _assoc(port: int, contexts: list[tuple[str, list[str]]], calling: str = "TESTSCU") -> Any:
    ae = AE(ae_title=calling)
    for sop, tss in contexts:
        ae.add_requested_context(sop, tss)
    assoc = ae.associate("127.0.0.1", port, ae_title="DEID_GATEWAY")
    assert assoc.is_established
    return assoc


def _ct(tmp_path: Path, name: str = "ct.dcm", size: int = 32) -> Path:
    study = dicomgen.Study.random(random.Random(3))
    return dicomgen.save(dicomgen.ct(study, generate_uid(), 1, size=size), tmp_path / name)


def test_echo(receiver: Receiver) -> None:
    """Verification (C-ECHO) answers Success."""
    assoc = _assoc(receiver.port, [(Verification, [ExplicitVRLittleEndian])])
    assert assoc.send_c_echo().Status == 0
    assoc.release()


def test_store_is_durable_before_success(receiver: Receiver, tmp_path: Path) -> None:
    """Success means: the bytes are in incoming/ and a received job row is committed."""
    path = _ct(tmp_path)
    assoc = _assoc(receiver.port, [(dicomgen.CT_IMAGE, [ExplicitVRLittleEndian])])
    assert assoc.send_c_store(path).Status == 0x0000
    assoc.release()
    assert receiver.store.counts()["received"] == 1
    [stored] = list(receiver.spool.incoming.iterdir())
    sent, got = dcmread(path), dcmread(stored)
    assert got.SOPInstanceUID == sent.SOPInstanceUID
    assert got.PixelData == sent.PixelData
    assert got.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    [job] = receiver.store.list_state(JobState.RECEIVED)
    assert job.calling_ae == "TESTSCU" and job.modality == "CT"
    assert job.size_bytes == stored.stat().st_size


def test_private_sop_class_is_accepted(receiver: Receiver, tmp_path: Path) -> None:
    """A private or unknown storage SOP class is accepted and stored like any other."""
    private = "1.2.826.0.1.3680043.10.1038.5.1.1"
    ds = dcmread(_ct(tmp_path))
    ds.SOPClassUID = private
    ds.file_meta.MediaStorageSOPClassUID = private
    path = tmp_path / "private.dcm"
    ds.save_as(path, enforce_file_format=True)
    assoc = _assoc(receiver.port, [(private, [ExplicitVRLittleEndian])])
    assert assoc.send_c_store(path).Status == 0x0000
    assoc.release()
    assert receiver.store.counts()["received"] == 1


def test_transfer_syntax_pydicom_cannot_carry_is_refused(receiver: Receiver) -> None:
    """A context proposing only an unknown transfer syntax is rejected, the others accepted."""
    ae = AE(ae_title="TESTSCU")
    ae.add_requested_context(dicomgen.CT_IMAGE, ["1.2.3.4.5.6.7.8.9"])
    ae.add_requested_context(dicomgen.MR_IMAGE, ["1.2.3.4.5.6.7.8.9", ExplicitVRLittleEndian])
    assoc = ae.associate("127.0.0.1", receiver.port, ae_title="DEID_GATEWAY")
    assert assoc.is_established
    accepted = {(cx.abstract_syntax, cx.transfer_syntax[0]) for cx in assoc.accepted_contexts}
    assert accepted == {(dicomgen.MR_IMAGE, ExplicitVRLittleEndian)}
    assoc.release()


def test_compressed_is_stored_as_received(receiver: Receiver, tmp_path: Path) -> None:
    """An RLE instance is stored with its encapsulated pixel data untouched."""
    study = dicomgen.Study.random(random.Random(5))
    path = dicomgen.save(dicomgen.ct(study, generate_uid(), 1), tmp_path / "rle.dcm",
                         "1.2.840.10008.1.2.5")
    assoc = _assoc(receiver.port, [(dicomgen.CT_IMAGE, ["1.2.840.10008.1.2.5"])])
    assert assoc.send_c_store(path).Status == 0
    assoc.release()
    [stored] = list(receiver.spool.incoming.iterdir())
    assert dcmread(stored).PixelData == dcmread(path).PixelData


def test_deflated_is_stored_as_received(receiver: Receiver, tmp_path: Path) -> None:
    """A Deflated Explicit VR Little Endian instance gets Success and is stored deflated, its
    inflated data set the one that was sent."""
    study = dicomgen.Study.random(random.Random(6))
    path = dicomgen.save(dicomgen.ct(study, generate_uid(), 1), tmp_path / "dfl.dcm",
                         DeflatedExplicitVRLittleEndian)
    assoc = _assoc(receiver.port, [(dicomgen.CT_IMAGE, [DeflatedExplicitVRLittleEndian])])
    assert assoc.send_c_store(path).Status == 0x0000
    assoc.release()
    [stored] = list(receiver.spool.incoming.iterdir())
    got, sent = dcmread(stored), dcmread(path)
    assert got.file_meta.TransferSyntaxUID == DeflatedExplicitVRLittleEndian
    assert got.PixelData == sent.PixelData and got.PatientID == sent.PatientID
    [job] = receiver.store.list_state(JobState.RECEIVED)
    assert job.transfer_syntax_uid == DeflatedExplicitVRLittleEndian


def test_truncated_deflate_stream_is_refused(tmp_path: Path) -> None:
    """A deflated data set whose stream ends early cannot be understood (0xC000 material)."""
    study = dicomgen.Study.random(random.Random(7))
    path = dicomgen.save(dicomgen.ct(study, generate_uid(), 1), tmp_path / "dfl.dcm",
                         DeflatedExplicitVRLittleEndian)
    assert read_header_facts(path).transfer_syntax_uid == DeflatedExplicitVRLittleEndian
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(path.read_bytes()[:-64])
    with pytest.raises((ValueError, zlib.error)):
        read_header_facts(cut)


def test_every_accepted_syntax_is_one_pydicom_reads() -> None:
    """The SCP accepts none of the Real-Time Video or deflated JPIP syntaxes, and accepts
    Deflated Explicit VR Little Endian."""
    accepted = {str(ts) for ts in accepted_transfer_syntaxes()}
    assert DeflatedExplicitVRLittleEndian in accepted
    assert not any(ts.startswith("1.2.840.10008.1.2.7.") for ts in accepted)
    assert "1.2.840.10008.1.2.4.205" not in accepted
    assert {"1.2.840.10008.1.2.4.204", RLELossless} <= accepted


def _garbage_file(tmp_path: Path) -> Path:
    """Valid file meta followed by an element whose length runs past the end of the data."""
    ds = dcmread(_ct(tmp_path))
    path = tmp_path / "broken.dcm"
    with open(path, "wb") as fh:
        fh.write(b"\x00" * 128 + b"DICM")
        write_file_meta_info(fh, ds.file_meta)  # type: ignore[arg-type]
        # (0008,0016) UI with length 0xFFF0 but only a few bytes follow
        fh.write(b"\x08\x00\x16\x00UI\xf0\xff1.2.3")
    return path


def test_malformed_dataset_is_refused_cannot_understand(receiver: Receiver, tmp_path: Path) -> None:
    """A dataset that cannot be parsed gets 0xC000 and leaves nothing behind."""
    path = _garbage_file(tmp_path)
    assoc = _assoc(receiver.port, [(dicomgen.CT_IMAGE, [ExplicitVRLittleEndian])])
    assert assoc.send_c_store(path).Status == 0xC000
    assoc.release()
    assert receiver.store.counts()["received"] == 0
    assert not list(receiver.spool.incoming.iterdir())


def test_truncated_sequence_is_refused_cannot_understand(
    receiver: Receiver, tmp_path: Path
) -> None:
    """A sequence cut off by the end of the data (pydicom raises a bare OSError, with no
    errno) is the sender's problem: 0xC000, not the 0xA700 of a failed spool write."""
    ds = dcmread(_ct(tmp_path))
    path = tmp_path / "cut-sequence.dcm"
    uid = b"1.2.840.10008.5.1.4.1.1.2\x00"
    with open(path, "wb") as fh:
        fh.write(b"\x00" * 128 + b"DICM")
        write_file_meta_info(fh, ds.file_meta)  # type: ignore[arg-type]
        fh.write(b"\x08\x00\x16\x00UI" + len(uid).to_bytes(2, "little") + uid)
        fh.write(b"\x08\x00\x40\x11SQ\x00\x00\xff\xff\xff\xff")  # (0008,1140), no items
    with pytest.raises(OSError) as raised:
        read_header_facts(path)
    assert raised.value.errno is None
    assoc = _assoc(receiver.port, [(dicomgen.CT_IMAGE, [ExplicitVRLittleEndian])])
    assert assoc.send_c_store(path).Status == 0xC000
    assoc.release()
    assert receiver.store.counts()["received"] == 0


@pytest.mark.skipif(not can_mount(), reason="mounting a tmpfs needs root")
def test_full_disk_while_streaming_refuses_and_keeps_the_association(
    tmp_path: Path, pynetdicom_flags: None
) -> None:
    """A data set that does not fit on the spool's file system gets 0xA700 (disk_full), not an
    aborted association; nothing is kept of it, and an instance that fits is then stored."""
    with tmpfs(tmp_path / "spool", "1m"):
        for r in _receiver(tmp_path, spool={"min_free_bytes": 0}):
            big = _ct(tmp_path, "big.dcm", size=768)  # 1.1 MiB of pixels
            small = _ct(tmp_path, "small.dcm", size=64)
            assoc = _assoc(r.port, [(dicomgen.CT_IMAGE, [ExplicitVRLittleEndian]),
                                    (Verification, [ExplicitVRLittleEndian])])
            assert assoc.send_c_store(big).Status == 0xA700
            assert assoc.is_established
            assert ("store_refused", {"calling_ae": "TESTSCU", "reason": "disk_full"}, 1) \
                in r.events
            assert not list(r.spool.tmp.iterdir()) and not list(r.spool.incoming.iterdir())
            assert assoc.send_c_echo().Status == 0
            assert assoc.send_c_store(small).Status == 0x0000
            assoc.release()
            assert r.store.counts()["received"] == 1


def test_spool_over_limit_refuses_out_of_resources(
    tmp_path: Path, pynetdicom_flags: None
) -> None:
    """Above the spool limit the SCP answers 0xA700 so the sender keeps the image."""
    for r in _receiver(tmp_path, spool={"max_bytes": 1}):
        (r.spool.incoming / "filler.dcm").write_bytes(b"x" * 10)
        path = _ct(tmp_path)
        assoc = _assoc(r.port, [(dicomgen.CT_IMAGE, [ExplicitVRLittleEndian])])
        time.sleep(1.1)  # let the budget rescan the spool
        assert assoc.send_c_store(path).Status == 0xA700
        assoc.release()
        assert r.store.counts()["received"] == 0
        assert ("store_refused", {"calling_ae": "TESTSCU", "reason": "spool_full"}, 1) in r.events


def test_database_failure_refuses_and_removes_file(
    receiver: Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the job row cannot be committed, the answer is 0xA700 and no file lingers."""

    def broken(*_a: Any, **_k: Any) -> None:
        raise RuntimeError("database is down")

    monkeypatch.setattr(receiver.store, "add_received", broken)
    assoc = _assoc(receiver.port, [(dicomgen.CT_IMAGE, [ExplicitVRLittleEndian])])
    assert assoc.send_c_store(_ct(tmp_path)).Status == 0xA700
    assoc.release()
    assert not list(receiver.spool.incoming.iterdir())


def test_large_instance_is_streamed_not_held(receiver: Receiver, tmp_path: Path) -> None:
    """A 64 MB instance is received with far less than 64 MB of Python memory."""
    ds = dcmread(_ct(tmp_path))
    ds.Rows = ds.Columns = 4096  # 4096 x 4096 x 2 bytes = 32 MiB per frame
    ds.NumberOfFrames = 2
    ds.PixelData = np.zeros((2, 4096, 4096), dtype=np.uint16).tobytes()
    big = tmp_path / "big.dcm"
    ds.save_as(big, enforce_file_format=True)
    del ds
    assoc = _assoc(receiver.port, [(dicomgen.CT_IMAGE, [ExplicitVRLittleEndian])])
    tracemalloc.start()
    status = assoc.send_c_store(big)  # the client streams from the file too
    _cur, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assoc.release()
    assert status.Status == 0
    assert peak < 16 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB"
    [stored] = list(receiver.spool.incoming.iterdir())
    assert stored.stat().st_size >= 64 * 1024 * 1024


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return key, cert


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_tls_receiver(tmp_path: Path, pynetdicom_flags: None) -> None:
    """With TLS configured, a TLS client stores and a plain-TCP client cannot associate."""
    key, cert = _self_signed(tmp_path)
    tls = {"certificate": str(cert), "private_key": str(key)}
    for r in _receiver(tmp_path, tls=tls):
        ae = AE(ae_title="TLSSCU")
        ae.add_requested_context(dicomgen.CT_IMAGE, [ExplicitVRLittleEndian])
        plain = ae.associate("127.0.0.1", r.port, ae_title="DEID_GATEWAY")
        assert not plain.is_established
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(cert))
        ctx.check_hostname = False
        assoc = ae.associate("127.0.0.1", r.port, ae_title="DEID_GATEWAY",
                             tls_args=(ctx, None))
        assert assoc.is_established
        assert assoc.send_c_store(_ct(tmp_path)).Status == 0
        assoc.release()
        assert r.store.counts()["received"] == 1
