"""The C-STORE SCP: persist the received bytes, enqueue a job, and only then answer Success.

pynetdicom is run with ``STORE_RECV_CHUNKED_DATASET`` so that every P-DATA fragment is written
straight to a file in the spool's ``tmp/`` folder as it arrives: a multi-GB whole-slide image is
never held in memory, and the pixel data is never decoded or re-encoded. The handler then
fsyncs that file, renames it into ``incoming/``, fsyncs the folder, commits the job row and
answers 0x0000. Any failure on that path (a full disk while the data set streamed in included,
see :mod:`gateway.receive.streamfile`), or a spool above its limit, answers 0xA700 (Refused:
Out of Resources, PS3.4 B.2.3) so that the sender keeps the image and retries (DESIGN decision 1).
"""

from __future__ import annotations

import ssl
import threading
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.errors import InvalidDicomError
from pydicom.filereader import _read_file_meta_info, read_preamble
from pydicom.uid import DeflatedExplicitVRLittleEndian
from pynetdicom import AE, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from pynetdicom.transport import ThreadedAssociationServer

from gateway.config import ReceiverSettings, SpoolSettings
from gateway.jobs.store import JobStore, NewJob
from gateway.observe.logs import get_logger
from gateway.outcomes import (
    DISK_FULL,
    STATUS_CANNOT_UNDERSTAND,
    STATUS_OUT_OF_RESOURCES,
    STATUS_SUCCESS,
    errno_condition,
)
from gateway.receive import allowlist, negotiation, streamfile
from gateway.spool import Spool

UNDEFINED_LENGTH = 0xFFFFFFFF
# Hook for observability: (event name, labels, value) -> None. Never given patient values.
Observer = Callable[[str, dict[str, str], float], None]
log = get_logger("gateway.receive")


def _ignore(_name: str, _labels: dict[str, str], _value: float) -> None:
    return None


@dataclass(frozen=True)
class HeaderFacts:
    """What the receiver reads from a stored header: nothing identifying."""

    sop_class_uid: str
    transfer_syntax_uid: str
    modality: str


def read_header_facts(path: Path) -> HeaderFacts:
    """Parse the dataset's structure (values over 256 bytes are skipped, not read) and refuse
    one that cannot be understood: unparseable, or an element running past the end of the
    data (a truncated stream, which pydicom alone would read short without complaint).

    A Deflated Explicit VR Little Endian data set (PS3.5 A.5) is measured inflated: its
    elements' offsets count in the inflated stream, and a deflate stream that ends early is
    truncated too."""
    ds = dcmread(path, defer_size=256)
    ts = str(ds.file_meta.get("TransferSyntaxUID", ""))
    size = inflated_size(path) if ts == DeflatedExplicitVRLittleEndian else path.stat().st_size
    for elem in ds._dict.values():
        tell = getattr(elem, "value_tell", None)
        length = getattr(elem, "length", 0)
        if tell is not None and length != UNDEFINED_LENGTH and tell + length > size:
            raise ValueError("element value runs past the end of the data set")
    return HeaderFacts(
        sop_class_uid=str(ds.get("SOPClassUID", "")),
        transfer_syntax_uid=ts,
        modality=str(ds.get("Modality", ""))[:16],
    )


def inflated_size(path: Path, chunk: int = 1 << 20) -> int:
    """The length of a deflated data set once inflated, counted a chunk at a time (constant
    memory); ValueError when the deflate stream is corrupt or ends before its last block."""
    with open(path, "rb") as fh:
        read_preamble(fh, False)
        _read_file_meta_info(fh)  # where dcmread starts inflating, exactly
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        total = 0
        try:
            while data := fh.read(chunk):
                total += len(inflater.decompress(data))
                while inflater.unconsumed_tail:
                    total += len(inflater.decompress(inflater.unconsumed_tail))
            total += len(inflater.flush())
        except zlib.error:
            raise ValueError("the deflated data set is corrupt") from None
    if not inflater.eof:
        raise ValueError("the deflated data set ends early")
    return total


