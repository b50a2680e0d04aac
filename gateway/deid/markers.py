"""What a de-identified instance says about itself, and its new file meta information.

Markers (PS3.3 C.7.1.1 Patient Identification, C.12.1 SOP Common; PS3.15 E.1.1):
Patient Identity Removed = YES, De-identification Method (text), De-identification Method Code
Sequence with the CID 7050 codes of exactly the options applied, Longitudinal Temporal
Information Modified, and this gateway in the Contributing Equipment Sequence with purpose
"De-identifying Equipment" (DCM 109104). No time stamp is written, so that processing the same
input again gives byte-identical output (DESIGN decision 3).

File meta (PS3.10 7.1, PS3.15 E.1.1 "the File Meta Information ... is entirely replaced"): a new
Media Storage SOP Instance UID, this implementation's class UID and version name, no source
AE title; the preamble is zeroed and Directory Information (group 0004) is removed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from gateway import __version__
from gateway.deid.options import BASIC_PROFILE_CODE, OPTION_CODES, MethodCode, Option

if TYPE_CHECKING:
    from gateway.deid.engine import Run

# 2.25 + the UUIDv5 of the project's URL: this implementation's class UID (PS3.7 D.3.3.2).
IMPLEMENTATION_CLASS_UID = UID("2.25.19723072427160482222089144755151714587")
IMPLEMENTATION_VERSION_NAME = f"DEIDGW_{__version__}"[:16]
DE_IDENTIFYING_EQUIPMENT = MethodCode("109104", "De-identifying Equipment")
MANUFACTURER = "deid-gateway project"


def _code_item(code: MethodCode) -> Dataset:
    item = Dataset()
    item.CodeValue = code.value
    item.CodingSchemeDesignator = "DCM"
    item.CodeMeaning = code.meaning
    return item


def options_applied(run: Run) -> tuple[Option, ...]:
    """The options to declare: the profile's, with Clean Pixel Data only if the pixel stage
    reports that it cleaned this instance's pixels."""
    opts: list[Option] = [o for o in run.compiled.options if o is not Option.CLEAN_PIXEL_DATA]
    if run.ctx.notes.get("pixels_cleaned"):
        opts.append(Option.CLEAN_PIXEL_DATA)
    return tuple(sorted(opts, key=lambda o: OPTION_CODES[o].value))


def _temporal(run: Run) -> str:
    if run.compiled.has(Option.RETAIN_LONGITUDINAL_MODIFIED_DATES):
        return "MODIFIED"
    if run.compiled.has(Option.RETAIN_LONGITUDINAL_FULL_DATES):
        return "UNMODIFIED"
    return "REMOVED"


def _equipment_item(run: Run) -> Dataset:
    item = Dataset()
    item.Manufacturer = MANUFACTURER
    item.ManufacturerModelName = "deid-gateway"
    item.SoftwareVersions = __version__
    item.PurposeOfReferenceCodeSequence = [_code_item(DE_IDENTIFYING_EQUIPMENT)]
    item.ContributionDescription = f"De-identified: {run.compiled.version}"
    return item


def write_markers(run: Run, ds: Dataset) -> tuple[Option, ...]:
    """Write the de-identification markers; returns the options declared."""
    applied = options_applied(run)
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = [f"deid-gateway {__version__}", run.compiled.version]
    ds.DeidentificationMethodCodeSequence = [
        _code_item(BASIC_PROFILE_CODE),
        *(_code_item(OPTION_CODES[o]) for o in applied),
    ]
    ds.LongitudinalTemporalInformationModified = _temporal(run)
    if Option.CLEAN_PIXEL_DATA in applied:
        ds.BurnedInAnnotation = "NO"  # the pixel stage blanked what text it found (113101)
    equipment = list(ds.get("ContributingEquipmentSequence", []) or [])
    equipment.append(_equipment_item(run))
    ds.ContributingEquipmentSequence = equipment
    return applied


def _transfer_syntax(ds: Dataset) -> UID:
    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    if ts:
        return UID(str(ts))
    implicit, little = getattr(ds, "original_encoding", (False, True))
    if implicit:
        return ImplicitVRLittleEndian
    return ExplicitVRLittleEndian if little is not False else ExplicitVRBigEndian


def replace_file_meta(run: Run, ds: Dataset) -> None:
    """New file meta information; preamble zeroed; group 0004 removed."""
    old = getattr(ds, "file_meta", None) or FileMetaDataset()
    meta = FileMetaDataset()
    meta.FileMetaInformationVersion = b"\x00\x01"
    sop_class = ds.get("SOPClassUID") or old.get("MediaStorageSOPClassUID")
    if sop_class:
        meta.MediaStorageSOPClassUID = sop_class
    instance = ds.get("SOPInstanceUID")
    if not instance and old.get("MediaStorageSOPInstanceUID"):
        instance = run.pseudonymizer.uid(str(old.MediaStorageSOPInstanceUID))
    if instance:
        meta.MediaStorageSOPInstanceUID = instance
    meta.TransferSyntaxUID = _transfer_syntax(ds)
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    ds.file_meta = meta
    if hasattr(ds, "preamble"):
        ds.preamble = b"\x00" * 128
    for tag in [t for t in list(ds.keys()) if t.group in (0x0002, 0x0004)]:
        del ds[tag]

