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

import time
from typing import Any

from pynetdicom.dul import DULServiceProvider

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
    """Bound pynetdicom's DUL queues (idempotent)."""
    DULServiceProvider._is_transport_event = _bounded_transport_event  # type: ignore[method-assign]
    DULServiceProvider.send_pdu = _bounded_send_pdu  # type: ignore[method-assign]
