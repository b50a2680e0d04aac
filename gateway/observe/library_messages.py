"""The library log messages that are kept verbatim, because they carry no data-set value.

A pynetdicom or pydicom record is reduced to its logger name and level
(:func:`gateway.observe.logs.reduce_record`), except when its whole message matches one of
these patterns: association set-up, release and abort, the reasons of a rejection or abort (the
fixed wording of PS3.8 9.3.4 and 9.3.8), timeouts, lost connections, unexpected DIMSE messages
and status codes. Without them the cause of a stall is invisible (issue 21: "Received unexpected
C-STORE service message", then a DIMSE timeout).

Rules for an entry (``tests/observe/test_library_messages.py`` checks them): the pattern must
match the whole message; its only variable parts are alternatives of fixed words or at most five
digits or hexadecimal digits (a status, a message or context ID, a PDU type); and its example is
a message the installed library emits. Nothing that can hold text from a data set, a UID, an AE
title, a host or an exception's own text may be added.
"""

from __future__ import annotations

import re

# DIMSE message names as pynetdicom writes them (PS3.7 9 and 10).
_DIMSE = (
    r"(?:C-STORE|C-FIND|C-GET|C-MOVE|C-ECHO|C-CANCEL|N-EVENT-REPORT|N-GET|N-SET|N-ACTION"
    r"|N-CREATE|N-DELETE)"
)
_STATUS = r"0x[0-9A-F]{4}"
_CATEGORY = r"(?:Success|Warning|Failure|Cancel|Pending|Unknown)"
_RJ_RESULT = r"(?:Rejected \(Permanent\)|Rejected \(Transient\))"
_RJ_SOURCE = (
    r"(?:DUL service-user|DUL service-provider \(ACSE related\)"
    r"|DUL service-provider \(presentation related\))"
)
_RJ_REASON = (
    r"(?:No reason given|Application context name not supported"
    r"|Calling AE title not recognised|Called AE title not recognised"
    r"|Protocol version not supported|Temporary congestion|Local limit exceeded|Reserved)"
)

# (pattern, an example the library emits)
KEPT: tuple[tuple[str, str], ...] = (
    (r"Requesting Association", "Requesting Association"),
    (r"Accepting Association", "Accepting Association"),
    (r"Rejecting Association", "Rejecting Association"),
    (r"Association Accepted", "Association Accepted"),
    (r"Association Rejected", "Association Rejected"),
    (rf"Result: {_RJ_RESULT}, Source: {_RJ_SOURCE}",
     "Result: Rejected (Transient), Source: DUL service-provider (presentation related)"),
    (rf"Reason: {_RJ_REASON}", "Reason: Local limit exceeded"),
    (r"Releasing Association", "Releasing Association"),
    (r"Association Released", "Association Released"),
    (r"Aborting Association", "Aborting Association"),
    (r"Association Aborted(?: \(A-P-ABORT\))?", "Association Aborted (A-P-ABORT)"),
    (r"Association request failed: unable to connect to remote",
     "Association request failed: unable to connect to remote"),
    (r"No accepted presentation contexts", "No accepted presentation contexts"),
    (r"Received an invalid A-ASSOCIATE response from the peer",
     "Received an invalid A-ASSOCIATE response from the peer"),
    (r"Network timeout reached", "Network timeout reached"),
    (r"ACSE timeout reached while waiting for response to association request",
     "ACSE timeout reached while waiting for response to association request"),
    (r"DIMSE timeout reached while waiting for message response",
     "DIMSE timeout reached while waiting for message response"),
    (r"Connection closed while waiting for DIMSE message",
     "Connection closed while waiting for DIMSE message"),
    (r"Connection closed before the entire PDU was received",
     "Connection closed before the entire PDU was received"),
    (r"Attempted to send data over closed connection",
     "Attempted to send data over closed connection"),
    (r"Exception in DUL\.run\(\), aborting association",
     "Exception in DUL.run(), aborting association"),
    (r"Unknown PDU type received '0x[0-9A-F]{2}'", "Unknown PDU type received '0x08'"),
    (rf"Received unexpected {_DIMSE} service message",
     "Received unexpected C-STORE service message"),
    (rf"Received an unexpected {_DIMSE} message from the peer",
     "Received an unexpected C-FIND message from the peer"),
    (rf"Received an invalid {_DIMSE} response from the peer",
     "Received an invalid C-STORE response from the peer"),
    (rf"{_DIMSE} message received during association release, ignoring",
     "C-STORE message received during association release, ignoring"),
    (r"Received DIMSE message with invalid or rejected context ID: \d{1,3}",
     "Received DIMSE message with invalid or rejected context ID: 3"),
    (rf"Received Store Response \(Status: {_STATUS} - {_CATEGORY}\)",
     "Received Store Response (Status: 0xA700 - Failure)"),
    (rf"Received Echo Response \(Status: {_STATUS} - {_CATEGORY}\)",
     "Received Echo Response (Status: 0x0000 - Success)"),
    (rf"Unknown status value returned by callback - {_STATUS}",
     "Unknown status value returned by callback - 0xFF01"),
    (r"Sending Echo Request: MsgID \d{1,5}", "Sending Echo Request: MsgID 1"),
)

KEPT_PATTERNS: tuple[re.Pattern[str], ...] = tuple(re.compile(p) for p, _ in KEPT)
KEPT_LOGGERS = ("pynetdicom", "pydicom")


def is_kept(logger: str, message: str) -> bool:
    """Whether a record of ``logger`` may keep ``message``: a pynetdicom or pydicom record whose
    whole message is one of the vetted forms."""
    if logger.split(".", 1)[0] not in KEPT_LOGGERS:
        return False
    return any(p.fullmatch(message) for p in KEPT_PATTERNS)
