"""The de-identification engine: applies a compiled profile to one dataset, in place.

It walks every element at every depth (PS3.15 E.1: actions apply inside sequence items too),
resolves the element's action (:mod:`gateway.deid.compiled`, :mod:`gateway.deid.private`) and
applies it (:mod:`gateway.deid.actions`); free text to clean waits until the whole instance has
been walked, so that every identifying value of the instance is known when it is cleaned
(:mod:`gateway.deid.textclean`). Markers and file meta are then written
(:mod:`gateway.deid.markers`). Any SOP class, known or not, goes through the same rules.

UIDs are replaced only through ``Pseudonymizer.uid``, patients through ``.patient`` and other
identifiers through ``.identifier``; ``PseudonymUnavailable`` propagates to the stage, which
quarantines the instance.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydicom import Dataset, config
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.tag import BaseTag

from gateway.deid import actions, markers, private, raw, rawactions, stream, values
from gateway.deid.compiled import CompiledProfile, Rule
from gateway.deid.iod import IodTypes, NoIodTypes
from gateway.deid.knownsafe import SAFE_VRS
from gateway.deid.options import Option
from gateway.deid.textclean import PatternCache, TextCleaner
from gateway.identity import Identity, IdentityMemory, Memory, memory_keys
from gateway.pipeline.stage import StageContext
from gateway.pseudonyms.interface import PatientPseudonym, Pseudonymizer

# (path, tag, vr, code, source, old value, new value or actions.REMOVED)
Recorder = Callable[[tuple[int, ...], int, str, str, str, Any, Any], None]

CONTENT_SEQUENCE = 0x0040A730
SR_SEQUENCES = frozenset({CONTENT_SEQUENCE, 0x00400555, 0x00400610})  # + Acq. Context, Specimen
# Graphic Annotation Sequence (presentation states), Waveform Annotation Sequence.
GRAPHIC_SEQUENCES = frozenset({0x00700001, 0x0040B020})
PATIENT_NAME, PATIENT_ID, ISSUER_OF_PATIENT_ID = 0x00100010, 0x00100020, 0x00100021
STUDY_INSTANCE_UID = 0x0020000D
SOP_CLASS_UID = 0x00080016
SHIFT_CACHE_SIZE = 4096


@dataclass
class DeidResult:
    """What one run did, for the stage's log line and for ``explain``."""

    patient: PatientPseudonym
    options_applied: tuple[Option, ...]


@dataclass
class Run:
    """The state of de-identifying one instance; discarded afterwards."""

    compiled: CompiledProfile
    pseudonymizer: Pseudonymizer
    iod: IodTypes
    ctx: StageContext
    sop_class: str
    patient: PatientPseudonym
    record: Recorder | None = None
    patterns: PatternCache | None = None
    # Apply actions to undecoded elements where possible (:mod:`gateway.deid.rawactions`).
    fast: bool = False
    marker_cache: markers.MarkerCache | None = None
    # (tag, VR) of elements known to be kept as read outside rule paths and modes (a cache).
    kept: set[tuple[int, str]] = field(default_factory=set)
    # Top-level elements of groups 0002 and 0004, which the new file meta replaces.
    container_tags: list[BaseTag] = field(default_factory=list)
    # Shifted dates by (VR, value, offset): the dates of one study repeat (a cache).
    shifts: dict[tuple[str, str, int], str | None] = field(default_factory=dict)
    # The identifying values of the input, collected where the profile changes them.
    found: Identity = field(default_factory=Identity)
    # (dataset, tag, how to clean it: see :func:`clean_pending`, path)
    pending_text: list[tuple[Dataset, BaseTag, str, tuple[int, ...]]] = field(default_factory=list)
    removed_overlay_groups: set[int] = field(default_factory=set)

    @property
    def date_offset(self) -> int:
        return self.patient.date_offset_days

    def shifted(self, vr: str, value: str) -> str | None:
        """:func:`values.shift_value` by this patient's offset, remembered."""
        if vr == "TM":
            return value  # a whole-day shift leaves a time of day as it is
        key = (vr, value, self.date_offset)
        if key not in self.shifts:
            if len(self.shifts) >= SHIFT_CACHE_SIZE:
                self.shifts.clear()
            self.shifts[key] = values.shift_value(vr, value, self.date_offset)
        return self.shifts[key]


