"""Presentation-context negotiation that accepts every storage SOP class, with any transfer
syntax pydicom can carry.

pynetdicom's unrestricted storage mode accepts every storage-like abstract syntax (known,
private or unknown SOP classes) but takes the first proposed transfer syntax blindly. We keep
its abstract-syntax decision and choose, per context, the first proposed transfer syntax that
pydicom can encode and decode (PS3.8 9.3.2.2: the acceptor picks one of the proposed syntaxes);
a context proposing none of them is rejected with result 0x04 (transfer syntaxes not supported).

Two kinds of pydicom's list are not carriable: the SMPTE ST 2110 syntaxes, which encode the
bulk-data flows of DICOM Real-Time Video (PS3.22), not a stored data set; and the deflated JPIP
syntaxes (PS3.5 A.6), whose data set pydicom reads without inflating it, so that every such
instance would be refused after the association accepted it.
"""

from __future__ import annotations

from typing import Any

import pynetdicom.acse
from pydicom.uid import UID, AllTransferSyntaxes, PrivateTransferSyntaxes
from pynetdicom import presentation

_ORIGINAL = presentation.negotiate_unrestricted
_REJECT_TRANSFER_SYNTAX = 0x04


# SMPTE ST 2110-20/-30 (Real-Time Video flows), JPIP Referenced Deflate, JPIP HTJ2K
# Referenced Deflate.
_RTV_PREFIX = "1.2.840.10008.1.2.7."
_DEFLATED_JPIP = frozenset({"1.2.840.10008.1.2.4.95", "1.2.840.10008.1.2.4.205"})


def carriable(ts: str) -> bool:
    """pydicom knows how to read and write a stored dataset encoded with ``ts``."""
    if ts.startswith(_RTV_PREFIX) or ts in _DEFLATED_JPIP:
        return False
    return ts in AllTransferSyntaxes or ts in PrivateTransferSyntaxes


def accepted_transfer_syntaxes() -> list[UID]:
    """Every transfer syntax the SCP accepts for a storage SOP class, in pydicom's order."""
    return [UID(ts) for ts in [*AllTransferSyntaxes, *PrivateTransferSyntaxes] if carriable(ts)]


def negotiate_storage(rq_contexts: Any, ac_contexts: Any, roles: Any = None) -> Any:
    """pynetdicom's unrestricted negotiation, with the transfer syntax chosen by pydicom."""
    result, reply_roles = _ORIGINAL(rq_contexts, ac_contexts, roles)
    proposed = {cx.context_id: cx for cx in rq_contexts}
    for cx in result:
        rq = proposed.get(cx.context_id)
        if rq is None or cx.result != 0x00 or len(rq.transfer_syntax) == 0:
            continue
        if cx.abstract_syntax == "1.2.840.10008.1.1":  # Verification: negotiated normally
            continue
        choice = next((UID(ts) for ts in rq.transfer_syntax if carriable(ts)), None)
        if choice is None:
            cx.result = _REJECT_TRANSFER_SYNTAX
        else:
            cx.transfer_syntax = [choice]
    return result, reply_roles


def install() -> None:
    """Route pynetdicom's unrestricted negotiation through :func:`negotiate_storage`."""
    pynetdicom.acse.negotiate_unrestricted = negotiate_storage
