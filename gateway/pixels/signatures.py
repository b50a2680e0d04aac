"""Region signatures: fixed boxes to blank for known devices, read from ``rules/pixels/*.yaml``.

A signature matches on Manufacturer (0008,0070), Manufacturer's Model Name (0008,1090),
Modality (0008,0060), Rows and Columns; the patterns are case-insensitive regular expressions
that must match the whole value, and an absent key matches anything. Each box is
``[x, y, width, height]`` in pixels; a negative ``x`` or ``y`` counts from the right or bottom
edge (``x = -200`` starts 200 columns before the right edge), and a ``width`` or ``height`` of 0
runs to the edge. Matched boxes are blanked without running the detector::

    signatures:
      - name: acme-sono-640x480
        match: {manufacturer: "ACME.*", model: "Sono ?5", modality: US, rows: 480, columns: 640}
        boxes:
          - [0, 0, 0, 40]        # the top 40 rows: patient banner
          - [-160, -24, 0, 0]    # bottom-right corner: date and time
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydicom import Dataset

from gateway.pixels.boxes import Box

_MATCH_KEYS = {"manufacturer": "Manufacturer", "model": "ManufacturerModelName",
               "modality": "Modality"}


class SignatureError(ValueError):
    """A signature file is malformed; the message names the file and entry."""


@dataclass(frozen=True)
class Signature:
    name: str
    patterns: tuple[tuple[str, re.Pattern[str]], ...]  # (DICOM keyword, pattern)
    rows: int | None
    columns: int | None
    boxes: tuple[tuple[int, int, int, int], ...]

    def matches(self, ds: Dataset) -> bool:
        if self.rows is not None and int(ds.get("Rows", -1)) != self.rows:
            return False
        if self.columns is not None and int(ds.get("Columns", -1)) != self.columns:
            return False
        for keyword, pattern in self.patterns:
            if not pattern.fullmatch(str(ds.get(keyword, "") or "").strip()):
                return False
        return True

    def resolve(self, rows: int, columns: int) -> list[Box]:
        """The boxes in frame pixels for a frame of this size."""
        out = []
        for x, y, w, h in self.boxes:
            x0 = columns + x if x < 0 else x
            y0 = rows + y if y < 0 else y
            x1 = columns if w == 0 else x0 + w
            y1 = rows if h == 0 else y0 + h
            b = Box(x0, y0, x1, y1, 1.0, f"signature:{self.name}").clipped(rows, columns)
            if b is not None:
                out.append(b)
        return out


@dataclass(frozen=True)
class SignatureSet:
    signatures: tuple[Signature, ...]
    digest: str  # sha256 of the files read, recorded on each job as the ruleset version

    @property
    def version(self) -> str:
        return f"pixel-signatures@{self.digest[:12]}"

    def matching(self, ds: Dataset) -> list[Signature]:
        return [s for s in self.signatures if s.matches(ds)]


def _parse_box(raw: Any, where: str) -> tuple[int, int, int, int]:
    if not (isinstance(raw, Sequence) and len(raw) == 4 and all(isinstance(v, int) for v in raw)):
        raise SignatureError(f"{where}: a box is [x, y, width, height] in whole pixels")
    x, y, w, h = (int(v) for v in raw)
    if w < 0 or h < 0:
        raise SignatureError(f"{where}: width and height must not be negative")
    return x, y, w, h


def _parse(entry: Any, where: str) -> Signature:
    if not isinstance(entry, dict) or "name" not in entry or "boxes" not in entry:
        raise SignatureError(f"{where}: each signature needs a name and boxes")
    match = entry.get("match") or {}
    unknown = set(match) - set(_MATCH_KEYS) - {"rows", "columns"}
    if unknown:
        raise SignatureError(f"{where}: unknown match keys {sorted(unknown)}")
    try:
        patterns = tuple((_MATCH_KEYS[k], re.compile(str(match[k]), re.IGNORECASE))
                         for k in _MATCH_KEYS if k in match)
    except re.error as err:
        raise SignatureError(f"{where}: bad pattern ({err})") from None
    boxes = tuple(_parse_box(b, where) for b in entry["boxes"])
    rows, cols = match.get("rows"), match.get("columns")
    return Signature(str(entry["name"]), patterns, None if rows is None else int(rows),
                     None if cols is None else int(cols), boxes)


def load_signatures(folder: Path) -> SignatureSet:
    """Every ``*.yaml`` file of ``folder`` in name order (an absent folder gives none)."""
    sigs: list[Signature] = []
    h = hashlib.sha256()
    files = sorted(folder.glob("*.yaml")) if folder.is_dir() else []
    for path in files:
        text = path.read_bytes()
        h.update(path.name.encode() + b"\0" + text)
        data = yaml.safe_load(text) or {}
        if not isinstance(data, dict):
            raise SignatureError(f"{path.name}: the top level must be a mapping")
        for i, entry in enumerate(data.get("signatures") or []):
            sigs.append(_parse(entry, f"{path.name} entry {i}"))
    return SignatureSet(tuple(sigs), h.hexdigest())
