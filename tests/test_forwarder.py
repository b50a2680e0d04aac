"""The forwarder against a scriptable pynetdicom PACS: reuse, fallback, statuses, outages."""

from __future__ import annotations

import random
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RLELossless,
    generate_uid,
)
from pynetdicom import AE, _config, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from gateway.app import configure_pynetdicom
from gateway.config import DestinationSettings
from gateway.db import make_engine, upgrade
from gateway.forward.association import associate
from gateway.forward.association import supported as association_supported
from gateway.forward.scu import Forwarder
from gateway.jobs.states import JobState
from gateway.jobs.store import JobStore, NewJob
from gateway.spool import Spool

import dicomgen
from harness import free_port, wait_for

_FLAGS = ("STORE_RECV_CHUNKED_DATASET", "STORE_SEND_CHUNKED_DATASET",
          "UNRESTRICTED_STORAGE_SERVICE")


@dataclass
class FakePacs:
    """A storage SCP whose accepted syntaxes and answers a test chooses."""

    port: int
    syntaxes: list[str]
    statuses: list[int] = field(default_factory=list)  # answers in order, then Success
    hang: int = 0  # this many C-STOREs get no answer until `unhang` is set (or the test ends)
    received: list[Any] = field(default_factory=list)
    received_meta: list[Any] = field(default_factory=list)
    received_at: list[float] = field(default_factory=list)  # time.monotonic() of each C-STORE
    associations: int = 0
    echoes: int = 0
    unhang: threading.Event = field(default_factory=threading.Event)
    server: Any = None

    def start(self) -> FakePacs:
        # Only the syntaxes chosen here are accepted (the gateway's receiver, configured in
        # this process by the rig, would otherwise make pynetdicom accept anything proposed).
        _config.UNRESTRICTED_STORAGE_SERVICE = False
        ae = AE(ae_title="FAKEPACS")
        for sop in (dicomgen.CT_IMAGE, dicomgen.MR_IMAGE):
            ae.add_supported_context(sop, self.syntaxes)
        ae.add_supported_context(Verification)

        def on_store(event: Any) -> int:
            self.received_at.append(time.monotonic())
            self.received.append(event.dataset)
            self.received_meta.append(event.file_meta)
            if self.hang > 0:
                self.hang -= 1
                self.unhang.wait(30)
            return self.statuses.pop(0) if self.statuses else 0x0000

        def on_echo(_event: Any) -> int:
            self.echoes += 1
            return 0x0000

        def on_accept(_event: Any) -> None:
            self.associations += 1

        self.server = ae.start_server(
            ("127.0.0.1", self.port), block=False,
            evt_handlers=[(evt.EVT_C_STORE, on_store), (evt.EVT_C_ECHO, on_echo),
                          (evt.EVT_ACCEPTED, on_accept)],
        )
        return self

    def stop(self) -> None:
        self.unhang.set()
        if self.server is not None:
            self.server.shutdown()


@dataclass
class Rig:
    store: JobStore
    spool: Spool
    tmp: Path

    def ready_job(self, ts: str = ExplicitVRLittleEndian, n: int = 1) -> str:
        """Put a processed instance in outgoing/ with a pending delivery to 'pacs'."""
        study = dicomgen.Study.random(random.Random(n))
        ds = dicomgen.ct(study, generate_uid(), n)
        job_id = f"job{n:05d}{random.randrange(10**6):06d}"
        dicomgen.save(ds, self.spool.outgoing_path(job_id), ts)
        self.store.add_received(NewJob(job_id, "MOD", "GW", ds.SOPClassUID, ts, "CT", 1000))
        [claimed] = [j for j in self.store.claim("w", 100, 60) if j.id == job_id]
        assert self.store.mark_ready(claimed.id, "w", ["pacs"], None)
        return job_id


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    saved = {f: getattr(_config, f) for f in _FLAGS}
    saved_tmp = tempfile.tempdir
    spool = Spool(tmp_path / "spool")
    spool.create()
    configure_pynetdicom(spool.tmp)
    engine = make_engine(f"sqlite:///{tmp_path / 'g.db'}")
    upgrade(engine)
    yield Rig(JobStore(engine, "node"), spool, tmp_path)
    engine.dispose()
    for f, v in saved.items():
        setattr(_config, f, v)
    tempfile.tempdir = saved_tmp


