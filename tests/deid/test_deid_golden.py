"""Golden before/after pins: each shipped profile's output for a fixed synthetic input.

Regenerate deliberately with ``DEID_UPDATE_GOLDEN=1 pytest tests/deid/test_deid_golden.py`` and
review the diff: any change of a profile's behaviour shows up here.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from deid_support import ct, deidentify, gsps, sr
from pydicom import Dataset

GOLDEN = Path(__file__).parent / "golden"


def dump(ds: Dataset, indent: str = "") -> list[str]:
    """A stable text form of a dataset: tag, VR and value (binary as length)."""
    lines = []
    for elem in ds:
        tag = f"({elem.tag.group:04X},{elem.tag.element:04X})"
        if elem.VR == "SQ":
            lines.append(f"{indent}{tag} SQ {len(elem.value)} items")
            for i, item in enumerate(elem.value):
                lines.append(f"{indent}  item {i}")
                lines.extend(dump(item, indent + "    "))
        elif isinstance(elem.value, bytes):
            lines.append(f"{indent}{tag} {elem.VR} <{len(elem.value)} bytes>")
        else:
            lines.append(f"{indent}{tag} {elem.VR} {elem.value!s}")
    return lines


def _render(profile: str) -> str:
    out = []
    for name, make in (("ct", ct), ("sr", sr), ("gsps", gsps)):
        ds = make()
        out.append(f"== {name} before")
        out.extend(dump(ds))
        deidentify(ds, profile, secret=b"golden")
        out.append(f"== {name} after {profile}")
        out.extend(dump(ds.file_meta))
        out.extend(dump(ds))
    return "\n".join(out) + "\n"


@pytest.mark.parametrize("profile", ["basic", "research", "internal"])
def test_golden_before_after(profile: str) -> None:
    """The profile's output for the synthetic CT, SR and GSPS is exactly the pinned one."""
    path = GOLDEN / f"{profile}.txt"
    text = _render(profile)
    if os.environ.get("DEID_UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.read_text(encoding="utf-8") == text
