"""One identity model, two independent users (DESIGN decision 11).

The identifying values of an instance are kept by kind (:class:`Identity`), extended across the
instances of a study and a patient (:class:`IdentityMemory`), folded (:mod:`.fold`) and turned
into every written form (:mod:`.variants`). The cleaner (:mod:`gateway.deid.textclean`) removes
them from every text value that leaves; the verify stage (:mod:`gateway.verify`) collects them
again with its own code and searches the output for them. What is benign (:mod:`.benign`) is
kept by the one and not counted by the other.
"""

from gateway.identity.fold import fold, fold_map, squash
from gateway.identity.model import (
    OWN_VOCABULARY,
    Identity,
    IdentityMemory,
    Memory,
    memory_keys,
    open_memory,
)

__all__ = ["OWN_VOCABULARY", "Identity", "IdentityMemory", "Memory", "fold", "fold_map",
           "memory_keys", "open_memory", "squash"]