class Deidentifier:
    """Applies one compiled profile; build once per process, call for every instance.

    ``fast`` (the default) applies actions to undecoded elements wherever the output is the same
    (:mod:`gateway.deid.rawactions`); ``fast=False`` decodes every element it changes, which is
    what the tests compare the fast path with. ``explain`` (a ``record`` callback) always decodes.
    ``memory`` is what the engine learns about studies and patients (this process's own when
    not given; the node's, shared by its workers, in the gateway).
    """

    def __init__(
        self,
        compiled: CompiledProfile,
        pseudonymizer: Pseudonymizer,
        iod: IodTypes | None = None,
        *,
        fast: bool = True,
        memory: Memory | None = None,
    ) -> None:
        self.compiled = compiled
        self.pseudonymizer = pseudonymizer
        self.iod = iod or NoIodTypes()
        self.patterns = PatternCache()
        # What earlier instances of a study or patient taught (DESIGN decision 11).
        self.memory: Memory = memory if memory is not None else IdentityMemory()
        self.fast = fast
        self.marker_cache = markers.MarkerCache(compiled)
        self._kept: set[tuple[int, str]] = set()
        self._shifts: dict[tuple[str, str, int], str | None] = {}

    def learn(self, ds: Dataset) -> None:
        """Remember what ``ds`` teaches about its study and patient before any instance of them
        is cleaned (:mod:`gateway.deid.learn`); ``ds`` is not changed."""
        from gateway.deid.learn import collect_identity

        fast = _pydicom_defaults()
        keys = _memory_keys(ds, fast)
        identity = collect_identity(self.compiled, ds)
        self.memory.learn(keys, identity, self.memory.recall(keys))

    def apply(self, ds: Dataset, ctx: StageContext, record: Recorder | None = None) -> DeidResult:
        """De-identify ``ds`` in place; the identity it was cleaned of (the instance's and what
        its study and patient taught) is added to ``ctx.identity``."""
        fast = self.fast and record is None and _pydicom_defaults()
        run = Run(
            compiled=self.compiled,
            pseudonymizer=self.pseudonymizer,
            iod=self.iod,
            ctx=ctx,
            sop_class=_sop_class(ds, fast),
            patient=_patient(ds, self.pseudonymizer, fast),
            record=record,
            patterns=self.patterns,
            fast=fast,
            marker_cache=self.marker_cache,
            kept=self._kept if fast else set(),
            shifts=self._shifts,
        )
        keys = _memory_keys(ds, fast)
        walk(run, ds, (), "")
        actions.remove_overlay_groups(run, ds)
        identity = run.found.copy()
        known = self.memory.recall(keys)
        identity.update(known)
        self.memory.learn(keys, run.found, known)
        clean_pending(run, identity)
        applied = markers.write_markers(run, ds)
        markers.replace_file_meta(run, ds)
        stream.stream_deferred(ds)
        ctx.identity.update(identity)
        ctx.versions.append(self.compiled.version)
        return DeidResult(run.patient, applied)


def _pydicom_defaults() -> bool:
    """The fast path mirrors pydicom's decoding with its default settings: dates as strings, and
    validation that warns rather than raises (an instance pydicom would refuse is refused)."""
    return (not config.datetime_conversion
            and config.settings.reading_validation_mode != config.RAISE
            and config.settings.writing_validation_mode != config.RAISE)


def _text(ds: Dataset, tag: int, vr: str, fast: bool) -> str:
    value = raw.single_value(ds, tag, vr) if fast else None
    if value is not None:
        return value
    elem = ds.get(tag)
    return str(elem.value or "") if elem is not None else ""


def _sop_class(ds: Dataset, fast: bool) -> str:
    value = raw.single_value(ds, SOP_CLASS_UID, "UI") if fast else None
    return value if value is not None else str(ds.get("SOPClassUID", ""))


def _patient(ds: Dataset, pseudonymizer: Pseudonymizer, fast: bool = False) -> PatientPseudonym:
    return pseudonymizer.patient(
        _text(ds, PATIENT_ID, "LO", fast),
        _text(ds, ISSUER_OF_PATIENT_ID, "LO", fast),
        _text(ds, PATIENT_NAME, "PN", fast),
    )


def _memory_keys(ds: Dataset, fast: bool) -> list[str]:
    return memory_keys(_text(ds, STUDY_INSTANCE_UID, "UI", fast), _text(ds, PATIENT_ID, "LO", fast),
                       _text(ds, ISSUER_OF_PATIENT_ID, "LO", fast),
                       _text(ds, PATIENT_NAME, "PN", fast))


def _vr_of(ds: Dataset, tag: BaseTag, elem: DataElement | RawDataElement, fast: bool) -> str:
    vr = elem.VR
    if vr and vr != "UN":
        return str(vr)
    if fast and vr is None and isinstance(elem, RawDataElement):
        # Implicit VR, and a binary VR or a choice of them (pixel data, LUTs) in the dictionary:
        # each gets the same rule, so a deferred value need not be read and decoded for it.
        choice = _dictionary_vr(tag)
        if choice in SAFE_VRS and (" or " in choice or elem.value is None):
            return choice
    return str(ds[tag].VR)  # decoded: pydicom replaces UN by the dictionary VR


def _give_vr(ds: Dataset, tag: BaseTag, elem: RawDataElement, rule: Rule | None
             ) -> RawDataElement:
    """An element read without a VR (an implicit-VR body under an explicit transfer syntax, a
    known encoder fault) gets its dictionary VR, so that it is decoded and written correctly."""
    vr = rule.vr if rule is not None and rule.vr else _dictionary_vr(tag)
    if vr and " or " not in vr:
        elem = elem._replace(VR=vr)
        ds[tag] = elem
    return elem


