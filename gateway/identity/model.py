"""The identity of an instance: its identifying values by kind (DESIGN decision 11).

An :class:`Identity` is filled from the attributes that identify someone or something (names of
patients, staff and others; IDs; dates; telephone numbers; institutions, addresses and other
identifying text; original UIDs) and turned into the regular-expression fragments of
:mod:`gateway.identity.variants`, which match every written form of each value in folded text.
:class:`IdentityMemory` extends it across the instances of a study and of a patient: what the
first instance of a study taught is used for the next ones, in memory and bounded.

Values the gateway writes itself (its dummies and the pseudonym prefix) are never identifying:
an input that carries one (an already de-identified file) would otherwise match its own output.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Protocol

from gateway.identity import variants
from gateway.identity.fold import squash

KINDS = ("name", "id", "phone", "phrase", "date")
# What the gateway writes in place of values (gateway.deid.values, the pseudonym prefix): the
# words, and the dummy dates (a date only; an ID that reads 19000101 is still an ID).
OWN_VOCABULARY = frozenset({"anonymous", "anonymized", "anonymised", "anon"})
OWN_DATES = frozenset({"19000101"})
MAX_PER_KIND = 256  # values of one kind remembered for one study or patient


@dataclass
class Identity:
    """Identifying values by kind, as found (folding happens when fragments are made)."""

    name: set[str] = field(default_factory=set)
    id: set[str] = field(default_factory=set)
    phone: set[str] = field(default_factory=set)
    phrase: set[str] = field(default_factory=set)
    date: set[str] = field(default_factory=set)
    uid: set[str] = field(default_factory=set)

    def add(self, kind: str, value: object) -> None:
        """Add one value of ``kind`` ("name", "id", "phone", "phrase", "address", "date",
        "uid"); empty values are ignored, addresses are split into their parts."""
        text = str(value).strip() if value is not None else ""
        if not text:
            return
        if kind == "address":
            self.phrase.update(variants.address_parts(text))
        elif kind == "date":
            if len(text) >= 8 and text[:8].isdigit():
                self.date.add(text[:8])
        else:
            getattr(self, kind).add(text)

    def update(self, other: Identity) -> None:
        for kind in (*KINDS, "uid"):
            getattr(self, kind).update(getattr(other, kind))

    def copy(self) -> Identity:
        out = Identity()
        out.update(self)
        return out

    def key(self) -> frozenset[tuple[str, str]]:
        """What the patterns depend on (UIDs apart, which are matched as plain text)."""
        return frozenset((k, v) for k in KINDS for v in getattr(self, k))

    def __bool__(self) -> bool:
        return any(getattr(self, k) for k in (*KINDS, "uid"))

    def fragments(self, ignore: frozenset[str] = OWN_VOCABULARY) -> set[variants.Fragment]:
        """Every fragment of every value but those ``ignore`` holds (squashed)."""
        found: set[variants.Fragment] = set()
        for kind in KINDS:
            skip = OWN_DATES if kind == "date" else ignore
            values = [v for v in getattr(self, kind) if squash(v)[:8] not in skip
                      and squash(v) not in skip]
            found.update(variants.fragments(kind, values))
        if ignore:
            found.difference_update(_ignored_words(ignore))
        return found

    def pattern(self, ignore: frozenset[str] = OWN_VOCABULARY) -> re.Pattern[str] | None:
        """Every written form of every value (not UIDs), as one pattern over folded text."""
        return variants.compile_fragments(self.fragments(ignore))

    def texts(self) -> Iterator[str]:
        """Every value, for tests and for tools that need the values themselves."""
        for kind in (*KINDS, "uid"):
            yield from getattr(self, kind)


@lru_cache(maxsize=16)
def _ignored_words(ignore: frozenset[str]) -> set[variants.Fragment]:
    """The single-word fragments that a word of ``ignore`` would give."""
    return {f for word in ignore for f in variants.name_fragments(word)}


class IdentityMemory:
    """What earlier instances of a study or of a patient taught, by key, least recently used
    forgotten first (``size`` keys; each kind of each key holds at most ``MAX_PER_KIND``)."""

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._entries: OrderedDict[str, Identity] = OrderedDict()

    def recall(self, keys: Iterable[str]) -> Identity:
        """The union of what is known under ``keys`` (UIDs are never remembered)."""
        out = Identity()
        for key in keys:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                out.update(entry)
        return out

    def learn(self, keys: Iterable[str], identity: Identity, known: Identity | None = None
              ) -> None:
        """Remember the values of ``identity`` (not its UIDs) under each of ``keys`` (``known``,
        what :meth:`recall` gave, spares a shared memory its writes)."""
        for key in keys:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = Identity()
                if len(self._entries) > self._size:
                    self._entries.popitem(last=False)
            else:
                self._entries.move_to_end(key)
            for kind in KINDS:
                have: set[str] = getattr(entry, kind)
                for value in getattr(identity, kind):
                    if len(have) >= MAX_PER_KIND:
                        break
                    have.add(value)

    def __len__(self) -> int:
        return len(self._entries)


class Memory(Protocol):
    """What the de-identifier and verify need of a memory: :class:`IdentityMemory` (this
    process) or :class:`gateway.identity.shared.SharedIdentityMemory` (the node)."""

    def recall(self, keys: Iterable[str]) -> Identity: ...

    def learn(self, keys: Iterable[str], identity: Identity, known: Identity | None = None
              ) -> None: ...


def open_memory(folder: Path | None, name: str) -> Memory:
    """The node's memory file ``name`` in ``folder``, or this process's own when None."""
    if folder is None:
        return IdentityMemory()
    from gateway.identity.shared import SharedIdentityMemory

    return SharedIdentityMemory(Path(folder) / name)


def memory_keys(study_uid: str, patient_id: str, issuer: str, patient_name: str) -> list[str]:
    """The keys an instance is remembered under: its study and its patient (by ID and issuer,
    or by name when it has no ID)."""
    keys = []
    if study_uid.strip():
        keys.append("study:" + study_uid.strip())
    if patient_id.strip():
        keys.append(f"patient:{patient_id.strip()}|{issuer.strip()}")
    elif patient_name.strip():
        keys.append("patient-name:" + squash(patient_name))
    return keys
