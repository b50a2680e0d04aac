"""Synthetic patients and instances for the de-identification tests, built in code only.

Every identifying value is planted from :data:`PLANTED` so that a test can search the output
bytes for each one.
"""

from __future__ import annotations

import io
from collections.abc import Iterable

from pydicom import Dataset
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

from gateway.deid import Deidentifier, load_compiled
from gateway.deid.iod import TableIodTypes
from gateway.pipeline.stage import StageContext
from gateway.pseudonyms.interface import InMemoryPseudonymizer

CT = "1.2.840.10008.5.1.4.1.1.2"
RTSTRUCT = "1.2.840.10008.5.1.4.1.1.481.3"
RTPLAN = "1.2.840.10008.5.1.4.1.1.481.5"
RTDOSE = "1.2.840.10008.5.1.4.1.1.481.2"
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
KOS = "1.2.840.10008.5.1.4.1.1.88.59"
SEG = "1.2.840.10008.5.1.4.1.1.66.4"
GSPS = "1.2.840.10008.5.1.4.1.1.11.1"
ROOT = "1.2.826.0.1.3680043.10.999"  # a made-up root for synthetic originals

PLANTED = {
    "family": "Zebulon",
    "given": "Quixote",
    "middle": "Marmaduke",
    "patient_id": "MRN-48213977",
    "other_id": "ALT-99817",
    "birth_date": "19610423",
    "address": "17 Fernleaf Crescent",
    "town": "Wolverhampton",
    "phone": "+44 1632 960123",
    "referrer_family": "Okonkwo",
    "referrer_given": "Adaeze",
    "institution": "Saint Hildegard Infirmary",
    "accession": "ACC7781234",
    "study_id": "STU55123",
    "requested_id": "RP-66120",
    "operator": "Thistlewood",
}
STUDY_DATE = "20210423"


def uid(*parts: object) -> str:
    return ".".join([ROOT, *(str(p) for p in parts)])


