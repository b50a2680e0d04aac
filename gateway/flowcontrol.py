"""Flow control for pynetdicom's DICOM Upper Layer, so large instances stream in bounded memory.

pynetdicom's DUL thread moves PDUs between the socket and two unbounded queues. Receiving, it
reads P-DATA PDUs as fast as the network delivers them, whatever the speed at which the
association thread writes them to disk; sending, the association thread reads a file into
P-DATA primitives faster than the socket takes them. Either way a 500 MB whole-slide image
ends up in memory (measured: +256 MB of RSS for a 64 MB instance). We bound both queues:

* the DUL thread stops reading the socket while ``MAX_QUEUED`` received primitives wait for the
  association thread, so TCP flow control slows the peer down instead (PS3.8 9.1: the DUL
  is a byte stream over TCP; nothing in the protocol requires reading ahead);
* ``send_pdu`` waits while ``MAX_QUEUED`` primitives wait for the socket.
"""

from __future__ import annotations

import contextlib
import socket
import time
from typing import Any

from pynetdicom.dul import DULServiceProvider
from pynetdicom.transport import AssociationSocket, ThreadedAssociationServer

MAX_QUEUED = 32
_WAIT = 0.0005

_original_transport_event = DULServiceProvider._is_transport_event
_original_send_pdu = DULServiceProvider.send_pdu


def _bounded_transport_event(self: DULServiceProvider) -> bool:
    if self.to_user_queue.qsize() >= MAX_QUEUED:
        return False  # leave the bytes in the socket: TCP pushes back on the peer
    result: bool = _original_transport_event(self)
    return result


def _bounded_send_pdu(self: DULServiceProvider, primitive: Any) -> None:
    while (
        self.to_provider_queue.qsize() >= MAX_QUEUED
        and not self._kill_thread
        and self.is_alive()
        and not self.assoc.is_aborted
    ):
        time.sleep(_WAIT)
    _original_send_pdu(self, primitive)


def install() -> None:
    """Bound the DUL queues, make the acceptor reactor block, set TCP_NODELAY (idempotent)."""
    DULServiceProvider._is_transport_event = _bounded_transport_event  # type: ignore[method-assign]
    DULServiceProvider.send_pdu = _bounded_send_pdu  # type: ignore[method-assign]
    install_reactor()
    install_nodelay()


# -- the acceptor's reactor ----------------------------------------------------------------
# pynetdicom's acceptor thread polls for DIMSE messages every millisecond (a sleep, then a
# non-blocking get). On a gateway that holds several associations per process, those polls
# cost a large share of the process's time under the GIL (measured in docs/performance.md).
# This version blocks on the message queue instead, so a message is served as soon as it is
# complete, and the release/abort/timeout checks still run every REACTOR_WAIT seconds.
# It is installed only for the pynetdicom versions it was written against; the gateway's
# processes serve storage and verification only, never C-GET/C-MOVE sub-operations, which
# rely on pausing the reactor.
REACTOR_WAIT = 0.01
_PATCHED_VERSIONS = ("3.0.",)


_original_reactor: Any = None


def _blocking_acceptor_reactor(self: Any) -> None:  # pragma: no cover - runs in pynetdicom
    import queue

    if self.is_requestor:
        # A requestor's own thread sends and waits for responses, pausing this reactor for
        # each operation; a reactor blocked in get() would delay that pause, or take the
        # response. Requestors keep pynetdicom's reactor (the forwarder's own associations
        # override it: gateway/forward/association.py).
        _original_reactor(self)
        return
    self._is_paused = False
    while not self._kill:
        self._is_paused = True
        self._reactor_checkpoint.wait()
        self._is_paused = False
        try:
            context_id, msg = self.dimse.msg_queue.get(block=True, timeout=REACTOR_WAIT)
        except queue.Empty:
            context_id, msg = None, None
        if msg:
            self._serve_request(msg, context_id)
        if self.is_established and self.acse.is_release_requested():
            self.acse.send_release(is_response=True)
            self.is_released = True
            self.is_established = False
            _trigger(self, "EVT_RELEASED")
            self.kill()
            return
        if self.acse.is_aborted():
            self.dul.receive_pdu(wait=False)
            self.is_aborted = True
            self.is_established = False
            _trigger(self, "EVT_ABORTED")
            self.kill()
            return
        if not self.dul.is_alive():
            self.kill()
            return
        if self.dul.idle_timer_expired():
            if self.network_timeout_response == "A-RELEASE":
                self._is_paused = True
                self._reactor_checkpoint.wait()
                self.release()
                self._is_paused = False
            else:
                self.abort()
            self.kill()
            return


def _trigger(assoc: Any, name: str) -> None:
    from pynetdicom import evt

    evt.trigger(assoc, getattr(evt, name), {})


def install_reactor() -> bool:
    """Replace the acceptor's polling reactor (only on a known pynetdicom version)."""
    import pynetdicom
    from pynetdicom.association import Association

    global _original_reactor
    if not pynetdicom.__version__.startswith(_PATCHED_VERSIONS):
        return False
    if Association._run_reactor is not _blocking_acceptor_reactor:
        _original_reactor = Association._run_reactor
        Association._run_reactor = _blocking_acceptor_reactor  # type: ignore[method-assign]
    return True


# -- Nagle ---------------------------------------------------------------------------------
# A C-STORE request ends with a small PDU; with Nagle's algorithm on, the kernel holds it
# until the peer's delayed ACK (~40 ms) arrives: measured 52.9 ms per C-STORE to the sink
# without TCP_NODELAY, 13.3 ms with it (DCMTK needs TCP_NODELAY=1 in its environment for the
# same reason). Every association socket of the gateway, requested or accepted, sets it.
def _nodelay(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


_original_create_socket = AssociationSocket._create_socket
_original_get_request = ThreadedAssociationServer.get_request


def _create_socket_nodelay(self: AssociationSocket, address: Any) -> socket.socket:
    sock = _original_create_socket(self, address)
    _nodelay(sock)
    return sock


def _get_request_nodelay(self: ThreadedAssociationServer) -> tuple[socket.socket, Any]:
    sock, address = _original_get_request(self)
    _nodelay(sock)
    return sock, address


def install_nodelay() -> None:
    AssociationSocket._create_socket = _create_socket_nodelay  # type: ignore[method-assign]
    ThreadedAssociationServer.get_request = _get_request_nodelay  # type: ignore[method-assign,assignment]