def _forwarder(rig: Rig, port: int, **kw: Any) -> tuple[Forwarder, list[str]]:
    dest = DestinationSettings(name="pacs", ae_title="FAKEPACS", host="127.0.0.1", port=port,
                               backoff_initial=0.05, backoff_max=0.1, **kw)
    sent: list[str] = []
    fwd = Forwarder(dest, rig.store, rig.spool, threading.Event(), sent.extend,
                    rng=random.Random(0))
    return fwd, sent


def _drain(fwd: Forwarder, rig: Rig, rounds: int = 20) -> None:
    for _ in range(rounds):
        batch = rig.store.claim_deliveries("pacs", 100, 60)
        if batch:
            fwd.process_batch(batch)


def test_one_association_carries_many_instances(rig: Rig) -> None:
    """Twenty instances go over a single association, each confirmed once."""
    pacs = FakePacs(free_port(), [ExplicitVRLittleEndian]).start()
    try:
        jobs = [rig.ready_job(n=i) for i in range(20)]
        fwd, sent = _forwarder(rig, pacs.port)
        _drain(fwd, rig)
        assert sorted(sent) == sorted(jobs)
        assert len(pacs.received) == 20 and pacs.associations == 1
        assert rig.store.counts()["sent"] == 20
    finally:
        pacs.stop()


def test_compressed_falls_back_to_uncompressed(rig: Rig) -> None:
    """A PACS that refuses RLE gets the instance decompressed, pixel for pixel."""
    pacs = FakePacs(free_port(), [ExplicitVRLittleEndian, ImplicitVRLittleEndian]).start()
    try:
        job = rig.ready_job(RLELossless)
        original = dcmread(rig.spool.outgoing_path(job)).pixel_array
        fwd, sent = _forwarder(rig, pacs.port)
        _drain(fwd, rig)
        assert sent == [job]
        [got] = pacs.received
        assert (got.pixel_array == original).all()
    finally:
        pacs.stop()


@pytest.mark.parametrize("ts", [DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian])
def test_deflated_and_big_endian_fall_back_to_explicit_little_endian(rig: Rig, ts: str) -> None:
    """A PACS that accepts neither deflate nor big endian gets the instance in Explicit VR
    Little Endian, every attribute and pixel the same as sent."""
    pacs = FakePacs(free_port(), [ExplicitVRLittleEndian, ImplicitVRLittleEndian]).start()
    try:
        job = rig.ready_job(ts)
        original = dcmread(rig.spool.outgoing_path(job))
        assert original.file_meta.TransferSyntaxUID == ts
        fwd, sent = _forwarder(rig, pacs.port)
        _drain(fwd, rig)
        assert sent == [job]
        [got] = pacs.received
        got.file_meta = pacs.received_meta[0]
        assert got.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert (got.pixel_array == original.pixel_array).all()
        assert got.PatientName == original.PatientName and got.Rows == original.Rows
    finally:
        pacs.stop()


def test_compressed_sent_as_is_when_accepted(rig: Rig) -> None:
    """A PACS that accepts RLE receives the encapsulated bytes unchanged."""
    pacs = FakePacs(free_port(), [RLELossless, ExplicitVRLittleEndian]).start()
    try:
        job = rig.ready_job(RLELossless)
        pixel_bytes = dcmread(rig.spool.outgoing_path(job)).PixelData
        fwd, _sent = _forwarder(rig, pacs.port)
        _drain(fwd, rig)
        [got] = pacs.received
        assert got.file_meta.TransferSyntaxUID == RLELossless
        assert got.PixelData == pixel_bytes
    finally:
        pacs.stop()


def test_permanent_refusal_quarantines(rig: Rig) -> None:
    """0xA900 (data set does not match SOP class) sends the job to quarantine at once."""
    pacs = FakePacs(free_port(), [ExplicitVRLittleEndian], statuses=[0xA900]).start()
    try:
        job = rig.ready_job()
        fwd, sent = _forwarder(rig, pacs.port)
        _drain(fwd, rig)
        assert sent == []
        info = rig.store.get(job)
        assert info is not None and info.state == JobState.QUARANTINED
        assert "0xA900" in (info.last_error or "") and info.reason_class == "forward"
        assert rig.spool.quarantined_output(job).exists()
    finally:
        pacs.stop()


