"""What Type (1, 1C, 2, 2C, 3) an attribute has in an instance's IOD, to resolve compound codes.

PS3.15 E.1-1a: "X/Z: X unless Z is required to maintain IOD conformance (Type 3 versus Type 2)",
and so on. :class:`NoIodTypes` knows nothing, and the engine then keeps the attribute in the form
that is conformant whatever its Type; :class:`TableIodTypes` reads a generated table.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

from pydicom.datadict import tag_for_keyword

from gateway.deid.ruledata import DEFAULT_RULES_DIR


class IodTypes(Protocol):
    def type_of(self, sop_class: str, path: tuple[int, ...], tag: int) -> str | None:
        """The Type of ``tag`` at ``path`` in the IOD of ``sop_class``; None when not known."""
        ...


class NoIodTypes:
    """Knows no IOD: every compound code resolves to its conformant-for-every-Type form."""

    def type_of(self, sop_class: str, path: tuple[int, ...], tag: int) -> str | None:
        return None


class TableIodTypes:
    """Types from the generated ``rules/ps3.3/iod_types.json`` (``rules/generate_iod.py``).

    The table lists, per IOD, every Type 1, 1C, 2 and 2C occurrence of the attributes the engine
    asks about; an attribute it does not list for a known IOD is Type 3 there.
    """

    def __init__(self, sop_classes: dict[str, str], iods: dict[str, dict[str, str]]) -> None:
        self._sop_classes = sop_classes
        self._iods = {key: _by_tags(table) for key, table in iods.items()}

    @classmethod
    def load(cls, rules_dir: Path = DEFAULT_RULES_DIR) -> IodTypes:
        path = Path(rules_dir) / "ps3.3" / "iod_types.json"
        if not path.is_file():
            return NoIodTypes()
        doc = json.loads(path.read_text(encoding="utf-8"))
        return cls(doc["sop_classes"], doc["iods"])

    def type_of(self, sop_class: str, path: tuple[int, ...], tag: int) -> str | None:
        iod = self._sop_classes.get(sop_class)
        if iod is None:
            return None
        return self._iods[iod].get((*path, tag), "3")


def _by_tags(table: dict[str, str]) -> dict[tuple[int, ...], str]:
    out = {}
    for key, kind in table.items():
        tags = tuple(tag_for_keyword(k) for k in key.split(">"))
        if all(t is not None for t in tags):
            out[tuple(int(t) for t in tags if t is not None)] = kind
    return out
