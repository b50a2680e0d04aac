"""The forwarder: a C-STORE SCU per destination that keeps its association open while there is
work, retries transient failures with back-off, and quarantines after a permanent refusal.

Contexts: for each (SOP class, transfer syntax) it has to send, it proposes the instance's own
transfer syntax and, in a second context, Explicit and Implicit VR Little Endian as a fallback
(PS3.7 D.3.3.2: one abstract syntax may appear in several contexts). If the PACS accepts only
the fallback, the instance is decompressed (inflated, or re-encoded from big endian) and sent
in Explicit VR Little Endian. Files are sent without being
decoded (``STORE_SEND_CHUNKED_DATASET``) whenever the exact context was accepted.

Associations are :class:`~gateway.forward.association.RequestorAssociation`, whose reactor
cannot take the C-STORE response that the forwarder waits for (pynetdicom#875).

Outages: when the destination cannot be reached, the forwarder stops claiming work and probes
the destination with C-ECHO every ``probe_interval_seconds``, independent of any back-off; the
first probe comes after ``backoff_initial`` (at most one interval), or after a whole interval
if the last outage ended less than an interval ago (a PACS that answers C-ECHO but refuses
the storage association is tried once per interval, not in a tight loop). When a probe
succeeds, the destination's pending deliveries become due at once and sending resumes. The
instances' own attempt counts do not grow, so a PACS down for a weekend quarantines nothing.
An instance's attempts count only responses about that instance (DESIGN decision 8).

Missing responses: a C-STORE whose response has not come ``response_timeout_seconds`` after
the request was sent aborts the association (PS3.7 9.1.1: no response ever arrives on it).
The instance is sent again at once on a new association, and that resend is not counted: a
lost or late response says nothing about the instance. If the resend gets no response either,
the destination takes longer than the timeout for this instance, or never answers it: that
counts as one attempt of the instance (so an instance that hangs the PACS ends in quarantine
after ``max_attempts``, like any repeated failure), and the destination is treated as down
(probed) for the rest. A PACS that is slow by nature needs a larger
``response_timeout_seconds``.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom import Dataset, dcmread
from pydicom.filereader import read_file_meta_info
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from pynetdicom import AE
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from gateway.byteorder import to_little_endian
from gateway.config import DestinationSettings
from gateway.forward.association import RequestorAssociation, associate
from gateway.jobs.store import ClaimedDelivery, JobStore
from gateway.observe.logs import get_logger
from gateway.outcomes import Next, backoff_delay, classify_store_status
from gateway.spool import Spool

# Hook for observability: (event name, labels, value) -> None. Never given patient values.
Observer = Callable[[str, dict[str, str], float], None]
# Opens an association: (AE with its requested contexts, host, port, called AE title, maximum
# PDU size we receive) -> an association, established or not (gateway.forward.association).
Connect = Callable[[AE, str, int, str, int], RequestorAssociation]
log = get_logger("gateway.forward")
MAX_CONTEXTS = 128
UNCOMPRESSED = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)


def _ignore(_name: str, _labels: dict[str, str], _value: float) -> None:
    return None


@dataclass
class DestinationHealth:
    """What the forwarder last saw of its destination (for /readyz and gauges)."""

    up: bool = False
    last_contact: float = 0.0  # Unix time of the last successful exchange (0: never)
    consecutive_failures: int = 0
    down_since: float = 0.0  # Unix time of the first failure of the current outage (0: up)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Item:
    delivery: ClaimedDelivery
    path: Path
    sop_class: UID
    transfer_syntax: UID
    size: int = 0


class SendError(Exception):
    """A permanent problem with one instance (its message carries no patient value)."""


class AssociationLost(Exception):
    """The association failed or the peer aborted: a destination-level, transient failure."""


class ResponseTimeout(AssociationLost):
    """No response to a C-STORE within the response timeout; the association was aborted."""


def contexts_for(pairs: Sequence[tuple[UID, UID]]) -> list[tuple[UID, list[UID]]]:
    """Presentation contexts to propose for the (SOP class, transfer syntax) pairs."""
    out: list[tuple[UID, list[UID]]] = []
    seen: set[tuple[str, tuple[str, ...]]] = set()
    for sop, ts in pairs:
        for tss in ([ts], list(UNCOMPRESSED)):
            key = (str(sop), tuple(str(t) for t in tss))
            if key not in seen:
                seen.add(key)
                out.append((sop, tss))
    return out[:MAX_CONTEXTS]


class Forwarder:
    """Forwards every ready instance of this node to one destination."""

    def __init__(
        self,
        dest: DestinationSettings,
        store: JobStore,
        spool: Spool,
        stop: threading.Event,
        on_sent: Callable[[Sequence[str]], None],
        observe: Observer = _ignore,
        lease_seconds: float = 600.0,
        poll_interval: float = 0.05,
        rng: random.Random | None = None,
        connect: Connect = associate,
    ) -> None:
        self.dest = dest
        self._store = store
        self._spool = spool
        self._stop = stop
        self._on_sent = on_sent
        self._observe = observe
        self._lease = lease_seconds
        self._poll = poll_interval
        self._rng = rng or random.Random()
        self._connect = connect
        self._assoc: RequestorAssociation | None = None
        self._pairs: list[tuple[UID, UID]] = []
        self._last_work = time.monotonic()
        self._up_since = -float("inf")  # time.monotonic() of the last probe that succeeded
        self.health = DestinationHealth()

    # -- association -----------------------------------------------------------------------
    def _ae(self, timeout: float) -> AE:
        """An AE for one association with this destination (connection and association
        negotiation within ``timeout``, responses within ``response_timeout_seconds``)."""
        ae = AE(ae_title=self.dest.calling_ae_title)
        ae.network_timeout = self.dest.network_timeout
        ae.connection_timeout = timeout
        ae.acse_timeout = timeout
        ae.dimse_timeout = self.dest.response_timeout_seconds
        ae.maximum_pdu_size = self.dest.maximum_pdu_size
        return ae

    def _open(self, ae: AE) -> RequestorAssociation:
        return self._connect(
            ae, self.dest.host, self.dest.port, self.dest.ae_title, self.dest.maximum_pdu_size
        )

    def _associate(self, needed: Sequence[tuple[UID, UID]]) -> RequestorAssociation:
        pairs = list(dict.fromkeys([*self._pairs, *needed]))
        if len(contexts_for(pairs)) >= MAX_CONTEXTS:
            pairs = list(dict.fromkeys(needed))
        self._release()
        ae = self._ae(min(30.0, self.dest.network_timeout))
        for sop, tss in contexts_for(pairs):
            ae.add_requested_context(sop, tss)
        assoc = self._open(ae)
        if not assoc.is_established:
            raise AssociationLost("association not established")
        self._assoc = assoc
        self._pairs = pairs
        self._mark_up()
        return assoc

    def _release(self) -> None:
        if self._assoc is not None:
            try:
                if self._assoc.is_established:
                    self._assoc.release()
            except Exception:
                self._assoc.abort()
            self._assoc = None

    def _mark_up(self) -> None:
        self.health.up = True
        self.health.last_contact = time.time()
        self.health.consecutive_failures = 0
        self.health.down_since = 0.0

    def _accepted(self, sop: UID, ts: UID) -> tuple[bool, bool]:
        """(exact context accepted, uncompressed fallback accepted) on the open association."""
        assert self._assoc is not None
        exact = fallback = False
        for cx in self._assoc.accepted_contexts:
            if cx.abstract_syntax != sop:
                continue
            if cx.transfer_syntax[0] == ts:
                exact = True
            if cx.transfer_syntax[0] in UNCOMPRESSED:
                fallback = True
        return exact, fallback

    def _needs_new_association(self, item: Item) -> bool:
        if self._assoc is None or not self._assoc.is_established:
            return True
        return (item.sop_class, item.transfer_syntax) not in self._pairs

    # -- sending ---------------------------------------------------------------------------
    def _send(self, item: Item) -> int:
        if self._needs_new_association(item):
            self._associate([(item.sop_class, item.transfer_syntax)])
        assert self._assoc is not None
        exact, fallback = self._accepted(item.sop_class, item.transfer_syntax)
        payload: Path | Dataset
        if exact:
            payload = item.path
        elif fallback:
            payload = self._decompressed(item)
        else:
            raise SendError("destination accepted no context for this SOP class")
        assoc = self._assoc
        rsp = assoc.send_c_store(payload)
        status = rsp.get("Status") if rsp is not None else None
        if status is None:
            self._assoc = None if not assoc.is_established else assoc
            if assoc.response_timeouts:
                raise ResponseTimeout(
                    f"no C-STORE response within {self.dest.response_timeout_seconds:g} s"
                )
            raise AssociationLost("no response to C-STORE")
        self._mark_up()
        return int(status)

    def _decompressed(self, item: Item) -> Dataset:
        """The instance in Explicit VR Little Endian: decompressed, inflated (a deflated data
        set is read inflated) or re-encoded from big endian."""
        ds = dcmread(item.path)
        ts = ds.file_meta.TransferSyntaxUID
        if ts in (DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian):
            to_little_endian(ds)
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        elif ts.is_compressed:
            try:
                ds.decompress()
            except Exception as exc:  # missing codec, corrupt stream
                raise SendError(
                    f"destination refused {item.transfer_syntax} and it cannot be decompressed "
                    f"({type(exc).__name__})"
                ) from None
        return ds

    def _item(self, d: ClaimedDelivery) -> Item | None:
        path = self._spool.outgoing_path(d.job_id)
        try:
            meta = read_file_meta_info(path)
            size = path.stat().st_size
        except FileNotFoundError:
            self._fail(d, "output file missing from spool", None)
            return None
        except Exception as exc:
            self._fail(d, f"unreadable output ({type(exc).__name__})", None)
            return None
        return Item(
            d, path, UID(meta.MediaStorageSOPClassUID), UID(meta.TransferSyntaxUID), size
        )

    def _fail(self, d: ClaimedDelivery, reason: str, status: int | None) -> None:
        job_id = self._store.delivery_failed(d.id, reason, status)
        if job_id is not None:
            self._spool.to_quarantine(job_id)
        self._observe("forward_failed", {"destination": self.dest.name}, 1)
        log.warning("forward_failed", job_id=d.job_id, destination=self.dest.name,
                    attempts=d.attempts, reason=reason)

    def _retry(self, d: ClaimedDelivery, reason: str, status: int | None) -> None:
        if d.attempts >= self.dest.max_attempts:
            self._fail(d, f"{reason} (after {d.attempts} attempts)", status)
            return
        delay = backoff_delay(
            d.attempts, self.dest.backoff_initial, self.dest.backoff_max, self._rng
        )
        self._store.delivery_retry(d.id, reason, status, delay)
        self._observe("forward_retry", {"destination": self.dest.name}, 1)
        log.warning("forward_retry", job_id=d.job_id, destination=self.dest.name,
                    attempts=d.attempts, reason=reason)

    def _confirmed(self, item: Item, status: int, seconds: float) -> None:
        """The destination confirmed the instance: count it, time it end to end, log it."""
        d = item.delivery
        labels = {"destination": self.dest.name, "modality": d.modality or "none"}
        self._observe("forwarded", labels, float(item.size))
        received = d.received_at.replace(tzinfo=dt.UTC) if d.received_at.tzinfo is None \
            else d.received_at
        self._observe("end_to_end", labels, (dt.datetime.now(dt.UTC) - received).total_seconds())
        log.info("forwarded", job_id=d.job_id, destination=self.dest.name,
                 status=f"0x{status:04X}", duration_ms=round(seconds * 1000, 2))

    def _handle_status(self, item: Item, status: int, sent: list[int], seconds: float) -> None:
        cls = classify_store_status(status)
        d = item.delivery
        outcome = {Next.DONE: "continue", Next.RETRY: "retry"}.get(cls.next, "quarantine")
        self._observe("stage", {"stage": "forward", "outcome": outcome,
                                "modality": d.modality or "none"}, seconds)
        if cls.next is Next.DONE:
            sent.append(d.id)
            self._confirmed(item, status, seconds)
        elif cls.next is Next.RETRY:
            self._retry(d, f"0x{status:04X} {cls.name}", status)
        else:
            self._fail(d, f"0x{status:04X} {cls.name}", status)

    def process_batch(self, batch: Sequence[ClaimedDelivery]) -> None:
        """Send a claimed batch; commit confirmations once per batch."""
        sent: list[int] = []
        pending = list(batch)
        try:
            while pending:
                self._send_one(pending[0], sent)
                pending.pop(0)
        except ResponseTimeout as exc:
            # the resend timed out too: the instance was counted, the rest waits untried
            self._destination_down(pending[1:], exc)
        except (AssociationLost, OSError, RuntimeError, ValueError) as exc:
            self._destination_down(pending, exc)
        finally:
            done = self._store.deliveries_sent(sent)
            if done:
                self._on_sent(done)

    def _send_one(self, d: ClaimedDelivery, sent: list[int]) -> None:
        """Send one delivery and record its outcome; a missing response gets one resend at
        once on a new association, uncounted (see the module docstring)."""
        item = self._item(d)
        if item is None:
            return
        for resend in (False, True):
            started = time.perf_counter()
            try:
                status = self._send(item)
            except SendError as exc:
                self._fail(d, str(exc), None)
                return
            except ResponseTimeout as exc:
                self._response_timeout(d, resend)
                if resend:
                    self._retry(d, f"{exc} (sent twice)", None)
                    raise
                continue
            self._handle_status(item, status, sent, time.perf_counter() - started)
            return

    def _response_timeout(self, d: ClaimedDelivery, resend: bool) -> None:
        self._observe("response_timeout", {"destination": self.dest.name}, 1)
        log.warning("response_timeout", job_id=d.job_id, destination=self.dest.name,
                    timeout_s=self.dest.response_timeout_seconds,
                    next="count_attempt" if resend else "resend_now")

    def _destination_down(self, untried: Sequence[ClaimedDelivery], exc: Exception) -> None:
        """The destination could not take the work: give it back untried and probe (:meth:`run`)."""
        self._release()
        if self.health.consecutive_failures == 0:
            self.health.down_since = time.time()
            log.warning("destination_down", destination=self.dest.name,
                        exc_type=type(exc).__name__)
        self.health.up = False
        self.health.consecutive_failures += 1
        self._store.delivery_unclaim([d.id for d in untried])
        self._observe("destination_down", {"destination": self.dest.name}, 1)

    # -- outages ---------------------------------------------------------------------------
    @property
    def is_down(self) -> bool:
        """The last attempt to reach the destination failed: probe before sending."""
        return self.health.consecutive_failures > 0

    def probe(self) -> bool:
        """One C-ECHO (PS3.7 9.1.5): True when the destination accepted an association and,
        where it accepted the Verification context, answered the echo."""
        labels = {"destination": self.dest.name}
        self._observe("destination_probe", labels, 1)
        ok = False
        bound = min(self.dest.probe_interval_seconds, self.dest.network_timeout)
        ae = self._ae(bound)
        ae.dimse_timeout = min(bound, self.dest.response_timeout_seconds)
        ae.add_requested_context(Verification)
        try:
            assoc = self._open(ae)
            if assoc.is_established:
                try:
                    echo = any(cx.abstract_syntax == Verification
                               for cx in assoc.accepted_contexts)
                    ok = not echo or "Status" in assoc.send_c_echo()
                finally:
                    if assoc.is_established:
                        assoc.release()
        except (OSError, RuntimeError, ValueError) as exc:
            log.debug("destination_probe_error", destination=self.dest.name,
                      exc_type=type(exc).__name__)
        if ok:
            self._back_up()
        else:
            self.health.consecutive_failures += 1
            self._observe("destination_probe_failed", labels, 1)
            log.debug("destination_probe_failed", destination=self.dest.name,
                      consecutive_failures=self.health.consecutive_failures)
        return ok

    def _back_up(self) -> None:
        """A probe succeeded: the destination's deliveries are due now."""
        down_for = time.time() - self.health.down_since if self.health.down_since else 0.0
        self._mark_up()
        self._up_since = time.monotonic()
        due = self._store.deliveries_due_now(self.dest.name)
        log.info("destination_up", destination=self.dest.name,
                 down_seconds=round(down_for, 1), deliveries_made_due=due)

    def _wait_until_up(self) -> None:
        """Probe on a fixed interval, independent of any instance's back-off, until the
        destination answers or the forwarder is stopped."""
        interval = self.dest.probe_interval_seconds
        first = min(self.dest.backoff_initial, interval)
        if time.monotonic() - self._up_since < interval:
            first = interval  # back up and down again at once: the probe passes, sending fails
        next_probe = time.monotonic() + first
        while not self._stop.wait(max(0.0, next_probe - time.monotonic())):
            next_probe = time.monotonic() + interval
            if self.probe():
                return

    def run(self) -> None:
        """Loop until stopped: claim, send, release the association when idle; probe while
        the destination is down."""
        while not self._stop.is_set():
            if self.is_down:
                self._wait_until_up()
                continue
            batch = self._store.claim_deliveries(self.dest.name, self.dest.batch_size, self._lease)
            if not batch:
                if (
                    self._assoc is not None
                    and time.monotonic() - self._last_work > self.dest.idle_release_seconds
                ):
                    self._release()
                self._stop.wait(self._poll)
                continue
            self._last_work = time.monotonic()
            if self._stop.is_set():
                self._store.delivery_unclaim([d.id for d in batch])
                break
            self.process_batch(batch)
        self._release()
