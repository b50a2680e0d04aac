"""Site override files: validated like profiles (file, line and key of any error), applied
after the profile's own overrides, and checked whole before a release uses them."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.admin import RulesError, release_rules
from gateway.config import parse_settings
from gateway.deid.profile import (
    ProfileError,
    load_profile,
    parse_site_override,
    with_site_override,
)
from gateway.deid.stage import compile_release
from gateway.pipeline.stage import ReleaseRules, RulesText

CODE_MEANING_X = """\
name: clean-code-meanings
overrides:
  - path: ProcedureCodeSequence > CodeMeaning
    action: X
"""


def test_mapping_and_bare_list_forms() -> None:
    """A mapping names itself; a bare list of overrides takes the file's stem as its name."""
    site = parse_site_override(CODE_MEANING_X, "/tmp/whatever.yaml")
    assert site.name == "clean-code-meanings" and site.overrides[0].action == "X"
    bare = parse_site_override("- keyword: StudyDescription\n  action: K\n",
                               "/srv/site rules/keep desc.yml")
    assert bare.name == "keep-desc" and bare.overrides[0].keyword == "StudyDescription"
    assert parse_site_override("- tag: '(0008,1030)'\n  action: X\n", "x.yaml",
                               name="given").name == "given"


@pytest.mark.parametrize(("text", "expected"), [
    ("name: n\noverrides:\n  - keyword: StudyDescriptionn\n    action: X\n",
     "line 3: overrides.0.keyword: Value error, 'StudyDescriptionn' is not a DICOM keyword"),
    ("name: n\noverrides:\n  - path: PatientName > CodeMeaning\n    action: X\n",
     "line 3: overrides.0.path: Value error, 'PatientName' is not a sequence"),
    ("name: n\noverrides:\n  - keyword: StudyDescription\n    action: Q\n",
     "line 4: overrides.0.action"),
    ("name: n\noverides: []\n", "line 2: overides: unknown key"),
    ("name: n\noverrides: []\n", "overrides: Value error, give at least one override"),
    ("- keyword: StudyDescription\n  tag: '(0008,1030)'\n  action: X\n",
     "give exactly one of keyword, tag, private, path"),
    ("overrides: [\n", "not valid YAML"),
    ("just text\n", "a site override is a mapping with 'overrides', or a list of overrides"),
])
def test_errors_name_the_line_and_key(text: str, expected: str) -> None:
    """An invalid override file is refused with its name, the line and the key at fault."""
    with pytest.raises(ProfileError) as info:
        parse_site_override(text, "site-override.yaml")
    message = str(info.value)
    assert message.startswith("site-override.yaml")
    assert expected in message


def test_override_comes_after_the_profile_and_wins() -> None:
    """The override's rule replaces the profile's rule for the same attribute, and the profile
    is renamed to show both."""
    base = load_profile("research")[0].model_copy(update={"overrides": (
        parse_site_override("- path: ProcedureCodeSequence > CodeMeaning\n  action: K\n")
        .overrides)})
    combined = with_site_override(base, parse_site_override(CODE_MEANING_X))
    assert combined.name == "research+clean-code-meanings"
    assert [o.action for o in combined.overrides] == ["K", "X"]


def test_compiled_release_records_the_override() -> None:
    """The compiled release's version names profile and override, and its hash changes with
    the override's text."""
    settings = parse_settings({}).deid
    one = compile_release(settings, ReleaseRules(override=RulesText("a" * 64, "c", CODE_MEANING_X)))
    two = compile_release(settings, ReleaseRules(override=RulesText("b" * 64, "c", CODE_MEANING_X)))
    plain = compile_release(settings, ReleaseRules())
    assert "+basic+clean-code-meanings@" in one.version
    assert one.version != two.version and plain.version.endswith(
        f"+basic@{load_profile('basic')[1][:12]}")
    code_meaning = (0x00081032, 0x00080104)
    assert one.path_overrides[code_meaning].code == "X"


def test_release_rules_checks_everything_before_a_release(tmp_path: Path) -> None:
    """`release_rules` reads, validates and compiles the named profile and override, keeping
    their text and sha256; a missing file, a bad key or a pipeline without the deidentify
    stage is refused with the reason."""
    settings = parse_settings({})
    good = tmp_path / "clean.yaml"
    good.write_text(CODE_MEANING_X)
    rules = release_rules(settings, "research", good)
    assert rules.profile is not None and rules.profile.name == "research"
    assert rules.override is not None and rules.override.content == CODE_MEANING_X
    assert rules.override.name == "clean-code-meanings" and len(rules.override.sha256) == 64
    bad = tmp_path / "bad.yaml"
    bad.write_text("- keyword: NoSuchKeyword\n  action: X\n")
    with pytest.raises(RulesError, match=r"bad.yaml: invalid site override\n.*0.keyword"):
        release_rules(settings, None, bad)
    with pytest.raises(RulesError, match="cannot read site override"):
        release_rules(settings, None, tmp_path / "gone.yaml")
    with pytest.raises(RulesError, match=r"nosuchprofile\.yaml: cannot read profile"):
        release_rules(settings, "nosuchprofile", None)
    broken_profile = tmp_path / "p.yaml"
    broken_profile.write_text("name: p\noptions: [no_such_option]\n")
    with pytest.raises(RulesError, match=r"line 2: options\.0"):
        release_rules(settings, str(broken_profile), None)
    passthrough = parse_settings({"pipeline": {"stages": ["passthrough"]}})
    with pytest.raises(RulesError, match="no deidentify stage"):
        release_rules(passthrough, None, good)
