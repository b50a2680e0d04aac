"""Filter rules: the configuration's ``filters:`` section and optional YAML rule files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import yaml
from pydantic import TypeAdapter, ValidationError
from pydicom import Dataset
from pydicom.datadict import tag_for_keyword

from gateway.config import FilterRuleSettings, FilterSettings

FilterRule = FilterRuleSettings
ANY = "*"


class FilterConfigError(ValueError):
    """A filter rule file is unreadable or invalid; the message names the file and key."""


def _values(ds: Dataset, keyword: str) -> list[str]:
    tag = tag_for_keyword(keyword)
    if tag is None or tag not in ds:
        return []
    value = ds[tag].value
    if value is None or value == "":
        return []
    if isinstance(value, str | bytes | int | float) or not hasattr(value, "__iter__"):
        return [str(value).strip()]
    return [str(v).strip() for v in value]


def _attribute_matches(ds: Dataset, keyword: str, accepted: Sequence[str]) -> bool:
    present = _values(ds, keyword)
    for want in accepted:
        if want == "" and not present:
            return True
        if want == ANY and present:
            return True
        if want.upper() in (p.upper() for p in present):
            return True
    return False


def matches(rule: FilterRule, ds: Dataset) -> bool:
    """All conditions of ``rule`` hold for ``ds`` (a rule without conditions never matches)."""
    checks = []
    if rule.sop_class_uid:
        checks.append(_attribute_matches(ds, "SOPClassUID", rule.sop_class_uid))
    if rule.modality:
        checks.append(_attribute_matches(ds, "Modality", rule.modality))
    if rule.image_type:
        have = {v.upper() for v in _values(ds, "ImageType")}
        checks.append(all(v.upper() in have for v in rule.image_type))
    for keyword, accepted in rule.attributes.items():
        checks.append(_attribute_matches(ds, keyword, accepted))
    return bool(checks) and all(checks)


def first_match(rules: Sequence[FilterRule], ds: Dataset) -> FilterRule | None:
    for rule in rules:
        if matches(rule, ds):
            return rule
    return None


def _check_keywords(rules: Sequence[FilterRule], source: str) -> None:
    for i, rule in enumerate(rules):
        if not (rule.sop_class_uid or rule.modality or rule.image_type or rule.attributes):
            raise FilterConfigError(f"{source}: rules.{i} ({rule.name}): no condition given")
        for keyword in rule.attributes:
            if tag_for_keyword(keyword) is None:
                raise FilterConfigError(
                    f"{source}: rules.{i}.attributes.{keyword}: not a DICOM keyword"
                )


def load_rules(settings: FilterSettings) -> tuple[FilterRule, ...]:
    """The inline rules followed by those of ``settings.file`` (a YAML list under ``rules:``)."""
    rules = list(settings.rules)
    _check_keywords(rules, "filters")
    if settings.file is not None:
        rules.extend(_load_file(Path(settings.file)))
    return tuple(rules)


def _load_file(path: Path) -> list[FilterRule]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as err:
        raise FilterConfigError(f"{path}: cannot read filter rules ({err})") from None
    items = data.get("rules", []) if isinstance(data, dict) else data
    try:
        rules = TypeAdapter(list[FilterRuleSettings]).validate_python(items)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise FilterConfigError(f"{path}: rules.{key}: {first['msg']}") from None
    _check_keywords(rules, str(path))
    return rules