class SpoolBudget:
    """Back-pressure: bytes of unfinished work in the spool, refreshed from disk periodically.

    Workers and forwarders (other processes and threads) remove files, so the count is
    rescanned every ``refresh`` seconds; between scans, received bytes are added at once so that
    a burst cannot overshoot the limit.
    """

    def __init__(self, spool: Spool, settings: SpoolSettings, refresh: float = 1.0) -> None:
        self._spool = spool
        self._max = settings.max_bytes
        self._min_free = settings.min_free_bytes
        self._refresh = refresh
        self._lock = threading.Lock()
        self._used = spool.used_bytes()
        self._free = spool.free_bytes()
        self._scanned = time.monotonic()

    def _rescan(self) -> None:
        now = time.monotonic()
        if now - self._scanned >= self._refresh:
            self._used = self._spool.used_bytes()
            self._free = self._spool.free_bytes()
            self._scanned = now

    def refuse_reason(self) -> str | None:
        """Why a new instance must be refused now, or None."""
        with self._lock:
            self._rescan()
            if self._used >= self._max:
                return "spool_full"
            if self._free <= self._min_free:
                return "disk_full"
            return None

    def add(self, nbytes: int) -> None:
        with self._lock:
            self._used += nbytes
            self._free -= nbytes

    @property
    def used(self) -> int:
        return self._used

    @property
    def free(self) -> int:
        return self._free


class StoreHandler:
    """The EVT_C_STORE handler: durable write, job row, then the status."""

    def __init__(
        self,
        store: JobStore,
        spool: Spool,
        budget: SpoolBudget,
        called_ae: str,
        observe: Observer = _ignore,
    ) -> None:
        self._store = store
        self._spool = spool
        self._budget = budget
        self._called_ae = called_ae
        self._observe = observe
        # Set at shutdown: new instances are refused with 0xA700 so that senders keep them.
        self.draining = threading.Event()

    def __call__(self, event: Any) -> int:
        started = time.perf_counter()
        calling = str(event.assoc.requestor.ae_title).strip()
        refused = "shutting_down" if self.draining.is_set() else self._budget.refuse_reason()
        if refused is not None:
            return self._refuse(calling, refused, STATUS_OUT_OF_RESOURCES)
        failed = streamfile.write_error(event.request)
        if failed is not None:  # the data set could not be written to the spool as it came
            return self._refuse(calling, _write_reason(failed), STATUS_OUT_OF_RESOURCES)
        path = Path(event.dataset_path)
        try:
            facts = read_header_facts(path)
            size = path.stat().st_size
        except OSError as err:
            if err.errno is not None:  # our file, not the data set: the sender may retry
                return self._refuse(calling, _write_reason(err.errno),
                                    STATUS_OUT_OF_RESOURCES)
            return self._refuse(calling, "cannot_understand", STATUS_CANNOT_UNDERSTAND)
        except (InvalidDicomError, EOFError, ValueError, KeyError, TypeError, zlib.error):
            return self._refuse(calling, "cannot_understand", STATUS_CANNOT_UNDERSTAND)
        job_id = uuid.uuid4().hex
        try:
            final = self._spool.commit_incoming(path, job_id)
        except OSError as err:
            self._spool.incoming_path(job_id).unlink(missing_ok=True)  # renamed, not durable
            return self._refuse(calling, _write_reason(err.errno), STATUS_OUT_OF_RESOURCES)
        try:
            self._store.add_received(
                NewJob(
                    id=job_id,
                    calling_ae=calling[:16],
                    called_ae=self._called_ae,
                    sop_class_uid=facts.sop_class_uid[:64],
                    transfer_syntax_uid=facts.transfer_syntax_uid[:64],
                    modality=facts.modality,
                    size_bytes=size,
                )
            )
        except Exception:
            # The row is not committed: the sender will retry, so the file must not linger.
            final.unlink(missing_ok=True)
            return self._refuse(calling, "database", STATUS_OUT_OF_RESOURCES)
        self._budget.add(size)
        self._stored(job_id, calling, facts, size, time.perf_counter() - started)
        return STATUS_SUCCESS

    def _refuse(self, calling: str, reason: str, status: int) -> int:
        self._observe("store_refused", {"calling_ae": calling, "reason": reason}, 1)
        log.warning("store_refused", calling_ae=calling, reason=reason, status=f"0x{status:04X}")
        return status

    def _stored(
        self, job_id: str, calling: str, facts: HeaderFacts, size: int, seconds: float
    ) -> None:
        modality = facts.modality or "none"
        labels = {"calling_ae": calling, "modality": modality,
                  "sop_class_uid": facts.sop_class_uid}
        self._observe("stored", labels, float(size))
        self._observe("stage", {"stage": "receive", "outcome": "continue",
                                "modality": modality}, seconds)
        log.info("stored", job_id=job_id, calling_ae=calling, modality=modality,
                 bytes=size, duration_ms=round(seconds * 1000, 2))


