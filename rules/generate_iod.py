#!/usr/bin/env python3
"""Generate ``rules/ps3.3/iod_types.json``: the Type of attributes in each IOD (PS3.3).

The de-identification engine needs it to resolve the compound action codes of PS3.15 Table
E.1-1 (X/Z, X/D, Z/D, X/Z/D, X/Z/U*: "X unless Z or D is required to maintain IOD conformance")
and to keep public text attributes that no PS3.15 table lists when the IOD requires them.

Source: the machine-readable PS3.3 tables that the ``highdicom`` package ships in
``highdicom/_standard/`` (``sop_class_iod_map.json``, ``iod_module_map.json``,
``module_attribute_map.json``, derived from the standard's DocBook). Only the attributes the
engine asks about are written, and only their Type 1, 1C, 2 and 2C occurrences (an attribute
that is absent from an IOD's list is Type 3 or not part of the IOD). Needs pydicom for keyword and
VR look-ups; deterministic, so regenerating reproduces the committed file byte for byte.

Usage: ``python rules/generate_iod.py [--source DIR] [--out FILE] [--check]``
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

from pydicom.datadict import tag_for_keyword

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "rules" / "ps3.3" / "iod_types.json"
E11 = REPO / "rules" / "ps3.15" / "basic_profile.json"
FILES = ("sop_class_iod_map.json", "iod_module_map.json", "module_attribute_map.json")
TEXT_VRS = {"AE", "AS", "DA", "DT", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UR", "UT"}
STRICTNESS = {"1": 0, "1C": 1, "2": 2, "2C": 3}


def default_source() -> Path | None:
    spec = importlib.util.find_spec("highdicom")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "_standard"


def _asked_about(e11: dict[str, Any]) -> set[str]:
    """Keywords whose Type the engine looks up: compound-coded E.1-1 rows, and public text
    attributes in no table that are not known safe (those are kept whatever their Type)."""
    from pydicom.datadict import DicomDictionary

    sys.path.insert(0, str(REPO))
    from gateway.deid.knownsafe import KNOWN_SAFE_PUBLIC

    in_table = {int(a["tag"], 16) for a in e11["attributes"]}
    compound = {int(a["tag"], 16) for a in e11["attributes"] if "/" in a["basic"]}
    out = set()
    for tag, entry in DicomDictionary.items():
        keyword = entry[4]
        if not keyword or tag >> 16 in (0x0002, 0x0004) or (tag >> 16) & 1:
            continue
        unknown_text = tag not in in_table and entry[0] in TEXT_VRS
        if tag in compound or (unknown_text and keyword not in KNOWN_SAFE_PUBLIC):
            out.add(keyword)
    return out


def _iod_table(modules: list[dict[str, Any]], attributes: dict[str, list[dict[str, Any]]],
               wanted: set[str]) -> dict[str, str]:
    table: dict[str, str] = {}
    for module in modules:
        for attr in attributes.get(module["key"], []):
            kind = str(attr.get("type"))
            if kind not in STRICTNESS or attr["keyword"] not in wanted:
                continue
            if any(tag_for_keyword(p) is None for p in [*attr["path"], attr["keyword"]]):
                continue
            key = ">".join([*attr["path"], attr["keyword"]])
            if key not in table or STRICTNESS[kind] < STRICTNESS[table[key]]:
                table[key] = kind
    return dict(sorted(table.items()))


def build(source: Path) -> dict[str, Any]:
    raw = {name: (source / name).read_bytes() for name in FILES}
    sop_iod = json.loads(raw["sop_class_iod_map.json"])
    iod_modules = json.loads(raw["iod_module_map.json"])
    attributes = json.loads(raw["module_attribute_map.json"])
    wanted = _asked_about(json.loads(E11.read_text(encoding="utf-8")))
    iods = {
        key: _iod_table(iod_modules[key], attributes, wanted)
        for key in sorted(set(sop_iod.values()))
        if key in iod_modules
    }
    digest = hashlib.sha256(b"".join(raw[n] for n in FILES)).hexdigest()
    return {
        "_comment": "GENERATED FILE - DO NOT EDIT. Regenerate with rules/generate_iod.py "
        "(see rules/README.md).",
        "table": "PS3.3 IOD module attribute Types (1, 1C, 2, 2C)",
        "source": "highdicom/_standard/" + ", ".join(FILES),
        "source_sha256": digest,
        "sop_classes": dict(sorted((k, v) for k, v in sop_iod.items() if v in iods)),
        "iods": iods,
    }


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=0, sort_keys=False, separators=(",", ":")) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=default_source(),
                    help="folder with highdicom's _standard/*.json")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--check", action="store_true", help="only compare; exit 1 when stale")
    args = ap.parse_args(argv)
    if args.source is None or not (args.source / FILES[0]).is_file():
        print("generate_iod.py: no source (pip install highdicom, or pass --source)",
              file=sys.stderr)
        return 2
    text = render(build(args.source))
    current = args.out.read_text(encoding="utf-8") if args.out.exists() else None
    if args.check:
        return 0 if current == text else 1
    if current != text:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
    print(f"generate_iod.py: {args.out} {'unchanged' if current == text else 'written'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