def _meta(sop_class: str, sop_instance: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = uid(0)
    meta.SourceApplicationEntityTitle = "HILDEGARD_CT"
    return meta


def base(sop_class: str, sop_instance: str, modality: str, series: int,
         patient: int = 1) -> FileDataset:
    """Patient, study, series and SOP common attributes with planted identifying values."""
    p = PLANTED
    ds = FileDataset("", Dataset(), file_meta=_meta(sop_class, sop_instance), preamble=b"X" * 128)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_instance
    ds.StudyDate = STUDY_DATE
    ds.SeriesDate = STUDY_DATE
    ds.ContentDate = STUDY_DATE
    ds.StudyTime = "093000"
    ds.SeriesTime = "093500"
    ds.ContentTime = "093600.250"
    ds.AccessionNumber = p["accession"]
    ds.Modality = modality
    ds.Manufacturer = "Synthetic Devices"
    ds.InstitutionName = p["institution"]
    ds.InstitutionAddress = f"{p['address']}, {p['town']}"
    ds.ReferringPhysicianName = f"{p['referrer_family']}^{p['referrer_given']}"
    ds.StationName = "CTSTATION1"
    ds.StudyDescription = f"CT chest for {p['family']} {p['given']} {p['patient_id']} on 04/23/2021"
    ds.SeriesDescription = f"{p['given'].lower()}, {p['family'].upper()} follow-up 2021-04-23"
    ds.OperatorsName = f"{p['operator']}^Ann"
    ds.PatientName = f"{p['family']}^{p['given']}^{p['middle']}" + (str(patient) if patient > 1
                                                                   else "")
    ds.PatientID = p["patient_id"] + (str(patient) if patient > 1 else "")
    ds.IssuerOfPatientID = "HILDEGARD"
    ds.PatientBirthDate = p["birth_date"]
    ds.PatientSex = "M"
    ds.PatientAge = "059Y"
    ds.PatientAddress = f"{p['address']}^{p['town']}"
    ds.PatientTelephoneNumbers = p["phone"]
    ds.OtherPatientIDsSequence = Sequence([_other_id(p["other_id"])])
    ds.StudyInstanceUID = uid(1, patient)
    ds.SeriesInstanceUID = uid(2, patient, series)
    ds.StudyID = p["study_id"]
    ds.SeriesNumber = series
    ds.InstanceNumber = 1
    ds.RequestAttributesSequence = Sequence([_request()])
    return ds


def _other_id(value: str) -> Dataset:
    item = Dataset()
    item.PatientID = value
    item.TypeOfPatientID = "TEXT"
    return item


def _request() -> Dataset:
    """A nested request with a deeper level: item > sequence > item."""
    p = PLANTED
    item = Dataset()
    item.RequestedProcedureID = p["requested_id"]
    item.RequestedProcedureDescription = f"Requested by {p['referrer_family']}"
    item.ScheduledProcedureStepID = p["requested_id"] + "A"
    code = Dataset()
    code.CodeValue = "X1"
    code.CodingSchemeDesignator = "99LOCAL"
    code.CodeMeaning = "Chest CT"
    item.ScheduledProtocolCodeSequence = Sequence([code])
    return item


def image_pixels(ds: Dataset, rows: int = 8, cols: int = 8) -> None:
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = bytes(rows * cols * 2)


def ct(patient: int = 1, series: int = 1, number: int = 1, private: bool = True) -> FileDataset:
    """A CT Image with planted values in standard, nested, private and overlay attributes."""
    ds = base(CT, uid(3, patient, series, number), "CT", series, patient)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.InstanceNumber = number
    ds.FrameOfReferenceUID = uid(4, patient)
    ds.PositionReferenceIndicator = ""
    ds.ImagePositionPatient = [0, 0, number * 5]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [0.5, 0.5]
    ds.SliceThickness = 5
    ds.KVP = 120
    ds.AcquisitionNumber = 1
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    ds.ImageComments = f"Patient lives at {PLANTED['address']}, phone {PLANTED['phone']}"
    ds.DeviceSerialNumber = "SN-1"
    image_pixels(ds)
    _overlay(ds)
    if private:
        add_private(ds)
    return ds


def _overlay(ds: Dataset) -> None:
    ds.add_new(0x60000010, "US", ds.Rows)
    ds.add_new(0x60000011, "US", ds.Columns)
    ds.add_new(0x60000040, "CS", "G")
    ds.add_new(0x60000050, "SS", [1, 1])
    ds.add_new(0x60000100, "US", 1)
    ds.add_new(0x60000102, "US", 0)
    ds.add_new(0x60003000, "OW", b"\xff" * (ds.Rows * ds.Columns // 8))
    ds.add_new(0x60004000, "LT", f"Overlay for {PLANTED['family']} {PLANTED['given']}")
    ds.add_new(0x60000022, "LO", f"Marked by {PLANTED['operator']}")


def add_private(ds: Dataset) -> None:
    """Two private creators (one in a non-default block), a private sequence, safe elements."""
    p = PLANTED
    acme = ds.private_block(0x0029, "ACME Imaging 1.0", create=True)
    acme.add_new(0x10, "LO", f"{p['family']} {p['given']}")
    item = Dataset()
    item.PatientName = f"{p['family']}^{p['given']}"
    inner = item.private_block(0x0029, "ACME Imaging 1.0", create=True)
    inner.add_new(0x12, "LO", p["patient_id"])
    acme.add_new(0x11, "SQ", Sequence([item]))
    ds.add_new(0x00190010, "LO", "OTHER VENDOR")
    ds.add_new(0x00191001, "LO", p["other_id"])
    ds.add_new(0x00190011, "LO", "GEMS_ACQU_01")  # a Safe Private creator, in block 0x11
    ds.add_new(0x00191123, "DS", "5.0")  # E.3.10-1: GEMS_ACQU_01 (0019,xx23)
    ds.add_new(0x00191199, "LO", p["given"])  # not in E.3.10-1: removed


def sr(patient: int = 1, referenced: Iterable[tuple[str, str]] = ()) -> FileDataset:
    """A Basic Text SR whose content tree holds planted names, dates, text and UIDs."""
    p = PLANTED
    refs = list(referenced)
    ds = base(BASIC_TEXT_SR, uid(5, patient), "SR", 50, patient)
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "UNVERIFIED"
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = Sequence([_code("18748-4", "LN", "Diagnostic Imaging Report")])
    ds.ContinuityOfContent = "SEPARATE"
    ds.ReferencedPerformedProcedureStepSequence = Sequence()
    ds.PerformedProcedureCodeSequence = Sequence()
    items = [
        _item("TEXT", "121071", "Finding", TextValue=f"Reviewed for {p['family']} by "
              f"{p['referrer_family']} on 23 April 2021, MRN {p['patient_id']}"),
        _item("PNAME", "121008", "Person Observer Name",
              PersonName=f"{p['referrer_family']}^{p['referrer_given']}"),
        _item("DATE", "111060", "Study Date", Date=STUDY_DATE),
        _item("UIDREF", "121018", "Procedure Study Instance UID", UID=uid(1, patient)),
    ]
    for sop_class, sop_instance in refs:
        image = _item("IMAGE", "121233", "Source image")
        ref = Dataset()
        ref.ReferencedSOPClassUID = sop_class
        ref.ReferencedSOPInstanceUID = sop_instance
        image.ReferencedSOPSequence = Sequence([ref])
        items.append(image)
    ds.ContentSequence = Sequence(items)
    if refs:
        ds.CurrentRequestedProcedureEvidenceSequence = Sequence(
            [evidence(uid(1, patient), uid(2, patient, 1), refs)]
        )
    return ds


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    c = Dataset()
    c.CodeValue, c.CodingSchemeDesignator, c.CodeMeaning = value, scheme, meaning
    return c


def _item(value_type: str, code: str, meaning: str, **values: str) -> Dataset:
    item = Dataset()
    item.RelationshipType = "CONTAINS"
    item.ValueType = value_type
    item.ConceptNameCodeSequence = Sequence([_code(code, "DCM", meaning)])
    for key, value in values.items():
        setattr(item, key, value)
    return item


def evidence(study: str, series: str, refs: Iterable[tuple[str, str]]) -> Dataset:
    """A Hierarchical SOP Instance Reference Macro item for one series."""
    ser = Dataset()
    ser.SeriesInstanceUID = series
    sops = []
    for sop_class, sop_instance in refs:
        r = Dataset()
        r.ReferencedSOPClassUID = sop_class
        r.ReferencedSOPInstanceUID = sop_instance
        sops.append(r)
    ser.ReferencedSOPSequence = Sequence(sops)
    st = Dataset()
    st.StudyInstanceUID = study
    st.ReferencedSeriesSequence = Sequence([ser])
    return st


def gsps(patient: int = 1, image: tuple[str, str] | None = None) -> FileDataset:
    """A Grayscale Softcopy Presentation State with planted annotation text."""
    ds = base(GSPS, uid(6, patient), "PR", 60, patient)
    text = Dataset()
    text.UnformattedTextValue = f"{PLANTED['family']} Q. {PLANTED['patient_id']}"
    text.AnchorPointAnnotationUnits = "PIXEL"
    text.AnchorPoint = [1.0, 1.0]
    text.AnchorPointVisibility = "N"
    ann = Dataset()
    ann.GraphicLayer = "LAYER1"
    ann.TextObjectSequence = Sequence([text])
    if image is not None:
        ref = Dataset()
        ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = image
        ann.ReferencedImageSequence = Sequence([ref])
    ds.GraphicAnnotationSequence = Sequence([ann])
    return ds


def to_bytes(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def deidentify(ds: Dataset, profile: str = "research", secret: bytes = b"test-secret",
               notes: dict[str, object] | None = None) -> StageContext:
    """Apply a shipped profile in place with an in-memory pseudonymizer; returns the context."""
    engine = Deidentifier(load_compiled(profile), InMemoryPseudonymizer(secret),
                          TableIodTypes.load())
    ctx = StageContext(job_id="test", notes=dict(notes or {}))
    engine.apply(ds, ctx)
    return ctx
