"""What Type (1, 1C, 2, 2C, 3) an attribute has in an instance's IOD, to resolve compound codes.

PS3.15 E.1-1a: "X/Z: X unless Z is required to maintain IOD conformance (Type 3 versus Type 2)",
and so on. :class:`NoIodTypes` knows nothing, and the engine then keeps the attribute in the form
that is conformant whatever its Type; :class:`TableIodTypes` reads a generated table.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

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
    """Types from ``rules/ps3.3/iod_types.json``: SOP class -> "path" -> Type."""

    def __init__(self, data: dict[str, dict[str, str]]) -> None:
        self._data = data

    @classmethod
    def load(cls, rules_dir: Path = DEFAULT_RULES_DIR) -> IodTypes:
        path = Path(rules_dir) / "ps3.3" / "iod_types.json"
        if not path.is_file():
            return NoIodTypes()
        doc = json.loads(path.read_text(encoding="utf-8"))
        return cls(doc["sop_classes"])

    def type_of(self, sop_class: str, path: tuple[int, ...], tag: int) -> str | None:
        table = self._data.get(sop_class)
        if table is None:
            return None
        key = ">".join(f"{t:08X}" for t in (*path, tag))
        return table.get(key, "3")
