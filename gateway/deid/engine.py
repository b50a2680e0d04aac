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

from pydicom import Dataset
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.tag import BaseTag

from gateway.deid import actions, markers, private
from gateway.deid.compiled import CompiledProfile, Rule
from gateway.deid.iod import IodTypes, NoIodTypes
from gateway.deid.options import Option
from gateway.deid.textclean import Identifiers, PatternCache, TextCleaner
from gateway.pipeline.stage import StageContext
from gateway.pseudonyms.interface import PatientPseudonym, Pseudonymizer

# (path, tag, vr, code, source, old value, new value or actions.REMOVED)
Recorder = Callable[[tuple[int, ...], int, str, str, str, Any, Any], None]

CONTENT_SEQUENCE = 0x0040A730
SR_SEQUENCES = frozenset({CONTENT_SEQUENCE, 0x00400555, 0x00400610})  # + Acq. Context, Specimen
# Graphic Annotation Sequence (presentation states), Waveform Annotation Sequence.
GRAPHIC_SEQUENCES = frozenset({0x00700001, 0x0040B020})
PATIENT_NAME, PATIENT_ID, ISSUER_OF_PATIENT_ID = 0x00100010, 0x00100020, 0x00100021


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
    found: Identifiers = field(default_factory=Identifiers)
    # (dataset, tag, fallback code when the text cannot be cleaned)
    pending_text: list[tuple[Dataset, BaseTag, str, tuple[int, ...]]] = field(default_factory=list)
    removed_overlay_groups: set[int] = field(default_factory=set)

    @property
    def date_offset(self) -> int:
        return self.patient.date_offset_days


class Deidentifier:
    """Applies one compiled profile; build once per process, call for every instance."""

    def __init__(
        self,
        compiled: CompiledProfile,
        pseudonymizer: Pseudonymizer,
        iod: IodTypes | None = None,
    ) -> None:
        self.compiled = compiled
        self.pseudonymizer = pseudonymizer
        self.iod = iod or NoIodTypes()
        self.patterns = PatternCache()

    def apply(self, ds: Dataset, ctx: StageContext, record: Recorder | None = None) -> DeidResult:
        """De-identify ``ds`` in place; identifying input values are added to ctx.identifiers."""
        run = Run(
            compiled=self.compiled,
            pseudonymizer=self.pseudonymizer,
            iod=self.iod,
            ctx=ctx,
            sop_class=str(ds.get("SOPClassUID", "")),
            patient=_patient(ds, self.pseudonymizer),
            record=record,
            patterns=self.patterns,
        )
        walk(run, ds, (), "")
        actions.remove_overlay_groups(run, ds)
        clean_pending(run)
        applied = markers.write_markers(run, ds)
        markers.replace_file_meta(run, ds)
        ctx.identifiers.update(run.found.for_verify())
        ctx.versions.append(self.compiled.version)
        return DeidResult(run.patient, applied)


def _patient(ds: Dataset, pseudonymizer: Pseudonymizer) -> PatientPseudonym:
    pid = ds.get(PATIENT_ID)
    issuer = ds.get(ISSUER_OF_PATIENT_ID)
    name = ds.get(PATIENT_NAME)
    return pseudonymizer.patient(
        str(pid.value or "") if pid is not None else "",
        str(issuer.value or "") if issuer is not None else "",
        str(name.value or "") if name is not None else "",
    )


def _vr_of(ds: Dataset, tag: BaseTag) -> str:
    raw = ds.get_item(tag)
    vr = getattr(raw, "VR", None) if raw is not None else None
    if vr and vr != "UN":
        return str(vr)
    return str(ds[tag].VR)  # decoded: pydicom replaces UN by the dictionary VR


def _give_vr(ds: Dataset, tag: BaseTag, rule: Rule | None) -> None:
    """An element read without a VR (an implicit-VR body under an explicit transfer syntax, a
    known encoder fault) gets its dictionary VR, so that it is decoded and written correctly."""
    raw = ds.get_item(tag)
    if isinstance(raw, RawDataElement) and raw.VR is None:
        vr = rule.vr if rule is not None and rule.vr else _dictionary_vr(tag)
        if vr and " or " not in vr:
            ds[tag] = raw._replace(VR=vr)


def _dictionary_vr(tag: int) -> str:
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return ""


def walk(run: Run, ds: Dataset, path: tuple[int, ...], mode: str) -> None:
    """Apply the profile to every element of ``ds`` (a dataset or a sequence item)."""
    compiled = run.compiled
    table = compiled.table
    private_tags: list[BaseTag] = []
    for tag in list(ds.keys()):
        if tag.group & 1:
            private_tags.append(tag)
            continue
        if tag.group == 0x0002 and not path:
            continue  # file meta in the dataset body: rewritten by markers
        rule = None if (path and compiled.path_overrides) else table.get(tag)
        _give_vr(ds, tag, rule)
        vr = rule.vr if rule is not None and rule.vr else _vr_of(ds, tag)
        if rule is None:
            rule = compiled.rule_for(tag, vr, path)
        if rule.code == "K" and vr != "SQ" and not (mode or rule.collect):
            if run.record is not None:  # kept as read: not even decoded (pixel data stays on disk)
                run.record(path, tag, vr, "K", rule.source, ds[tag].value, ds[tag].value)
            continue
        actions.apply(run, ds, tag, vr, rule, path, mode)
    if private_tags:
        private.process(run, ds, private_tags, path, mode)


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


def clean_pending(run: Run) -> None:
    """Clean every deferred free-text value now that all identifying values are known."""
    if not run.pending_text:
        return
    cleaner = TextCleaner(run.found, run.patterns)
    for ds, tag, fallback, path in run.pending_text:
        if tag not in ds:
            continue
        actions.clean_text(run, cleaner, ds, tag, fallback, path)
