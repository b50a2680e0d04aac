"""De-identification profiles in YAML: the Basic Profile, named options and site overrides.

A profile file looks like::

    name: research
    description: Basic Profile with the options a research PACS needs
    options: [retain_longitudinal_modified_dates, clean_descriptors, ...]
    unknown_public: keep_known_safe       # policy for public attributes in no table
    known_safe: [ConvolutionKernel]       # more public attributes known to be safe
    overrides:
      - keyword: StudyDescription         # or tag: "(0008,1030)"
        action: K
        reason: the study description is curated at this site
      - private: {creator: "ACME 1.0", group: "0029", element: "10"}
        action: X
      - path: RequestAttributesSequence > RequestedProcedureID
        action: X

Loading validates everything and names the file, line and key of any error
(:class:`ProfileError`). Profiles are shipped in ``rules/profiles/`` and may be named by their
stem (``research``) or given as a path.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator
from pydicom.datadict import dictionary_VR, tag_for_keyword

from gateway.deid.options import EXCLUSIVE, Option
from gateway.deid.ruledata import DEFAULT_RULES_DIR

ActionCode = Literal["D", "Z", "X", "K", "C", "U", "Z/D", "X/Z", "X/D", "X/Z/D", "X/Z/U*"]
UnknownPublicPolicy = Literal["keep_known_safe", "remove", "keep"]

_TAG_RE = re.compile(r"^\(?\s*([0-9A-Fa-f]{4})\s*,?\s*([0-9A-Fa-f]{4})\s*\)?$")


class ProfileError(ValueError):
    """A profile cannot be read or is invalid; the message names the file, line and key."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def parse_tag(text: str) -> int:
    """``(0008,1030)``, ``0008,1030`` or ``00081030`` -> the 32-bit tag."""
    m = _TAG_RE.match(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a tag like (0008,1030)")
    return int(m.group(1) + m.group(2), 16)


def parse_attribute(text: str) -> int:
    """A DICOM keyword or a tag -> the 32-bit tag."""
    text = text.strip()
    tag = tag_for_keyword(text)
    if tag is not None:
        return tag
    if _TAG_RE.match(text):
        return parse_tag(text)
    raise ValueError(f"{text!r} is neither a DICOM keyword nor a tag")


class PrivateRef(_Model):
    """A private element by creator, odd group and element byte in the block (``xx10`` -> 10)."""

    creator: str
    group: str
    element: str

    @field_validator("group")
    @classmethod
    def _odd_group(cls, value: str) -> str:
        if not re.fullmatch(r"[0-9A-Fa-f]{4}", value) or int(value, 16) % 2 == 0:
            raise ValueError("must be an odd group of four hex digits, e.g. 0029")
        return value.upper()

    @field_validator("element")
    @classmethod
    def _element_byte(cls, value: str) -> str:
        v = value.lower().removeprefix("xx")
        if not re.fullmatch(r"[0-9a-f]{2}", v):
            raise ValueError("must be the element byte within the block, e.g. 10 or xx10")
        return v.upper()

    @field_validator("creator")
    @classmethod
    def _creator(cls, value: str) -> str:
        if not value.strip() or len(value) > 64:
            raise ValueError("must be a private creator of 1-64 characters")
        return value.strip()

    def key(self) -> tuple[int, str, int]:
        return int(self.group, 16), self.creator, int(self.element, 16)


class Override(_Model):
    """A site rule that replaces the table's action for one attribute."""

    keyword: str | None = None
    tag: str | None = None
    private: PrivateRef | None = None
    path: str | None = None
    action: ActionCode
    reason: str = ""

    @model_validator(mode="after")
    def _one_selector(self) -> Override:
        chosen = [k for k in ("keyword", "tag", "private", "path") if getattr(self, k) is not None]
        if len(chosen) != 1:
            raise ValueError("give exactly one of keyword, tag, private, path")
        return self

    @field_validator("keyword")
    @classmethod
    def _keyword(cls, value: str | None) -> str | None:
        if value is not None and tag_for_keyword(value) is None:
            raise ValueError(f"{value!r} is not a DICOM keyword")
        return value

    @field_validator("tag")
    @classmethod
    def _tag(cls, value: str | None) -> str | None:
        if value is not None:
            parse_tag(value)
        return value

    @field_validator("path")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = [p.strip() for p in value.split(">")]
        if len(parts) < 2:
            raise ValueError("a path names a sequence and what is inside: Seq > Attribute")
        for part in parts[:-1]:
            if dictionary_VR(parse_attribute(part)) != "SQ":
                raise ValueError(f"{part!r} is not a sequence")
        parse_attribute(parts[-1])
        return value

    def path_tags(self) -> tuple[int, ...]:
        assert self.path is not None
        return tuple(parse_attribute(p) for p in self.path.split(">"))

    def target_tag(self) -> int:
        if self.keyword is not None:
            tag = tag_for_keyword(self.keyword)
            assert tag is not None
            return tag
        assert self.tag is not None
        return parse_tag(self.tag)


def _valid_name(value: str) -> str:
    """A profile or override name: 1-40 letters, digits, '_', '.' or '-'."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,40}", value):
        raise ValueError("must be 1-40 letters, digits, '_', '.' or '-'")
    return value


class Profile(_Model):
    """The Basic Profile plus named options plus site overrides (PS3.15 E.1, E.3)."""

    name: str
    description: str = ""
    options: tuple[Option, ...] = ()
    unknown_public: UnknownPublicPolicy = "keep_known_safe"
    known_safe: tuple[str, ...] = ()
    overrides: tuple[Override, ...] = ()

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _valid_name(value)

    @field_validator("options")
    @classmethod
    def _options(cls, value: tuple[Option, ...]) -> tuple[Option, ...]:
        if len(set(value)) != len(value):
            raise ValueError("an option is listed twice")
        for group in EXCLUSIVE:
            if len(group & set(value)) > 1:
                raise ValueError(f"at most one of {', '.join(sorted(group))}")
        return value

    @field_validator("known_safe")
    @classmethod
    def _known_safe(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            parse_attribute(item)
        return value


def _lines(node: yaml.Node, loc: tuple[Any, ...], out: dict[tuple[Any, ...], int]) -> None:
    """Record the 1-based line of every key and item below ``node``."""
    out[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            k = key.value
            out[(*loc, k)] = key.start_mark.line + 1
            _lines(value, (*loc, k), out)
            out[(*loc, k)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _lines(item, (*loc, i), out)


def _line_of(loc: tuple[Any, ...], lines: dict[tuple[Any, ...], int]) -> int | None:
    for n in range(len(loc), -1, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return None


def _format(err: ValidationError, source: str, lines: dict[tuple[Any, ...], int]) -> str:
    out = [f"{source}: invalid profile"]
    for item in err.errors():
        loc = tuple(p for p in item["loc"] if not (isinstance(p, str) and p.startswith("function")))
        key = ".".join(str(p) for p in loc) or "(top level)"
        line = _line_of(loc, lines)
        msg = "unknown key" if item["type"] == "extra_forbidden" else item["msg"]
        out.append(f"  line {line}: {key}: {msg}" if line else f"  {key}: {msg}")
    return "\n".join(out)


def parse_profile(text: str, source: str = "<profile>") -> Profile:
    """Validate the YAML text of a profile."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}:" if mark is not None else ""
        raise ProfileError(f"{source}:{where} not valid YAML") from None
    if not isinstance(data, dict):
        raise ProfileError(f"{source}: a profile is a mapping of keys to values")
    lines: dict[tuple[Any, ...], int] = {}
    if node is not None:
        _lines(node, (), lines)
    try:
        return Profile.model_validate(data)
    except ValidationError as err:
        raise ProfileError(_format(err, source, lines)) from None


def resolve_profile_path(name_or_path: str | Path, rules_dir: Path = DEFAULT_RULES_DIR) -> Path:
    """A shipped profile's stem (``research``) or a path to a YAML file."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        return p
    return Path(rules_dir) / "profiles" / f"{name_or_path}.yaml"


def load_profile(
    name_or_path: str | Path, rules_dir: Path = DEFAULT_RULES_DIR
) -> tuple[Profile, str]:
    """Read and validate a profile; returns it with the sha256 of its text."""
    path = resolve_profile_path(name_or_path, rules_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        shipped = sorted(q.stem for q in (Path(rules_dir) / "profiles").glob("*.yaml"))
        raise ProfileError(
            f"{path}: cannot read profile ({err.strerror}); shipped: {', '.join(shipped)}"
        ) from None
    return parse_profile(text, str(path)), hashlib.sha256(text.encode()).hexdigest()


class SiteOverride(_Model):
    """A site override file: overrides applied on top of a profile, for example to release
    quarantined jobs whose leak a site rule removes::

        name: clean-procedure-code-meanings
        overrides:
          - path: ProcedureCodeSequence > CodeMeaning
            action: X
            reason: the site writes names into procedure code meanings

    A bare list of overrides is accepted too (its name is then the file's stem).
    """

    name: str
    description: str = ""
    overrides: tuple[Override, ...]

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _valid_name(value)

    @field_validator("overrides")
    @classmethod
    def _some(cls, value: tuple[Override, ...]) -> tuple[Override, ...]:
        if not value:
            raise ValueError("give at least one override")
        return value


def _stem_name(source: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(source).stem).strip("-.")[:40]
    return stem or "override"


def parse_site_override(text: str, source: str = "<override>",
                        name: str | None = None) -> SiteOverride:
    """Validate the YAML text of a site override file; errors name the file, line and key.

    Without a ``name:`` key the override is named ``name``, else after the file's stem.
    """
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}:" if mark is not None else ""
        raise ProfileError(f"{source}:{where} not valid YAML") from None
    lines: dict[tuple[Any, ...], int] = {}
    if isinstance(data, list):
        data = {"name": name or _stem_name(source), "overrides": data}
        if node is not None:
            _lines(node, ("overrides",), lines)
    elif isinstance(data, dict):
        data = {"name": name or _stem_name(source), **data}
        if node is not None:
            _lines(node, (), lines)
    else:
        raise ProfileError(f"{source}: a site override is a mapping with 'overrides', "
                           "or a list of overrides")
    try:
        return SiteOverride.model_validate(data)
    except ValidationError as err:
        raise ProfileError(
            _format(err, source, lines).replace("invalid profile", "invalid site override")
        ) from None


def with_site_override(profile: Profile, override: SiteOverride) -> Profile:
    """``profile`` with ``override``'s rules after its own (a later rule for the same attribute
    wins), named ``<profile>+<override>`` so that the recorded ruleset shows both."""
    return profile.model_copy(update={
        "name": f"{profile.name}+{override.name}",
        "overrides": profile.overrides + override.overrides,
    })
