"""The generated PS3.15 rule files are up to date with their generator and sources."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "rules" / "ps3.15"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("rules_generate", REPO / "rules" / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _sources(gen: ModuleType) -> tuple[Path, Path]:
    e11, part15 = Path(gen.DEFAULT_E11), Path(gen.DEFAULT_PART15)
    if not (e11.is_file() and part15.is_file()):
        pytest.skip(f"standard sources not present ({e11.parent}); regeneration cannot be checked")
    return e11, part15


def test_regeneration_reproduces_committed_files_byte_for_byte() -> None:
    """Running the generator on the standard's tables gives exactly the committed files."""
    gen = _generator()
    e11, part15 = _sources(gen)
    for name, text in gen.outputs(e11, part15).items():
        assert (RULES / name).read_bytes() == text.encode("utf-8"), f"{name} is stale"


def test_headers_record_edition_and_source_hash() -> None:
    """Each generated file names its table, edition and the sha256 of its source."""
    for name, table in (("basic_profile.json", "E.1-1"), ("safe_private.json", "E.3.10-1")):
        doc = json.loads((RULES / name).read_text(encoding="utf-8"))
        assert "DO NOT EDIT" in doc["_comment"]
        assert doc["table"].endswith(table)
        assert len(doc["source_sha256"]) == 64
        assert doc["edition"][:4].isdigit()


def test_tag_ranges_are_pattern_rows_not_dropped() -> None:
    """Curves, overlays and odd-group private rows of E.1-1 are kept as patterns."""
    doc = json.loads((RULES / "basic_profile.json").read_text(encoding="utf-8"))
    patterns = {p["pattern"]: p for p in doc["patterns"]}
    assert set(patterns) == {"(50xx,xxxx)", "(60xx,3000)", "(60xx,4000)", "private"}
    assert patterns["(60xx,3000)"]["mask"] == "ff00ffff"
    assert patterns["private"]["options"] == {"retain_safe_private": "C"}
    assert len(doc["attributes"]) + len(doc["patterns"]) == 621


def test_stale_file_is_detected(tmp_path: Path) -> None:
    """``--check`` exits 1 when a committed file differs from what the sources give."""
    gen = _generator()
    e11, part15 = _sources(gen)
    for name in ("basic_profile.json", "safe_private.json"):
        (tmp_path / name).write_bytes((RULES / name).read_bytes())
    (tmp_path / "safe_private.json").write_text("{}\n", encoding="utf-8")
    args = ["--e11", str(e11), "--part15", str(part15), "--out", str(tmp_path), "--check"]
    assert gen.main(args) == 1
    assert gen.main(args[:-1]) == 0
    assert gen.main(args) == 0


def test_iod_types_up_to_date() -> None:
    """The generated IOD Type table matches what its generator makes from highdicom's tables."""
    spec = importlib.util.spec_from_file_location("gen_iod", REPO / "rules" / "generate_iod.py")
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    source = gen.default_source()
    if source is None or not (source / gen.FILES[0]).is_file():
        pytest.skip("highdicom is not installed; its PS3.3 tables are the generator's source")
    text = gen.render(gen.build(source))
    assert (REPO / "rules" / "ps3.3" / "iod_types.json").read_text(encoding="utf-8") == text
