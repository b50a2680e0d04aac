"""The generated PS3.15 tables (``rules/ps3.15/``), read once into typed rows.

The files are produced by ``rules/generate.py`` from the standard's own tables; this module only
reads them. The folder is found beside the package (a source checkout or editable install) or
given explicitly (``deid.rules_dir`` in the settings).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from gateway.paths import shipped

DEFAULT_RULES_DIR = shipped("rules")


class RuleDataError(ValueError):
    """A generated rule file is missing or malformed."""


@dataclass(frozen=True)
class TableRow:
    """One row of Table E.1-1: the Basic Profile action and each option's action."""

    name: str
    basic: str
    options: dict[str, str]
    in_std_comp_iod: bool


@dataclass(frozen=True)
class PatternRow:
    """A tag-range row of E.1-1: ``tag & mask == value`` (curves, overlays) or ``private``."""

    pattern: str
    mask: int
    value: int
    row: TableRow

    @property
    def is_private(self) -> bool:
        return self.pattern == "private"


@dataclass(frozen=True)
class SafePrivate:
    """One row of E.3.10-1: an element (by its byte in the block) of a private creator."""

    group: int
    element: int
    creator: str
    vr: str


@dataclass(frozen=True)
class RuleData:
    """Both generated tables with their provenance."""

    edition: str
    safe_edition: str
    attributes: dict[int, TableRow]
    patterns: tuple[PatternRow, ...]
    safe_private: frozenset[tuple[int, str, int]]
    digest: str
    safe_rows: tuple[SafePrivate, ...] = field(default=())


def _read(path: Path) -> tuple[dict[str, Any], bytes]:
    try:
        raw = path.read_bytes()
        return json.loads(raw), raw
    except (OSError, ValueError) as err:
        raise RuleDataError(f"{path}: cannot read generated rule data ({err})") from None


def _row(item: dict[str, Any]) -> TableRow:
    return TableRow(item["name"], item["basic"], dict(item["options"]), item["in_std_comp_iod"])


def _patterns(items: list[dict[str, Any]]) -> tuple[PatternRow, ...]:
    out = []
    for p in items:
        mask = int(p.get("mask", "0"), 16)
        value = int(p.get("value", "0"), 16)
        out.append(PatternRow(p["pattern"], mask, value, _row(p)))
    return tuple(out)


@lru_cache(maxsize=4)
def load_rule_data(rules_dir: Path = DEFAULT_RULES_DIR) -> RuleData:
    """Read ``ps3.15/basic_profile.json`` and ``ps3.15/safe_private.json`` under ``rules_dir``."""
    base = Path(rules_dir) / "ps3.15"
    basic, raw_basic = _read(base / "basic_profile.json")
    safe, raw_safe = _read(base / "safe_private.json")
    try:
        attributes = {int(a["tag"], 16): _row(a) for a in basic["attributes"]}
        rows = tuple(
            SafePrivate(int(s["group"], 16), int(s["element"], 16), s["creator"], s["vr"])
            for s in safe["attributes"]
        )
        return RuleData(
            edition=basic["edition"],
            safe_edition=safe["edition"],
            attributes=attributes,
            patterns=_patterns(basic["patterns"]),
            safe_private=frozenset((r.group, r.creator, r.element) for r in rows),
            digest=hashlib.sha256(raw_basic + raw_safe).hexdigest(),
            safe_rows=rows,
        )
    except (KeyError, TypeError, ValueError) as err:
        raise RuleDataError(f"{base}: malformed generated rule data ({err!r})") from None
