"""Re-encoding a data set read as Explicit VR Big Endian (retired) in little endian.

pydicom decodes numbers and text of any byte order, but it writes the values of the binary
VRs OW, OF, OL, OD and OV as the bytes it holds, so a big endian data set written with a little
endian transfer syntax would carry byte-swapped words (its ``save_as`` refuses for that reason).
:func:`to_little_endian` decodes every element, swaps those words (PS3.5 7.3: the byte order of
OW and the other binary VRs follows the transfer syntax), and marks the data set as read in
little endian, so that any writer then encodes it consistently. UN values, whose structure is
unknown, are left as they are.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
from pydicom import Dataset

# Binary VRs whose values are sequences of little/big endian words of this many bytes.
WORD_BYTES = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}


def swap_words(value: bytes, size: int) -> bytes:
    """``value`` with the bytes of each ``size``-byte word reversed (a trailing odd byte kept)."""
    whole = len(value) - len(value) % size
    swapped = np.frombuffer(value[:whole], dtype=f">u{size}").astype(f"<u{size}").tobytes()
    return swapped + value[whole:]


def to_little_endian(ds: Dataset, skip: Collection[int] = ()) -> bool:
    """Re-encode ``ds`` (and its sequence items, to any depth) in place as little endian when
    it was read as big endian; ``skip`` lists top-level tags whose value the caller replaces.
    Returns whether anything was converted."""
    if ds.original_encoding[1] is not False:
        return False
    for tag in list(ds.keys()):
        if int(tag) in skip:
            continue
        elem = ds[tag]  # decodes a raw element (and reads a deferred one)
        if elem.VR == "SQ":
            for item in elem.value or ():
                to_little_endian(item)
        elif elem.VR in WORD_BYTES and isinstance(elem.value, bytes | bytearray):
            elem.value = swap_words(bytes(elem.value), WORD_BYTES[elem.VR])
    ds.set_original_encoding(ds.original_encoding[0], True, ds.original_character_set)
    return True
