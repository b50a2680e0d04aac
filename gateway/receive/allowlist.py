"""Calling AE title (and optional host) allow-list, enforced at association time.

A peer that is not on the list gets an A-ASSOCIATE-RJ, permanent, source "DICOM UL service-user",
reason "calling-AE-title-not-recognized" (PS3.8 9.3.4), before any presentation context is
negotiated and before any data is read.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from functools import lru_cache

from gateway.config import AllowedCaller

REJECT_PERMANENT = 0x01
SOURCE_SERVICE_USER = 0x01
DIAG_CALLING_AE_NOT_RECOGNIZED = 0x03


@lru_cache(maxsize=256)
def _addresses(host: str) -> frozenset[str]:
    """The addresses a configured host name or address stands for (resolved once)."""
    try:
        ipaddress.ip_address(host)
        return frozenset({host})
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        return frozenset()
    return frozenset(str(i[4][0]) for i in infos)


def is_allowed(allowed: Sequence[AllowedCaller], calling_ae: str, peer_address: str) -> bool:
    """Whether a caller may associate; an empty list allows everyone."""
    if not allowed:
        return True
    ae = calling_ae.strip()
    for entry in allowed:
        if entry.ae_title != ae:
            continue
        if entry.host is None or peer_address in _addresses(entry.host):
            return True
    return False
