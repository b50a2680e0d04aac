"""Private attributes (PS3.15 E.1-1 "(gggg,eeee) where gggg is odd", E.3.10 Retain Safe Private).

Without Retain Safe Private every private attribute is removed. With it, an element is kept when
the Private Data Element Characteristics Sequence (0008,0300) of the same dataset declares its
block SAFE or lists the element as non-identifying, or when Table E.3.10-1 lists it; the table is
matched by private creator, group and element byte, whichever block (``gggg,xx10``-``xxFF``)
the creator occupies. A Deidentification Action (0008,0307) declared for an element is applied.
Everything else is removed, and a private creator is kept only while its block keeps an element.
Kept private sequences are walked like public ones; kept private dates shift with the patient's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pydicom import Dataset
from pydicom.dataelem import RawDataElement
from pydicom.tag import BaseTag

from gateway.deid import actions, raw, rawactions
from gateway.deid.compiled import Rule
from gateway.deid.knownsafe import DATE_VRS
from gateway.deid.options import Option

if TYPE_CHECKING:
    from gateway.deid.engine import Run

PDECS = 0x00080300
_SAFE_RULE = Rule("K", "E.3.10-1 safe private")
_PDECS_SAFE = Rule("K", "Private Data Element Characteristics: non-identifying")
_REMOVE = Rule("X", "private: not known safe")
_ORPHAN = Rule("X", "private: no private creator")


@dataclass
class BlockInfo:
    """What (0008,0300) declares about one private block."""

    status: str = ""
    nonidentifying: set[int] = field(default_factory=set)
    actions: dict[int, str] = field(default_factory=dict)


def _declarations(ds: Dataset) -> dict[tuple[int, str], BlockInfo]:
    out: dict[tuple[int, str], BlockInfo] = {}
    seq = ds.get(PDECS)
    if seq is None or seq.VR != "SQ":
        return out
    for item in seq.value or ():
        group = item.get("PrivateGroupReference")
        creator = item.get("PrivateCreatorReference")
        if group is None or creator is None:
            continue
        info = BlockInfo(status=str(item.get("BlockIdentifyingInformationStatus", "")).upper())
        nonid = item.get("NonidentifyingPrivateElements")
        if nonid is not None:
            info.nonidentifying.update(int(v) & 0xFF for v in _as_list(nonid))
        for action in item.get("DeidentificationActionSequence", []) or []:
            code = str(action.get("DeidentificationAction", "X")).upper()
            for elem in _as_list(action.get("IdentifyingPrivateElements")):
                info.actions[int(elem) & 0xFF] = code if code in ("D", "Z", "X", "U") else "X"
        out[(int(group), str(creator).strip())] = info
    return out


def _as_list(value: object) -> list[int]:
    """A US value of VM 1-n (an int, a MultiValue or empty) as a list of ints."""
    if value is None or value == "":
        return []
    if isinstance(value, int):
        return [value]
    if isinstance(value, Iterable):
        return [int(x) for x in value]
    return []


def _creators(ds: Dataset, tags: list[BaseTag], fast: bool) -> dict[tuple[int, int], str]:
    out = {}
    for tag in tags:
        if 0x10 <= tag.element <= 0xFF:
            out[(tag.group, tag.element)] = _creator(ds, tag, fast)
    return out


def _creator(ds: Dataset, tag: BaseTag, fast: bool) -> str:
    """The private creator of a block (PS3.5 7.8.1), read from its bytes on the fast path."""
    elem = ds.get_item(tag, keep_deferred=True)
    if fast and isinstance(elem, RawDataElement) and elem.VR == "LO":
        found = raw.decode(elem, "LO")
        if found is not None and len(found) <= 1:
            return found[0].strip() if found else ""
    value = ds[tag].value
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return str(value or "").strip()


def rule_for_private(run: Run, key: tuple[int, str, int], decl: dict[tuple[int, str], BlockInfo]
                     ) -> Rule:
    """The rule of one private data element identified by (group, creator, element byte)."""
    compiled = run.compiled
    override = compiled.private_overrides.get(key)
    if override is not None:
        return override
    if compiled.private_rule.code != "C" or not compiled.has(Option.RETAIN_SAFE_PRIVATE):
        return compiled.private_rule
    info = decl.get((key[0], key[1]))
    if info is not None:
        if key[2] in info.actions:
            return Rule(info.actions[key[2]], "Private Data Element Characteristics: action")
        if info.status == "SAFE" or key[2] in info.nonidentifying:
            return _PDECS_SAFE
    if key in compiled.rules.safe_private:
        return _SAFE_RULE
    return _REMOVE


def process(run: Run, ds: Dataset, tags: list[BaseTag], path: tuple[int, ...], mode: str) -> None:
    """Apply the private rules to the private elements ``tags`` of ``ds``."""
    creators = _creators(ds, tags, run.fast)
    decl = _declarations(ds)
    kept_blocks: set[tuple[int, int]] = set()
    for tag in tags:
        element = tag.element
        if 0x10 <= element <= 0xFF:
            continue
        creator = creators.get((tag.group, element >> 8)) if element >= 0x1000 else None
        rule = _ORPHAN if creator is None else rule_for_private(
            run, (tag.group, creator, element & 0xFF), decl
        )
        _apply(run, ds, tag, rule, path, mode)
        if tag in ds:
            kept_blocks.add((tag.group, element >> 8))
    for (group, block), _creator in creators.items():
        if (group, block) not in kept_blocks:
            del ds[BaseTag((group << 16) | block)]
    if not path:
        _prune_declarations(ds, {(g, c) for (g, b), c in creators.items() if (g, b) in kept_blocks})


def _apply(run: Run, ds: Dataset, tag: BaseTag, rule: Rule, path: tuple[int, ...],
           mode: str) -> None:
    """Apply ``rule`` to one private element; on the fast path an element whose VR was read
    (explicit VR) is kept or removed without being decoded."""
    elem = ds.get_item(tag, keep_deferred=True)
    undecoded = run.fast and isinstance(elem, RawDataElement) and elem.VR not in (None, "UN")
    vr = str(elem.VR) if undecoded else str(ds[tag].VR)
    if rule.code == "K" and vr in DATE_VRS:
        rule = _dated(run, rule)
    if undecoded and vr != "SQ":
        assert isinstance(elem, RawDataElement)
        if rule.code == "K" and not rule.collect:
            actions.queue_kept_text(run, ds, tag, vr, path)  # kept as read, text cleaned later
            return
        if rule.code == "X" and vr not in raw.STRING_VRS and not 0x6000 <= tag.group <= 0x601E:
            del ds[tag]  # binary: nothing to collect from it (overlay groups: decoded path)
            return
        if rawactions.apply(run, ds, tag, elem, vr, rule, path, mode):
            return
    actions.apply(run, ds, tag, vr, rule, path, mode)


def _dated(run: Run, rule: Rule) -> Rule:
    """Kept private dates shift like public ones under Modified Dates (PS3.15 E.3.6)."""
    if run.compiled.has(Option.RETAIN_LONGITUDINAL_MODIFIED_DATES):
        return Rule("C", rule.source + "; date shifted")
    if run.compiled.has(Option.RETAIN_LONGITUDINAL_FULL_DATES):
        return rule
    return Rule("X", rule.source + "; date without a retain option")


def _prune_declarations(ds: Dataset, kept: set[tuple[int, str]]) -> None:
    """Drop (0008,0300) items that describe blocks no longer present."""
    seq = ds.get(PDECS)
    if seq is None or seq.VR != "SQ":
        return
    items = [
        it for it in seq.value
        if (int(it.get("PrivateGroupReference", 0) or 0),
            str(it.get("PrivateCreatorReference", "")).strip()) in kept
    ]
    if items:
        seq.value = items
    else:
        del ds[PDECS]