def test_transient_refusal_is_retried_then_sent(rig: Rig) -> None:
    """0xA700 twice, then Success: the instance arrives after back-off, not quarantined."""
    pacs = FakePacs(free_port(), [ExplicitVRLittleEndian], statuses=[0xA700, 0xA700]).start()
    try:
        job = rig.ready_job()
        fwd, sent = _forwarder(rig, pacs.port)
        deadline = time.monotonic() + 10
        while not sent and time.monotonic() < deadline:
            _drain(fwd, rig, rounds=1)
            time.sleep(0.05)
        assert sent == [job]
        assert len(pacs.received) == 3
    finally:
        pacs.stop()


def test_too_many_transient_failures_quarantine(rig: Rig) -> None:
    """After max_attempts transient refusals the job is held, with the count in the reason."""
    pacs = FakePacs(free_port(), [ExplicitVRLittleEndian], statuses=[0xA700] * 10).start()
    try:
        job = rig.ready_job()
        fwd, _sent = _forwarder(rig, pacs.port, max_attempts=3)
        deadline = time.monotonic() + 10
        while rig.store.get(job).state != JobState.QUARANTINED:  # type: ignore[union-attr]
            assert time.monotonic() < deadline
            _drain(fwd, rig, rounds=1)
            time.sleep(0.05)
        assert "after 3 attempts" in (rig.store.get(job).last_error or "")  # type: ignore[union-attr]
    finally:
        pacs.stop()


def test_unreachable_destination_costs_no_attempts(rig: Rig) -> None:
    """While the PACS is down, deliveries wait without using up their attempts."""
    job = rig.ready_job()
    fwd, sent = _forwarder(rig, free_port(), max_attempts=2)
    for _ in range(5):
        _drain(fwd, rig, rounds=1)
    assert sent == [] and not fwd.health.up
    info = rig.store.get(job)
    assert info is not None and info.state == JobState.READY
    assert info.deliveries[0][2] == 0  # attempts


