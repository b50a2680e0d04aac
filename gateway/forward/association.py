"""A requestor association whose reactor never takes the response that a ``send_*()`` waits for.

pynetdicom 3.0's association runs a reactor thread that takes DIMSE messages off the queue
(``_run_reactor``). A ``send_*()`` method pauses it with a handshake: clear the checkpoint
event, then wait until the reactor says it is paused (``_is_paused``). The reactor sets
``_is_paused = True`` *before* it blocks on the checkpoint and ``False`` after it wakes, so a
sender that clears the checkpoint just after the reactor woke still sees ``True``, sends its
request, and blocks on the queue, while the reactor goes on to take the response. pynetdicom
then logs "Received unexpected C-STORE service message" and the sender waits the whole DIMSE
timeout for a response that will never come (upstream pydicom/pynetdicom#875, still in 3.0.4;
the proposed fix is ``docs/upstream/pynetdicom-875.md``).

:class:`RequestorAssociation` is that fix as a subclass: after waking, the reactor looks at the
checkpoint again and goes back to wait if a sender cleared it meanwhile. The sender writes the
checkpoint and then reads ``_is_paused``; the reactor writes ``_is_paused`` and then reads the
checkpoint; so at least one of them sees the other's write, and the reactor never reads the
queue while a sender owns it. :func:`associate` is ``AE.associate`` for the gateway's forwarder
(a host and port, no TLS, no extended negotiation) building this class instead of the base one.
"""

from __future__ import annotations

import socket
import time
from copy import deepcopy
from datetime import datetime
from typing import cast

import pynetdicom
from pynetdicom import AE, evt
from pynetdicom._globals import DEFAULT_MAX_LENGTH, MODE_REQUESTOR
from pynetdicom.association import Association
from pynetdicom.transport import AddressInformation

# The versions whose reactor this class copies (the fix adds two lines to it).
WRITTEN_FOR = ("3.0.",)
LOGGER = pynetdicom.association.LOGGER


class RequestorAssociation(Association):
    """An association for the requestor side whose reactor honours a pause without a race;
    it also records whether a ``send_*()`` gave up because the DIMSE timeout expired."""

    response_timeouts: int = 0

    def _run_reactor(self) -> None:
        """pynetdicom 3.0.4's reactor loop, plus the second look at the checkpoint."""
        self._is_paused = False
        while not self._kill:
            time.sleep(0.001)
            self._is_paused = True
            self._reactor_checkpoint.wait()
            self._is_paused = False
            # A sender may have cleared the checkpoint after wait() returned and read
            # `_is_paused` while it was still True: the DIMSE queue is the sender's now.
            if not self._reactor_checkpoint.is_set():
                continue

            context_id, msg = self.dimse.get_msg(block=False)
            if msg:
                self._serve_request(msg, cast(int, context_id))
            if self._stop_reason() is not None:
                return

    def _stop_reason(self) -> str | None:
        """The checks at the end of each round of the reactor (release, abort, DUL gone,
        network timeout), as pynetdicom makes them; a reason means the reactor has ended."""
        if self.is_established and self.acse.is_release_requested():
            self.acse.send_release(is_response=True)
            LOGGER.info("Association Released")
            self.is_released = True
            self.is_established = False
            evt.trigger(self, evt.EVT_RELEASED, {})
            self.kill()
            return "released"
        if self.acse.is_aborted():
            LOGGER.info(
                "Association Aborted" + (" (A-P-ABORT)" if self.acse.is_aborted("a-p-abort")
                                         else "")
            )
            self.dul.receive_pdu(wait=False)
            self.is_aborted = True
            self.is_established = False
            evt.trigger(self, evt.EVT_ABORTED, {})
            self.kill()
            return "aborted"
        if not self.dul.is_alive():
            self.kill()
            return "dul"
        if self.dul.idle_timer_expired():
            LOGGER.error("Network timeout reached")
            if self.network_timeout_response == "A-RELEASE":
                self._is_paused = True
                self._reactor_checkpoint.wait()
                self.release()
                self._is_paused = False
            else:
                self.abort()
            self.kill()
            return "timeout"
        return None

    def _handle_no_response(self) -> None:
        """Count a DIMSE timeout (the association is still up and nothing aborted it) before
        pynetdicom logs it and aborts."""
        if (
            self.is_established
            and not self.acse.is_aborted("a-abort")
            and not self.acse.is_aborted("a-p-abort")
        ):
            self.response_timeouts += 1
        super()._handle_no_response()


def supported() -> bool:
    """Whether the installed pynetdicom is a version this subclass was written against."""
    return str(pynetdicom.__version__).startswith(WRITTEN_FOR)


def associate(
    ae: AE, host: str, port: int, ae_title: str, max_pdu: int = DEFAULT_MAX_LENGTH
) -> RequestorAssociation:
    """``ae.associate(host, port, ae_title=..., max_pdu=...)`` with the AE's requested
    contexts, building a :class:`RequestorAssociation`: returned established and running, or
    not started (check ``is_established``), as pynetdicom's own."""
    contexts = deepcopy(ae.requested_contexts)
    if not contexts:
        raise RuntimeError("at least one requested presentation context is needed")
    ae._validate_requested_contexts(contexts)
    for i, cx in enumerate(contexts):
        cx.context_id = 2 * i + 1
    remote = AddressInformation.from_addr_port(host, port)
    local = AddressInformation.from_tuple(
        ("::0", 0) if remote.address_family == socket.AF_INET6 else ("", 0)
    )
    assoc = RequestorAssociation(ae, MODE_REQUESTOR)
    assoc.name = f"RequestorThread@{datetime.now():%Y%m%d%H%M%S}"
    assoc.set_socket(ae._create_socket(assoc, local, None))
    assoc.acceptor.ae_title = ae_title
    assoc.acceptor.address_info = remote
    assoc.requestor.address_info = local
    assoc.requestor.ae_title = ae.ae_title
    assoc.requestor.maximum_length = max_pdu
    assoc.requestor.implementation_class_uid = ae.implementation_class_uid
    assoc.requestor.implementation_version_name = ae.implementation_version_name
    assoc.requestor.requested_contexts = contexts
    assoc.request()
    if assoc.is_established:
        assoc.start()
    return assoc
