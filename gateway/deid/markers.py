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

import io
from typing import TYPE_CHECKING

from pydicom import Dataset
from pydicom.dataelem import RawDataElement
from pydicom.dataset import FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_dataset
from pydicom.tag import BaseTag
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from gateway import __version__
from gateway.deid import raw
from gateway.deid.options import BASIC_PROFILE_CODE, OPTION_CODES, MethodCode, Option

if TYPE_CHECKING:
    from gateway.deid.compiled import CompiledProfile
    from gateway.deid.engine import Run

# 2.25 + the UUIDv5 of the project's URL: this implementation's class UID (PS3.7 D.3.3.2).
IMPLEMENTATION_CLASS_UID = UID("2.25.19723072427160482222089144755151714587")
IMPLEMENTATION_VERSION_NAME = f"DEIDGW_{__version__}"[:16]
DE_IDENTIFYING_EQUIPMENT = MethodCode("109104", "De-identifying Equipment")
MANUFACTURER = "deid-gateway project"
EQUIPMENT = 0x0018A001  # Contributing Equipment Sequence


def _code_item(code: MethodCode) -> Dataset:
    item = Dataset()
    item.CodeValue = code.value
    item.CodingSchemeDesignator = "DCM"
    item.CodeMeaning = code.meaning
    return item


def options_applied(run: Run) -> tuple[Option, ...]:
    """The options to declare: the profile's, with Clean Pixel Data only if the pixel stage
    reports that it cleaned this instance's pixels."""
    return declared(run.compiled, bool(run.ctx.notes.get("pixels_cleaned")))


def declared(compiled: CompiledProfile, pixels_cleaned: bool) -> tuple[Option, ...]:
    """The options of ``compiled`` to declare, in the order of their CID 7050 codes."""
    opts: list[Option] = [o for o in compiled.options if o is not Option.CLEAN_PIXEL_DATA]
    if pixels_cleaned:
        opts.append(Option.CLEAN_PIXEL_DATA)
    return tuple(sorted(opts, key=lambda o: OPTION_CODES[o].value))


def _temporal(compiled: CompiledProfile) -> str:
    if compiled.has(Option.RETAIN_LONGITUDINAL_MODIFIED_DATES):
        return "MODIFIED"
    if compiled.has(Option.RETAIN_LONGITUDINAL_FULL_DATES):
        return "UNMODIFIED"
    return "REMOVED"


def _equipment_item(compiled: CompiledProfile) -> Dataset:
    item = Dataset()
    item.Manufacturer = MANUFACTURER
    item.ManufacturerModelName = "deid-gateway"
    item.SoftwareVersions = __version__
    item.PurposeOfReferenceCodeSequence = [_code_item(DE_IDENTIFYING_EQUIPMENT)]
    item.ContributionDescription = f"De-identified: {compiled.version}"
    return item


def _set_markers(ds: Dataset, compiled: CompiledProfile, applied: tuple[Option, ...]) -> None:
    """The markers other than Contributing Equipment Sequence."""
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = [f"deid-gateway {__version__}", compiled.version]
    ds.DeidentificationMethodCodeSequence = [
        _code_item(BASIC_PROFILE_CODE),
        *(_code_item(OPTION_CODES[o]) for o in applied),
    ]
    ds.LongitudinalTemporalInformationModified = _temporal(compiled)
    if Option.CLEAN_PIXEL_DATA in applied:
        ds.BurnedInAnnotation = "NO"  # the pixel stage blanked what text it found (113101)


class MarkerCache:
    """The markers of one profile as raw elements, encoded once per set of options declared and
    per encoding (implicit VR, little endian) and shared by every instance: raw elements are
    immutable, and pydicom decodes them into the instance's own elements when they are read.

    The bytes are pydicom's own encoding of the elements :func:`write_markers` sets, read back
    as a file reader would, so an instance written with them is byte-identical.
    """

    def __init__(self, compiled: CompiledProfile) -> None:
        self._compiled = compiled
        self._encoded: dict[tuple[tuple[Option, ...], bool, bool], list[RawDataElement]] = {}
        self.declared = {cleaned: declared(compiled, cleaned) for cleaned in (False, True)}

    def elements(self, applied: tuple[Option, ...], implicit: bool, little: bool
                 ) -> list[RawDataElement]:
        key = (applied, implicit, little)
        found = self._encoded.get(key)
        if found is None:
            found = self._encode(applied, implicit, little)
            self._encoded[key] = found
        return found

    def _encode(self, applied: tuple[Option, ...], implicit: bool, little: bool
                ) -> list[RawDataElement]:
        ds = Dataset()
        _set_markers(ds, self._compiled, applied)
        ds.ContributingEquipmentSequence = [_equipment_item(self._compiled)]
        fp = DicomBytesIO()
        fp.is_implicit_VR, fp.is_little_endian = implicit, little
        write_dataset(fp, ds)
        decoded = read_dataset(io.BytesIO(fp.getvalue()), implicit, little)
        out: list[RawDataElement] = []
        for tag in list(decoded.keys()):
            elem = decoded.get_item(tag, keep_deferred=True)
            assert isinstance(elem, RawDataElement) and elem.length != 0xFFFFFFFF
            out.append(elem._replace(VR=ds[tag].VR, value_tell=0))
        return out


