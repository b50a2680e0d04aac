#!/usr/bin/env python3
"""Generate the PS3.15 rule data in ``rules/ps3.15/`` from the standard's own tables.

Inputs (defaults relative to the repository root, overridable by arguments):

* ``../shared/standard/confidentiality_profile_attributes.2024b.json``: PS3.15 Table E.1-1
  (Application Level Confidentiality Profile Attributes) with every option column;
* ``../shared/standard/part15.2023b.xml``: the DocBook of PS3.15, whose Table E.3.10-1 lists
  the Safe Private Attributes.

Outputs: ``rules/ps3.15/basic_profile.json`` and ``rules/ps3.15/safe_private.json``, each with a
do-not-edit header that records the edition and the sha256 of its source. Rows for tag ranges
(``50xx,xxxx`` curves, ``60xx,3000``/``60xx,4000`` overlays, odd-group private attributes) become
pattern rows, never dropped. Standard library only, so that it runs anywhere; the output is
deterministic, so regenerating reproduces the committed files byte for byte.

Usage: ``python rules/generate.py [--e11 PATH] [--part15 PATH] [--out DIR] [--check]``
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import re
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
# Copies of the standard's own tables, committed beside the generator (rules/sources/; the XML
# gzip-compressed, hashed uncompressed), so that CI can prove the generated files current.
SOURCES = REPO / "rules" / "sources"
DEFAULT_E11 = SOURCES / "confidentiality_profile_attributes.2024b.json"
DEFAULT_PART15 = SOURCES / "part15.2023b.xml.gz"
DEFAULT_OUT = REPO / "rules" / "ps3.15"

# The releases this generator was written against; another release is refused unless
# --allow-edition is given, so that a standard update is one deliberate commit.
EXPECTED_E11_EDITION = "2024b"
EXPECTED_PART15_EDITION = "2023b"

DOCBOOK = "{http://docbook.org/ns/docbook}"
XML_ID = "{http://www.w3.org/XML/1998/namespace}id"

# Column keys of the E.1-1 JSON -> option names used in profiles (PS3.15 E.3).
OPTION_COLUMNS: dict[str, str] = {
    "rtnSafePrivOpt": "retain_safe_private",
    "rtnUIDsOpt": "retain_uids",
    "rtnDevIdOpt": "retain_device_identity",
    "rtnInstIdOpt": "retain_institution_identity",
    "rtnPatCharsOpt": "retain_patient_characteristics",
    "rtnLongFullDatesOpt": "retain_longitudinal_full_dates",
    "rtnLongModifDatesOpt": "retain_longitudinal_modified_dates",
    "cleanDescOpt": "clean_descriptors",
    "cleanStructContOpt": "clean_structured_content",
    "cleanGraphOpt": "clean_graphics",
}
ACTION_CODES = frozenset({"D", "Z", "X", "K", "C", "U", "Z/D", "X/Z", "X/D", "X/Z/D", "X/Z/U*"})
_TAG = re.compile(r"^\(([0-9A-Fa-fXx]{4}),([0-9A-Fa-fXx]{4})\)$")
_PRIVATE_ROW = re.compile(r"^\(GGGG,EEEE\)\s+WHERE\s+GGGG\s+IS\s+ODD$", re.IGNORECASE)
_SAFE_TAG = re.compile(r"^\(([0-9A-Fa-f]{4}),[xX]{2}([0-9A-Fa-f]{2})\)$")


class SourceError(ValueError):
    """A source table does not have the shape this generator expects."""


def read_source(path: Path) -> bytes:
    """A source's bytes, uncompressed when the file is gzip-compressed (``.gz``)."""
    data = path.read_bytes()
    return gzip.decompress(data) if path.suffix == ".gz" else data


def sha256_of(path: Path) -> str:
    """The sha256 of the source table itself (of the uncompressed bytes)."""
    return hashlib.sha256(read_source(path)).hexdigest()


def _header(table: str, edition: str, source: Path) -> dict[str, str]:
    return {
        "_comment": "GENERATED FILE - DO NOT EDIT. Regenerate with rules/generate.py "
        "(see rules/README.md).",
        "table": table,
        "edition": edition,
        "source": source.name.removesuffix(".gz"),
        "source_sha256": sha256_of(source),
    }


def e11_edition(path: Path) -> str:
    m = re.search(r"\.(\d{4}[a-e])\.json$", path.name)
    if not m:
        raise SourceError(f"{path.name}: the file name does not carry the edition (e.g. 2024b)")
    return m.group(1)


def _mask_pattern(group: str, element: str) -> tuple[str, str]:
    """(mask, value) over the 32-bit tag: an ``x`` nibble matches anything."""
    digits = (group + element).lower()
    mask = "".join("0" if c == "x" else "f" for c in digits)
    value = "".join("0" if c == "x" else c for c in digits)
    return mask, value


def _options(row: dict[str, Any], where: str) -> dict[str, str]:
    opts: dict[str, str] = {}
    for key, value in row.items():
        if not key.endswith("Opt"):
            continue
        if key not in OPTION_COLUMNS:
            raise SourceError(f"{where}: unknown option column {key!r}")
        if value not in ACTION_CODES:
            raise SourceError(f"{where}: unknown action {value!r} in {key}")
        opts[OPTION_COLUMNS[key]] = value
    return dict(sorted(opts.items()))


