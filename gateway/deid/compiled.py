"""A profile compiled once, at start-up, into a tag -> action table (DESIGN decision 5).

Resolution order for one element (see :meth:`CompiledProfile.rule_for`): a sequence-path
override, then the table (E.1-1 row with the profile's options applied, then keyword/tag
overrides), then the tag-range patterns (curves, overlays), then the policy for public attributes
in no table. Private elements are resolved by :mod:`gateway.deid.private`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword

from gateway.deid.knownsafe import DATE_VRS, KNOWN_SAFE_PUBLIC, SAFE_VRS
from gateway.deid.options import Option
from gateway.deid.profile import Profile, load_profile, parse_attribute
from gateway.deid.ruledata import DEFAULT_RULES_DIR, RuleData, TableRow, load_rule_data

# UIDs in no table that name classes, syntaxes or coding schemes: never replaced (PS3.15 E.3.9
# note 4: "one would never remove or replace the SOP Class UID").
_CLASS_UID = re.compile(r"(Class|Syntax|CodingScheme|Context|Mapping|Template)\w*UIDs?$")

# Names of E.1-1 rows whose values identify a person, an organisation or a record: their
# original values are collected, by kind, for Clean Descriptors and for the verify stage.
_IDENTIFYING_NAME = re.compile(
    r"\b(ID|IDs|Identifier|Number|Numbers|Address|Telephone|Name|Names|Institution|Station|"
    r"Serial|Locator|Residence|Rank|Branch|Insurance|E-?mail|Location|Occupation|Organization|"
    r"Department|Physician|Operator|Performer|Observer|Author|Creator|Person|Patient)\b",
    re.IGNORECASE,
)
_NOT_IDENTIFYING_NAME = re.compile(
    r"Description|Comment|Label|Protocol|Reason|Type|Code Sequence|Text|Notes|Sequence$|"
    r"Sex|Age|Size|Weight|Status|State|Diagnos|History|Position|Orientation|Characteristics|"
    r"ROI Name|Plan Name|Structure Set Name|Religious|Transport",
    re.IGNORECASE,
)
_ID_VRS = frozenset({"PN", "LO", "SH", "UC", "AE", "LT", "ST", "UT"})
# The kind of an identifying row's values (gateway.identity.model), first match wins.
_KINDS = (
    ("phone", re.compile(r"Telephone|Telecom|Fax", re.IGNORECASE)),
    ("address", re.compile(r"Address", re.IGNORECASE)),
    ("id", re.compile(r"\b(ID|IDs|Identifier|Number|Numbers|Serial|Locator)\b", re.IGNORECASE)),
)


@dataclass(frozen=True, slots=True)
class Rule:
    """The action for one attribute and where it came from (for ``explain``)."""

    code: str
    source: str
    vr: str = ""
    # Collect the original value for the verify stage even when it is kept: a site override
    # that keeps a name or an ID is exactly the rule mistake verify exists to catch.
    collect: bool = False


@dataclass
class CompiledProfile:
    """A profile ready to apply: every decision that does not depend on the instance is made."""

    profile: Profile
    profile_sha256: str
    rules: RuleData
    options: frozenset[Option]
    table: dict[int, Rule]
    patterns: tuple[tuple[int, int, Rule], ...]
    private_rule: Rule
    private_overrides: dict[tuple[int, str, int], Rule]
    path_overrides: dict[tuple[int, ...], Rule]
    # Tag -> kind of identifying value ("name", "id", "phone", "address", "phrase").
    identifying: dict[int, str]
    _unknown: dict[tuple[int, str], Rule] = field(default_factory=dict, repr=False)

    @property
    def version(self) -> str:
        """``ps3.15-<edition>+<profile>@<hash>`` recorded on every job it processed."""
        return f"ps3.15-{self.rules.edition}+{self.profile.name}@{self.profile_sha256[:12]}"

    def has(self, option: Option) -> bool:
        return option in self.options

    def rule_for(self, tag: int, vr: str, path: tuple[int, ...] = ()) -> Rule:
        """The action for a public element at ``path`` (the tags of the enclosing sequences)."""
        if path and self.path_overrides:
            rule = self.path_overrides.get((*path, tag))
            if rule is not None:
                return rule
        rule = self.table.get(tag)
        if rule is not None:
            return rule
        group = tag >> 16
        if 0x5000 <= group <= 0x60FF:
            for mask, value, prule in self.patterns:
                if tag & mask == value:
                    return prule
        return self.unknown_rule(tag, vr)

    def unknown_rule(self, tag: int, vr: str) -> Rule:
        """The documented policy for a public attribute in no table (``knownsafe`` module)."""
        key = (tag, vr)
        rule = self._unknown.get(key)
        if rule is None:
            rule = _unknown_public(self.profile.unknown_public, tag, vr, self.options)
            self._unknown[key] = rule
        return rule


def _unknown_public(policy: str, tag: int, vr: str, options: frozenset[Option]) -> Rule:
    source = f"no table: {policy}"
    if (tag & 0xFFFF) == 0:
        return Rule("X", "group length (retired)", vr)
    if policy == "keep":
        return Rule("K", source, vr)
    if vr == "SQ":
        return Rule("K", source, vr)  # kept and walked: every item is de-identified too
    if vr == "UI":
        keyword = keyword_for_tag(tag)
        return Rule("K" if _CLASS_UID.search(keyword) else "U", source, vr)
    if policy == "keep_known_safe" and vr in SAFE_VRS:
        return Rule("K", source, vr)
    if vr in DATE_VRS:
        if Option.RETAIN_LONGITUDINAL_FULL_DATES in options:
            return Rule("K", source, vr)
        if Option.RETAIN_LONGITUDINAL_MODIFIED_DATES in options:
            return Rule("C", source, vr)
    # Removed unless the instance's IOD requires it (then Z or D), like the compound codes.
    return Rule("X/Z/D", source, vr)


def _row_action(row: TableRow, options: frozenset[Option]) -> tuple[str, str]:
    """The Basic Profile action, replaced by the options that have a column for this row.

    When several selected options apply (e.g. Retain Device Identity K and Modified Dates C on a
    calibration date), the cleaning one wins: C is never less protective than K.
    """
    chosen = [(row.options[o.value], o.value) for o in sorted(options) if o.value in row.options]
    if not chosen:
        return row.basic, "E.1-1 basic"
    for code, name in chosen:
        if code == "C":
            return "C", f"E.1-1 {name}"
    return chosen[0][0], f"E.1-1 {chosen[0][1]}"


def _vr(tag: int) -> str:
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return ""


def _identifying(rules: RuleData) -> dict[int, str]:
    out = {}
    for tag, row in rules.attributes.items():
        vr = _vr(tag)
        if vr == "PN":
            out[tag] = "name"
        elif (vr in _ID_VRS and _IDENTIFYING_NAME.search(row.name)
              and not _NOT_IDENTIFYING_NAME.search(row.name)):
            out[tag] = next((k for k, p in _KINDS if p.search(row.name)), "phrase")
    return out


def compile_profile(
    profile: Profile, profile_sha256: str, rules: RuleData
) -> CompiledProfile:
    """Resolve the options and overrides of ``profile`` against the generated tables."""
    options = frozenset(profile.options)
    table: dict[int, Rule] = {}
    for tag, row in rules.attributes.items():
        code, source = _row_action(row, options)
        table[tag] = Rule(code, source, _vr(tag))
    for keyword in sorted(KNOWN_SAFE_PUBLIC | set(profile.known_safe)):
        tag = tag_for_keyword(keyword) or parse_attribute(keyword)
        table.setdefault(tag, Rule("K", "known safe", _vr(tag)))
    patterns = []
    private_rule = Rule("X", "E.1-1 basic")
    for p in rules.patterns:
        code, source = _row_action(p.row, options)
        if p.is_private:
            private_rule = Rule(code, source)
        else:
            patterns.append((p.mask, p.value, Rule(code, source)))
    private_overrides: dict[tuple[int, str, int], Rule] = {}
    path_overrides: dict[tuple[int, ...], Rule] = {}
    for i, o in enumerate(profile.overrides):
        rule = Rule(o.action, f"override {i}" + (f": {o.reason}" if o.reason else ""))
        if o.private is not None:
            private_overrides[o.private.key()] = rule
        elif o.path is not None:
            path_overrides[o.path_tags()] = Rule(o.action, rule.source, collect=True)
        else:
            tag = o.target_tag()
            table[tag] = Rule(o.action, rule.source, _vr(tag), collect=True)
    return CompiledProfile(
        profile=profile,
        profile_sha256=profile_sha256,
        rules=rules,
        options=options,
        table=table,
        patterns=tuple(patterns),
        private_rule=private_rule,
        private_overrides=private_overrides,
        path_overrides=path_overrides,
        identifying=_identifying(rules),
    )


def load_compiled(name_or_path: str | Path, rules_dir: Path = DEFAULT_RULES_DIR) -> CompiledProfile:
    """Load a profile by name or path and compile it against the generated tables."""
    profile, digest = load_profile(name_or_path, rules_dir)
    return compile_profile(profile, digest, load_rule_data(Path(rules_dir)))