def _write_reason(code: int | None) -> str:
    """The refusal reason of a failed spool write (its errno): a full disk or quota
    (``disk_full``), else ``spool_write``."""
    return DISK_FULL if code is not None and errno_condition(code) == DISK_FULL else "spool_write"


def _on_requested(allowed: tuple[Any, ...], observe: Observer) -> Callable[[Any], None]:
    """EVT_REQUESTED: reject a caller that is not on the allow-list (before negotiation)."""

    def handler(event: Any) -> None:
        assoc = event.assoc
        calling = str(assoc.requestor.primitive.calling_ae_title).strip()
        address = str(assoc.requestor.address)
        if not allowlist.is_allowed(allowed, calling, address):
            observe("association_rejected", {"reason": "not_allowed"}, 1)
            log.warning("association_rejected", reason="not_allowed", calling_ae=calling[:16])
            assoc.acse.send_reject(
                allowlist.REJECT_PERMANENT,
                allowlist.SOURCE_SERVICE_USER,
                allowlist.DIAG_CALLING_AE_NOT_RECOGNIZED,
            )
            assoc.is_rejected = True
            assoc.kill()

    return handler


def _on_accepted(observe: Observer) -> Callable[[Any], None]:
    """EVT_ACCEPTED: the association was negotiated and accepted."""

    def handler(event: Any) -> None:
        calling = str(event.assoc.requestor.ae_title).strip()
        observe("association_accepted", {"calling_ae": calling}, 1)
        log.info("association_accepted", calling_ae=calling)

    return handler


def _on_rejected(observe: Observer) -> Callable[[Any], None]:
    """EVT_REJECTED: pynetdicom rejected the association itself (its only reason with this
    receiver's settings is the association limit)."""

    def handler(event: Any) -> None:
        ae = event.assoc.ae
        acceptors = [a for a in ae.active_associations if a.is_acceptor]
        reason = "too_many_associations" if len(acceptors) > ae.maximum_associations else "other"
        observe("association_rejected", {"reason": reason}, 1)
        log.warning("association_rejected", reason=reason)

    return handler


def _ssl_context(settings: ReceiverSettings) -> ssl.SSLContext | None:
    tls = settings.tls
    if tls is None:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(tls.certificate), str(tls.private_key))
    if tls.ca_certificates is not None:
        ctx.load_verify_locations(str(tls.ca_certificates))
    ctx.verify_mode = ssl.CERT_REQUIRED if tls.require_client_certificate else ssl.CERT_NONE
    return ctx


def start_receiver(
    settings: ReceiverSettings,
    handler: StoreHandler,
    observe: Observer = _ignore,
) -> ThreadedAssociationServer:
    """Start the SCP in the background; returns the server (``shutdown()`` stops accepting)."""
    negotiation.install()
    ae = AE(ae_title=settings.ae_title)
    ae.maximum_associations = settings.max_associations
    ae.maximum_pdu_size = settings.maximum_pdu_size
    ae.network_timeout = settings.network_timeout
    ae.dimse_timeout = settings.network_timeout
    ae.acse_timeout = min(30.0, settings.network_timeout)
    ae.add_supported_context(Verification)
    handlers = [
        (evt.EVT_C_STORE, handler),
        (evt.EVT_REQUESTED, _on_requested(settings.allowed_callers, observe)),
        (evt.EVT_ACCEPTED, _on_accepted(observe)),
        (evt.EVT_REJECTED, _on_rejected(observe)),
    ]
    server = ae.start_server(
        (settings.bind_address, settings.port),
        block=False,
        evt_handlers=handlers,  # type: ignore[arg-type]
        ssl_context=_ssl_context(settings),
    )
    assert server is not None  # block=False always returns the server
    return server