def _e11_row(row: dict[str, Any], index: int) -> tuple[str, dict[str, Any]]:
    """One table row -> ("attribute" | "pattern", normalised row)."""
    where = f"E.1-1 row {index} ({row.get('name', '?')})"
    basic = row.get("basicProfile")
    if basic not in ACTION_CODES:
        raise SourceError(f"{where}: unknown basic profile action {basic!r}")
    out: dict[str, Any] = {
        "name": row["name"],
        "in_std_comp_iod": row.get("stdCompIOD") == "Y",
        "basic": basic,
        "options": _options(row, where),
    }
    tag = row["tag"].strip()
    if _PRIVATE_ROW.match(tag):
        return "pattern", {"pattern": "private", **out}
    m = _TAG.match(tag)
    if not m:
        raise SourceError(f"{where}: unrecognised tag {tag!r}")
    group, element = m.group(1), m.group(2)
    if "x" in (group + element).lower():
        mask, value = _mask_pattern(group, element)
        return "pattern", {"pattern": f"({group.lower()},{element.lower()})", "mask": mask,
                           "value": value, **out}
    return "attribute", {"tag": (group + element).upper(), **out}


def build_basic_profile(path: Path) -> dict[str, Any]:
    """PS3.15 Table E.1-1 as data: explicit attributes sorted by tag, then pattern rows."""
    rows = json.loads(read_source(path).decode("utf-8"))
    if not isinstance(rows, list) or not rows:
        raise SourceError(f"{path.name}: expected a non-empty list of rows")
    attributes: list[dict[str, Any]] = []
    patterns: list[dict[str, Any]] = []
    for i, row in enumerate(rows):
        kind, out = _e11_row(row, i)
        (attributes if kind == "attribute" else patterns).append(out)
    tags = [a["tag"] for a in attributes]
    if len(set(tags)) != len(tags):
        raise SourceError(f"{path.name}: a tag occurs twice")
    doc = _header("PS3.15 Table E.1-1", e11_edition(path), path)
    doc["options"] = sorted(set(OPTION_COLUMNS.values()))
    doc["attributes"] = sorted(attributes, key=lambda a: a["tag"])
    doc["patterns"] = sorted(patterns, key=lambda p: p["pattern"])
    return doc


def _text(elem: ET.Element) -> str:
    return " ".join("".join(elem.itertext()).split())


def part15_edition(root: ET.Element) -> str:
    subtitle = root.find(f"{DOCBOOK}subtitle")
    m = re.search(r"PS3\.15 (\d{4}[a-e])\b", _text(subtitle) if subtitle is not None else "")
    if not m:
        raise SourceError("part15: the subtitle does not name the edition")
    return m.group(1)


def _find_table(root: ET.Element, xml_id: str) -> ET.Element:
    for table in root.iter(f"{DOCBOOK}table"):
        if table.get(XML_ID) == xml_id:
            return table
    raise SourceError(f"part15: no table {xml_id}")


def _safe_rows(table: ET.Element) -> Iterator[dict[str, str]]:
    body = table.find(f"{DOCBOOK}tbody")
    if body is None:
        raise SourceError("E.3.10-1: no table body")
    for i, tr in enumerate(body.findall(f"{DOCBOOK}tr")):
        cells = [_text(td) for td in tr.findall(f"{DOCBOOK}td")]
        if len(cells) != 5:
            raise SourceError(f"E.3.10-1 row {i}: expected 5 cells, found {len(cells)}")
        tag, creator, vr, vm, meaning = cells
        m = _SAFE_TAG.match(tag)
        if not m or not creator:
            raise SourceError(f"E.3.10-1 row {i}: unrecognised data element {tag!r}")
        yield {
            "group": m.group(1).upper(),
            "element": m.group(2).upper(),
            "creator": creator,
            "vr": vr,
            "vm": vm,
            "meaning": meaning,
        }


def build_safe_private(path: Path) -> dict[str, Any]:
    """PS3.15 Table E.3.10-1 as data: (group, element byte, private creator) rows."""
    root = ET.fromstring(read_source(path))
    rows = list(_safe_rows(_find_table(root, "table_E.3.10-1")))
    rows.sort(key=lambda r: (r["creator"], r["group"], r["element"]))
    doc = _header("PS3.15 Table E.3.10-1", part15_edition(root), path)
    doc["attributes"] = rows
    return doc


def render(doc: dict[str, Any]) -> str:
    """Deterministic JSON text, one key per line."""
    return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"


def outputs(e11: Path, part15: Path, allow_edition: bool = False) -> dict[str, str]:
    """File name -> text of every generated file."""
    basic = build_basic_profile(e11)
    safe = build_safe_private(part15)
    if not allow_edition:
        for doc, expected in ((basic, EXPECTED_E11_EDITION), (safe, EXPECTED_PART15_EDITION)):
            if doc["edition"] != expected:
                raise SourceError(
                    f"{doc['source']}: edition {doc['edition']}, this generator expects "
                    f"{expected} (update the constant deliberately or pass --allow-edition)"
                )
    return {"basic_profile.json": render(basic), "safe_private.json": render(safe)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--e11", type=Path, default=DEFAULT_E11, help="Table E.1-1 JSON")
    ap.add_argument("--part15", type=Path, default=DEFAULT_PART15, help="PS3.15 DocBook XML")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    ap.add_argument("--check", action="store_true", help="only compare; exit 1 when stale")
    ap.add_argument("--allow-edition", action="store_true", help="accept another edition")
    args = ap.parse_args(argv)
    try:
        files = outputs(args.e11, args.part15, args.allow_edition)
    except (OSError, SourceError) as err:
        print(f"generate.py: {err}", file=sys.stderr)
        return 2
    stale = []
    for name, text in files.items():
        target = args.out / name
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if current == text:
            continue
        stale.append(name)
        if not args.check:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
    if args.check and stale:
        print(f"generate.py: stale: {', '.join(stale)}", file=sys.stderr)
        return 1
    print(f"generate.py: {len(files) - len(stale)} up to date, {len(stale)} "
          f"{'stale' if args.check else 'written'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