# -- pynetdicom#875: the requestor's reactor and the response send_c_store waits for ---------
class LateWakingCheckpoint(threading.Event):
    """A reactor checkpoint whose ``wait()`` returns ``delay`` seconds late, ``_is_paused``
    still True: a reactor preempted just after it woke (a GIL switch, in production)."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.set()
        self._delay = delay

    def wait(self, timeout: float | None = None) -> bool:
        woke = super().wait(timeout)
        time.sleep(self._delay)
        return woke


def _race_window(assoc: Any) -> Any:
    """Widen both halves of the #875 window on an established association: its reactor wakes
    30 ms late, and the sender reaches ``get_msg()`` 60 ms after sending (a sender preempted
    after it sent; the response is in the queue by then). pynetdicom's reactor takes the
    response in between on nearly every C-STORE."""
    if assoc.is_established:
        assoc._reactor_checkpoint = LateWakingCheckpoint(0.03)  # read anew every round
        send = assoc.dimse.send_msg

        def late_sender(*args: Any) -> None:
            send(*args)
            time.sleep(0.06)

        assoc.dimse.send_msg = late_sender
    return assoc


def _store_ae(timeout: float) -> AE:
    ae = AE(ae_title="GW")
    ae.add_requested_context(dicomgen.CT_IMAGE, ExplicitVRLittleEndian)
    ae.dimse_timeout = timeout
    return ae


def test_stock_reactor_takes_the_response_in_the_race_window(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    """With the window widened, pynetdicom's own association loses a C-STORE response to its
    reactor (#875; when this fails, upstream has fixed it and RequestorAssociation can go)."""
    pacs = FakePacs(free_port(), [ExplicitVRLittleEndian]).start()
    try:
        paths = [rig.spool.outgoing_path(rig.ready_job(n=i)) for i in range(5)]
        assoc = _race_window(_store_ae(1.0).associate("127.0.0.1", pacs.port,
                                                      ae_title="FAKEPACS"))
        with caplog.at_level("WARNING", logger="pynetdicom"):
            answered = [bool(assoc.send_c_store(p)) for p in paths if assoc.is_established]
        assert False in answered
        assert "Received unexpected C-STORE service message" in caplog.messages
        assert "DIMSE timeout reached while waiting for message response" in caplog.messages
    finally:
        pacs.stop()


def test_requestor_association_keeps_every_response_in_the_race_window(rig: Rig) -> None:
    """Under the same injection RequestorAssociation gets all 20 responses on one association,
    none of them after a DIMSE timeout."""
    pacs = FakePacs(free_port(), [ExplicitVRLittleEndian]).start()
    try:
        paths = [rig.spool.outgoing_path(rig.ready_job(n=i)) for i in range(20)]
        assoc = _race_window(associate(_store_ae(2.0), "127.0.0.1", pacs.port, "FAKEPACS"))
        started = time.monotonic()
        statuses = [assoc.send_c_store(p).get("Status") for p in paths]
        elapsed = time.monotonic() - started
        assoc.release()
        assert statuses == [0] * 20 and assoc.response_timeouts == 0
        assert elapsed < 20 * 0.1 + 1.0 and pacs.associations == 1
    finally:
        pacs.stop()


def test_forwarder_sends_a_batch_on_one_association_in_the_race_window(rig: Rig) -> None:
    """The forwarder's own associations keep every response under the injection: 20
    instances, one association, no response timeout."""
    pacs = FakePacs(free_port(), [ExplicitVRLittleEndian]).start()
    events: list[str] = []
    try:
        jobs = [rig.ready_job(n=i) for i in range(20)]
        dest = DestinationSettings(name="pacs", ae_title="FAKEPACS", host="127.0.0.1",
                                   port=pacs.port, response_timeout_seconds=2.0)
        sent: list[str] = []
        fwd = Forwarder(dest, rig.store, rig.spool, threading.Event(), sent.extend,
                        observe=lambda name, _labels, _value: events.append(name),
                        connect=lambda *a: _race_window(associate(*a)))
        _drain(fwd, rig)
        assert sorted(sent) == sorted(jobs)
        assert pacs.associations == 1 and "response_timeout" not in events
    finally:
        pacs.stop()


def test_requestor_association_is_written_for_the_installed_pynetdicom() -> None:
    """RequestorAssociation copies pynetdicom 3.0's reactor: another version must be compared
    with it (and the copy dropped if #875 is fixed there) before it is trusted."""
    assert association_supported()


# -- a destination that does not answer ------------------------------------------------------
def _recording(fwd: Forwarder) -> list[Any]:
    """The associations the forwarder opens from now on, in order."""
    opened: list[Any] = []

    def connect(*args: Any) -> Any:
        opened.append(associate(*args))
        return opened[-1]

    fwd._connect = connect
    return opened


def test_unanswered_store_is_aborted_and_sent_again_at_once_uncounted(rig: Rig) -> None:
    """A C-STORE with no response within response_timeout_seconds aborts the association and
    the instance goes again at once on a new one; the delivery succeeds on its first attempt."""
    pacs = FakePacs(free_port(), [ExplicitVRLittleEndian], hang=1).start()
    try:
        job = rig.ready_job()
        fwd, sent = _forwarder(rig, pacs.port, response_timeout_seconds=1.0)
        opened = _recording(fwd)
        _drain(fwd, rig, rounds=1)
        assert sent == [job]
        assert len(opened) == 2 and opened[0].is_aborted and not opened[1].is_aborted
        assert pacs.associations == 2 and len(pacs.received) == 2
        assert 0.9 <= pacs.received_at[1] - pacs.received_at[0] < 1.0 + 1.5
        info = rig.store.get(job)
        assert info is not None and info.deliveries[0][2] == 1  # attempts: the one claim
        assert fwd.health.up
    finally:
        pacs.stop()


def test_store_never_answered_counts_one_attempt_and_marks_the_destination_down(
    rig: Rig,
) -> None:
    """A destination that accepts and never answers: abort, resend at once, abort again within
    two timeouts, then one attempt is counted and the rest of the batch waits uncounted."""
    pacs = FakePacs(free_port(), [ExplicitVRLittleEndian], hang=1000).start()
    try:
        jobs = [rig.ready_job(n=i) for i in range(3)]
        fwd, sent = _forwarder(rig, pacs.port, response_timeout_seconds=1.0)
        opened = _recording(fwd)
        batch = rig.store.claim_deliveries("pacs", 100, 60)
        started = time.monotonic()
        fwd.process_batch(batch)
        elapsed = time.monotonic() - started
        assert sent == [] and fwd.is_down and not fwd.health.up
        assert 2.0 <= elapsed < 2.0 + 2.0
        assert len(opened) == 2 and all(a.is_aborted for a in opened)
        assert pacs.associations == 2 and len(pacs.received) == 2
        assert 0.9 <= pacs.received_at[1] - pacs.received_at[0] < 1.0 + 1.0
        first = rig.store.get(batch[0].job_id)
        assert first is not None and first.state == JobState.READY
        assert first.deliveries[0][2] == 1
        assert "no C-STORE response within 1 s" in (first.deliveries[0][3] or "")
        for job in set(jobs) - {batch[0].job_id}:
            info = rig.store.get(job)
            assert info is not None and info.deliveries[0][2] == 0
    finally:
        pacs.stop()


# -- outages -----------------------------------------------------------------------------------
def test_delivery_resumes_within_one_probe_interval_of_the_destination_coming_back(
    rig: Rig,
) -> None:
    """A destination down long enough for back-off to grow is probed every
    probe_interval_seconds; once it is back, pending deliveries (one held back by its own
    300 s back-off too) are sent within one interval."""
    port = free_port()
    jobs = [rig.ready_job(n=i) for i in range(3)]
    [held] = rig.store.claim_deliveries("pacs", 1, 60)
    rig.store.delivery_retry(held.id, "0xA700 Refused: Out of Resources", 0xA700, 300.0)
    dest = DestinationSettings(name="pacs", ae_title="FAKEPACS", host="127.0.0.1", port=port,
                               backoff_initial=0.2, backoff_max=300.0,
                               probe_interval_seconds=1.0)
    events: list[str] = []
    stop = threading.Event()
    sent: list[str] = []
    fwd = Forwarder(dest, rig.store, rig.spool, stop, sent.extend,
                    observe=lambda name, _labels, _value: events.append(name))
    thread = threading.Thread(target=fwd.run, daemon=True)
    thread.start()
    pacs = None
    try:
        wait_for(lambda: events.count("destination_probe_failed") >= 3, 10, 0.02,
                 "three failed probes")
        assert sent == [] and fwd.is_down
        pacs = FakePacs(port, [ExplicitVRLittleEndian]).start()
        back = time.monotonic()
        wait_for(lambda: len(sent) == 3, 10, 0.01, "delivery after the destination is back")
        resumed_after = time.monotonic() - back
        assert sorted(sent) == sorted(jobs)
        assert resumed_after < 1.0 + 1.0, resumed_after
        assert pacs.echoes >= 1 and fwd.health.up
        assert events.count("destination_down") == 1
        assert all(rig.store.get(j).deliveries[0][2] <= 2 for j in jobs)  # type: ignore[union-attr]
    finally:
        stop.set()
        thread.join(10)
        if pacs is not None:
            pacs.stop()


def test_probe_fails_while_down_and_succeeds_by_c_echo(rig: Rig) -> None:
    """probe() is False (and counted as failed) with no listener, True with a C-ECHO answer."""
    port = free_port()
    events: list[str] = []
    dest = DestinationSettings(name="pacs", ae_title="FAKEPACS", host="127.0.0.1", port=port)
    fwd = Forwarder(dest, rig.store, rig.spool, threading.Event(), lambda _j: None,
                    observe=lambda name, _labels, _value: events.append(name))
    assert not fwd.probe()
    assert events == ["destination_probe", "destination_probe_failed"]
    pacs = FakePacs(port, [ExplicitVRLittleEndian]).start()
    try:
        assert fwd.probe() and pacs.echoes == 1 and fwd.health.up
    finally:
        pacs.stop()


def test_destination_that_echoes_but_refuses_storage_is_tried_once_per_interval(
    rig: Rig,
) -> None:
    """A probe that passes while the storage association keeps failing does not spin: the
    next probe waits a whole probe interval."""
    pacs = FakePacs(free_port(), [ExplicitVRLittleEndian]).start()
    closed = free_port()

    def echo_only(ae: AE, host: str, _port: int, *rest: Any) -> Any:
        storage = any(cx.abstract_syntax != Verification for cx in ae.requested_contexts)
        return associate(ae, host, closed if storage else pacs.port, *rest)

    rig.ready_job()
    dest = DestinationSettings(name="pacs", ae_title="FAKEPACS", host="127.0.0.1",
                               port=pacs.port, backoff_initial=0.05, probe_interval_seconds=1.0)
    stop = threading.Event()
    fwd = Forwarder(dest, rig.store, rig.spool, stop, lambda _j: None, connect=echo_only)
    thread = threading.Thread(target=fwd.run, daemon=True)
    try:
        thread.start()
        time.sleep(2.5)
        assert 1 <= pacs.echoes <= 3, pacs.echoes
    finally:
        stop.set()
        thread.join(10)
        pacs.stop()