def _dictionary_vr(tag: int) -> str:
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return ""


def walk(run: Run, ds: Dataset, path: tuple[int, ...], mode: str) -> None:
    """Apply the profile to every element of ``ds`` (a dataset or a sequence item).

    Elements are taken as stored, undecoded where pydicom has not decoded them: a kept element
    is never decoded (deferred pixel data stays on disk until it is written), and on the fast
    path a changed one is rewritten from its bytes.
    """
    compiled = run.compiled
    table = compiled.table
    by_path = bool(path and compiled.path_overrides)
    fast = run.fast
    kept = run.kept if not (by_path or mode) else None
    private_tags: list[BaseTag] = []
    for tag, elem in _not_kept(ds, kept):
        itag = int(tag)  # (a plain int compares and hashes faster than a BaseTag)
        if _set_aside(run, tag, itag >> 16, path, private_tags):
            continue
        rule = None if by_path else table.get(itag)
        if elem.VR is None and isinstance(elem, RawDataElement) and elem.value is not None:
            elem = _give_vr(ds, tag, elem, rule)  # (a deferred value is checked against its VR)
        vr = rule.vr if rule is not None and rule.vr else _vr_of(ds, tag, elem, fast)
        if rule is None:
            rule = compiled.rule_for(itag, vr, path)
        if rule.code == "K" and vr != "SQ" and not (mode or rule.collect):
            queued = actions.queue_kept_text(run, ds, tag, vr, path)  # text: cleaned later
            if run.record is not None:  # kept as read: not even decoded (pixel data on disk)
                run.record(path, tag, vr, "K", rule.source, ds[tag].value, ds[tag].value)
            elif (not queued and kept is not None and elem.VR not in (None, "UN")
                  and itag >> 16 not in (2, 4)):
                kept.add((itag, str(elem.VR)))  # the same tag and VR get the same rule
            continue
        if fast and isinstance(elem, RawDataElement) and rawactions.apply(
            run, ds, tag, elem, vr, rule, path, mode
        ):
            continue
        actions.apply(run, ds, tag, vr, rule, path, mode)
    if private_tags:
        private.process(run, ds, private_tags, path, mode)


def _not_kept(ds: Dataset, kept: set[tuple[int, str]] | None
              ) -> list[tuple[BaseTag, DataElement | RawDataElement]]:
    """The elements of ``ds`` (a copy of the list: actions change ``ds``), less those of a
    (tag, VR) known to be kept as read (public, outside groups 0002 and 0004)."""
    if kept is None:
        return list(ds.items())
    return [(t, e) for t, e in ds.items() if (int(t), e.VR) not in kept]


def _set_aside(run: Run, tag: BaseTag, group: int, path: tuple[int, ...],
               private_tags: list[BaseTag]) -> bool:
    """Private elements wait for :func:`private.process`; top-level groups 0002 (file meta in
    the body: left alone) and 0004 are removed with the new file meta (:mod:`markers`)."""
    if group & 1:
        private_tags.append(tag)
        return True
    if group in (0x0002, 0x0004) and not path:
        run.container_tags.append(tag)
        return group == 0x0002
    return False


def walk_sequence(run: Run, elem: DataElement, path: tuple[int, ...], mode: str) -> None:
    """Walk every item of a sequence element with the mode the sequence selects."""
    tag = int(elem.tag)
    child_mode = mode
    if tag in SR_SEQUENCES:
        child_mode = "sr-clean" if run.compiled.has(Option.CLEAN_STRUCTURED_CONTENT) else "sr"
    elif tag in GRAPHIC_SEQUENCES:
        child_mode = "gfx-clean" if run.compiled.has(Option.CLEAN_GRAPHICS) else "gfx"
    for item in elem.value or ():
        walk(run, item, (*path, tag), child_mode)


def clean_pending(run: Run, identity: Identity | None = None) -> None:
    """Clean every deferred text value now that all identifying values are known.

    ``identity`` is what the instance and earlier instances of its study and patient taught
    (the instance's own values when not given). Each entry says what the text is: ``X`` and
    ``D`` Clean Descriptors / structured content text (identity and generic patterns; removed or
    dummied when it cannot be cleaned), ``K`` text the profile keeps, ``M`` a code meaning (the
    identity only; a meaning the standard's lexicon gives its code is left as it is) and ``L`` a
    coded string used as a label (the identity only, each match becoming ``XXX``).
    """
    if not run.pending_text:
        return
    cleaner = TextCleaner(identity if identity is not None else run.found, run.patterns)
    for ds, tag, how, path in run.pending_text:
        if tag not in ds:
            continue
        if how == "M" and actions.standard_meaning(ds):
            continue
        if run.fast and rawactions.clean_text(run, cleaner, ds, tag, how):
            continue
        actions.clean_text(run, cleaner, ds, tag, how, path)
