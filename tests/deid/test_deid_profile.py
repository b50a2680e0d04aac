"""Profiles: the shipped ones load and compile; errors name the line and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.deid import ProfileError, load_compiled
from gateway.deid.options import Option
from gateway.deid.profile import parse_profile

RESEARCH = {
    Option.RETAIN_LONGITUDINAL_MODIFIED_DATES, Option.RETAIN_PATIENT_CHARACTERISTICS,
    Option.RETAIN_DEVICE_IDENTITY, Option.RETAIN_SAFE_PRIVATE, Option.CLEAN_DESCRIPTORS,
    Option.CLEAN_STRUCTURED_CONTENT, Option.CLEAN_GRAPHICS, Option.CLEAN_PIXEL_DATA,
}


@pytest.mark.parametrize("name", ["basic", "research", "internal"])
def test_shipped_profiles_compile(name: str) -> None:
    """Each shipped profile loads, validates and compiles into a tag table."""
    compiled = load_compiled(name)
    assert compiled.profile.name == name
    assert len(compiled.table) > 600
    assert compiled.version.startswith(f"ps3.15-2024b+{name}@")


def test_research_has_exactly_the_listed_options() -> None:
    """The research profile is Basic plus the eight options of the issue."""
    assert load_compiled("research").options == RESEARCH


def test_internal_retains_uids() -> None:
    """The internal profile keeps UIDs."""
    assert Option.RETAIN_UIDS in load_compiled("internal").options


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: t\noptions:\n  - retain_uids\n  - clean_everything\n",
         r"line 4: options\.1"),
        ("name: t\nunknown_key: 1\n", r"line 2: unknown_key: unknown key"),
        ("name: t\noverrides:\n  - keyword: NotAKeyword\n    action: K\n",
         r"line 3: overrides\.0\.keyword"),
        ("name: t\noverrides:\n  - keyword: StudyDate\n    action: Q\n",
         r"line 4: overrides\.0\.action"),
        ("name: t\noverrides:\n  - tag: '(0008,0020)'\n    keyword: StudyDate\n    action: K\n",
         r"overrides\.0.*exactly one"),
        ("name: t\noverrides:\n  - private: {creator: A, group: '0028', element: '10'}\n"
         "    action: K\n", r"line 3: overrides\.0\.private\.group"),
        ("name: t\noverrides:\n  - path: StudyDate > PatientName\n    action: K\n",
         r"not a sequence"),
        ("name: t\noptions: [retain_longitudinal_full_dates, "
         "retain_longitudinal_modified_dates]\n", r"at most one"),
        ("name: t\noptions: [\n", r"line \d+: not valid YAML"),
    ],
)
def test_errors_name_line_and_key(text: str, message: str) -> None:
    """An invalid profile is refused with the line and the dotted key of the problem."""
    with pytest.raises(ProfileError, match=message):
        parse_profile(text, "p.yaml")


def test_unknown_profile_lists_shipped(tmp_path: Path) -> None:
    """Naming a profile that does not exist lists the shipped ones."""
    with pytest.raises(ProfileError, match="research"):
        load_compiled("nonexistent")


def test_private_override_compiles_by_creator_and_element() -> None:
    """A private override is keyed by group, creator and element byte (any block)."""
    from gateway.deid import compile_profile
    from gateway.deid.ruledata import load_rule_data

    text = ("name: t\noverrides:\n  - private: {creator: ACME 1.0, group: '0029', "
            "element: xx10}\n    action: K\n")
    compiled = compile_profile(parse_profile(text), "0" * 64, load_rule_data())
    assert compiled.private_overrides[(0x0029, "ACME 1.0", 0x10)].code == "K"