def write_markers(run: Run, ds: Dataset) -> tuple[Option, ...]:
    """Write the de-identification markers; returns the options declared."""
    cache = run.marker_cache
    if cache is not None:
        applied = cache.declared[bool(run.ctx.notes.get("pixels_cleaned"))]
    else:
        applied = options_applied(run)
    implicit, little = getattr(ds, "original_encoding", (None, None))
    if (run.fast and cache is not None and implicit is not None and little is not None
            and EQUIPMENT not in ds):
        for elem in cache.elements(applied, implicit, little):
            ds[elem.tag] = elem
        return applied
    _set_markers(ds, run.compiled, applied)
    equipment = list(ds.get("ContributingEquipmentSequence", []) or [])
    equipment.append(_equipment_item(run.compiled))
    ds.ContributingEquipmentSequence = equipment
    return applied


def _transfer_syntax(ds: Dataset) -> UID:
    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    if ts:
        return ts if isinstance(ts, UID) else UID(str(ts))
    implicit, little = getattr(ds, "original_encoding", (False, True))
    if implicit:
        return ImplicitVRLittleEndian
    return ExplicitVRLittleEndian if little is not False else ExplicitVRBigEndian


def _meta_element(tag: int, vr: str, value: bytes) -> RawDataElement:
    """A file meta element (always Explicit VR Little Endian, PS3.10 7.1) from its bytes."""
    return RawDataElement(BaseTag(tag), vr, len(value), value, 0, False, True)


def _uid_element(tag: int, uid: str) -> RawDataElement | None:
    value = raw.encode([uid], "UI")
    return None if value is None else _meta_element(tag, "UI", value)


_VERSION = _meta_element(0x00020001, "OB", b"\x00\x01")
_IMPLEMENTATION = (
    _meta_element(0x00020012, "UI", raw.encode([IMPLEMENTATION_CLASS_UID], "UI") or b""),
    _meta_element(0x00020013, "SH", raw.encode([IMPLEMENTATION_VERSION_NAME], "SH") or b""),
)
ZERO_PREAMBLE = bytes(128)


def _fast_meta(ds: Dataset) -> FileMetaDataset | None:
    """The new file meta from raw elements, when the SOP Class and Instance UIDs can be read
    from their bytes; None otherwise (then :func:`replace_file_meta` decodes them)."""
    sop_class = raw.single_value(ds, 0x00080016, "UI")
    instance = raw.single_value(ds, 0x00080018, "UI")
    if not sop_class or not instance:
        return None
    elements = [
        _VERSION,
        _uid_element(0x00020002, sop_class),
        _uid_element(0x00020003, instance),
        _uid_element(0x00020010, _transfer_syntax(ds)),
        *_IMPLEMENTATION,
    ]
    if any(e is None for e in elements):
        return None
    meta = FileMetaDataset({e.tag: e for e in elements if e is not None})
    # As read from a file: pydicom then writes the raw elements as they are, instead of
    # decoding them all to write them in an encoding that it could not know they are in.
    meta.set_original_encoding(False, True, "iso8859")
    return meta


def replace_file_meta(run: Run, ds: Dataset) -> None:
    """New file meta information; preamble zeroed; group 0004 removed."""
    meta = _fast_meta(ds) if run.fast else None
    ds.file_meta = meta if meta is not None else _decoded_meta(run, ds)
    if hasattr(ds, "preamble"):
        ds.preamble = ZERO_PREAMBLE
    for tag in [t for t in run.container_tags if t in ds]:
        del ds[tag]


def _decoded_meta(run: Run, ds: Dataset) -> FileMetaDataset:
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
    return meta
