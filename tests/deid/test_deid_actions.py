"""Each action code, each compound code and each option, table-driven; sequences at any depth."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydicom import Dataset
from pydicom.sequence import Sequence

from gateway.deid import Deidentifier, compile_profile
from gateway.deid.compiled import CompiledProfile
from gateway.deid.profile import parse_profile
from gateway.deid.ruledata import load_rule_data
from gateway.pipeline.stage import StageContext
from gateway.pseudonyms.interface import InMemoryPseudonymizer

CT = "1.2.840.10008.5.1.4.1.1.2"


class FixedTypes:
    """An IodTypes that gives every attribute the same Type."""

    def __init__(self, kind: str | None) -> None:
        self.kind = kind

    def type_of(self, sop_class: str, path: tuple[int, ...], tag: int) -> str | None:
        return self.kind


def compiled(options: list[str] | None = None, overrides: str = "") -> CompiledProfile:
    text = f"name: t\noptions: {options or []}\n" + overrides
    return compile_profile(parse_profile(text), "0" * 64, load_rule_data())


def run(ds: Dataset, profile: CompiledProfile, kind: str | None = None) -> StageContext:
    ctx = StageContext(job_id="t")
    Deidentifier(profile, InMemoryPseudonymizer(), FixedTypes(kind)).apply(ds, ctx)
    return ctx


def dataset(**attrs: Any) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = CT
    ds.SOPInstanceUID = "1.2.3.4"
    for key, value in attrs.items():
        setattr(ds, key, value)
    return ds


# (keyword, value, E.1-1 code, expected outcome: "removed", "empty", "dummy", "kept", "uid")
SIMPLE = [
    ("InstitutionAddress", "1 Road", "X", "removed"),
    ("ReferringPhysicianName", "Doe^J", "Z", "empty"),
    ("VerifyingObserverName", "Doe^J", "D", "dummy"),
    ("FrameOfReferenceUID", "1.2.3.9", "U", "uid"),
    ("PatientBirthDate", "19610423", "Z", "empty"),
    ("Manufacturer", "ACME", "no table", "kept"),
]


@pytest.mark.parametrize(("keyword", "value", "code", "expected"), SIMPLE)
def test_simple_codes(keyword: str, value: str, code: str, expected: str) -> None:
    """X removes, Z empties, D puts a dummy, U replaces the UID, K keeps (Basic Profile)."""
    ds = dataset(**{keyword: value})
    run(ds, compiled())
    if expected == "removed":
        assert keyword not in ds
    elif expected == "empty":
        assert ds[keyword].value in (None, "")
    elif expected == "dummy":
        assert str(ds[keyword].value) not in ("", value)
    elif expected == "uid":
        assert ds[keyword].value.startswith("2.25.") and ds[keyword].value != value
    else:
        assert ds[keyword].value == value


# (compound code's attribute, value, IOD Type, expected)
COMPOUND = [
    ("InstitutionName", "X/Z/D", "3", "removed"),
    ("InstitutionName", "X/Z/D", "2", "empty"),
    ("InstitutionName", "X/Z/D", "1", "dummy"),
    ("InstitutionName", "X/Z/D", None, "dummy"),
    ("ProtocolName", "X/D", "3", "removed"),
    ("ProtocolName", "X/D", "1C", "dummy"),
    ("AcquisitionDate", "X/Z", "3", "removed"),
    ("AcquisitionDate", "X/Z", "2", "empty"),
    ("AcquisitionDate", "X/Z", None, "empty"),
    ("ContentDate", "Z/D", "2C", "empty"),
    ("ContentDate", "Z/D", "1", "dummy"),
    ("ContentDate", "Z/D", "3", "empty"),
]


@pytest.mark.parametrize(("keyword", "code", "kind", "expected"), COMPOUND)
def test_compound_codes_resolve_by_iod_type(keyword: str, code: str, kind: str | None,
                                            expected: str) -> None:
    """Compound codes give X for Type 3, Z for Type 2, D for Type 1; unknown Type keeps it."""
    profile = compiled()
    from pydicom.datadict import tag_for_keyword

    assert profile.table[tag_for_keyword(keyword)].code == code
    value = "20210423" if "Date" in keyword else "Some Name"
    ds = dataset(**{keyword: value})
    run(ds, profile, kind)
    if expected == "removed":
        assert keyword not in ds
    elif expected == "empty":
        assert ds[keyword].value in (None, "")
    else:
        assert ds[keyword].value not in (None, "", value)


def _ref_item() -> Dataset:
    ref = Dataset()
    ref.ReferencedSOPClassUID = CT
    ref.ReferencedSOPInstanceUID = "1.2.3.77"
    return ref


@pytest.mark.parametrize(("kind", "kept"), [("1", True), ("2", True), ("3", False),
                                            (None, True)])
def test_reference_sequence_code_x_z_u(kind: str | None, kept: bool) -> None:
    """X/Z/U*: a required reference sequence is kept with its UIDs replaced, else removed."""
    ds = dataset(SourceImageSequence=Sequence([_ref_item()]))
    run(ds, compiled(), kind)
    assert ("SourceImageSequence" in ds) is kept
    if kept:
        ref = ds.SourceImageSequence[0]
        assert ref.ReferencedSOPClassUID == CT
        assert ref.ReferencedSOPInstanceUID.startswith("2.25.")


def _nest(depth: int) -> Dataset:
    """Depth levels of unknown-to-the-table sequences around identifying attributes."""
    inner = Dataset()
    inner.PatientName = "Deep^Name"
    inner.InstitutionAddress = "1 Deep Road"
    inner.ReferencedSOPInstanceUID = "1.2.3.88"
    for _ in range(depth):
        outer = Dataset()
        outer.ReferencedSeriesSequence = Sequence([inner])
        inner = outer
    return inner


@pytest.mark.parametrize("depth", [1, 2, 5])
def test_actions_apply_at_any_sequence_depth(depth: int) -> None:
    """Names, addresses and UIDs nested N sequences deep get their table action."""
    ds = dataset(ReferencedSeriesSequence=_nest(depth).ReferencedSeriesSequence)
    run(ds, compiled())
    item = ds
    for _ in range(depth):
        item = item.ReferencedSeriesSequence[0]
    assert item.PatientName in ("", None)
    assert "InstitutionAddress" not in item
    assert item.ReferencedSOPInstanceUID.startswith("2.25.")


# (option, attribute, value, expected without the option, expected with it)
OPTIONS = [
    ("retain_uids", "FrameOfReferenceUID", "1.2.3.9", "uid", "kept"),
    ("retain_device_identity", "DeviceSerialNumber", "SN123", "dummy", "kept"),
    ("retain_institution_identity", "InstitutionalDepartmentName", "Radiology", "removed",
     "kept"),
    ("retain_patient_characteristics", "PatientAge", "045Y", "removed", "kept"),
    ("retain_longitudinal_full_dates", "StudyDate", "20210423", "empty", "kept"),
    ("retain_longitudinal_modified_dates", "StudyDate", "20210423", "empty", "shifted"),
    ("clean_descriptors", "StudyDescription", "Head CT", "removed", "kept"),
]


@pytest.mark.parametrize(("option", "keyword", "value", "without", "with_"), OPTIONS)
def test_each_option_changes_its_column(option: str, keyword: str, value: str, without: str,
                                        with_: str) -> None:
    """Each option replaces the Basic Profile action by its own column of E.1-1."""
    for opts, expected in (([], without), ([option], with_)):
        ds = dataset(**{keyword: value})
        run(ds, compiled(opts), None)
        if expected == "removed":
            assert keyword not in ds, opts
        elif expected == "empty":
            assert ds[keyword].value in (None, ""), opts
        elif expected == "kept":
            assert ds[keyword].value == value, opts
        elif expected == "shifted":
            assert ds[keyword].value not in (None, "", value), opts
        elif expected == "uid":
            assert ds[keyword].value.startswith("2.25."), opts
        else:
            assert ds[keyword].value not in (None, "", value), opts


def test_clean_graphics_keeps_overlay_blanked_and_basic_removes_group() -> None:
    """Basic removes a whole overlay with its data; Clean Graphics keeps a blanked bitmap."""
    for opts, kept in (([], False), (["clean_graphics"], True)):
        ds = dataset()
        ds.add_new(0x60000010, "US", 8)
        ds.add_new(0x60003000, "OW", b"\xff" * 8)
        ds.add_new(0x60004000, "LT", "comment")
        run(ds, compiled(opts))
        assert (0x60000010 in ds) is kept
        if kept:
            assert ds[0x60003000].value == bytes(8)


def test_curves_removed_by_basic() -> None:
    """The (50xx,xxxx) curve row removes every element of a curve group."""
    ds = dataset()
    ds.add_new(0x50000005, "US", 2)
    ds.add_new(0x50003000, "OW", b"\x01\x02")
    run(ds, compiled())
    assert not [t for t in list(ds.keys()) if t.group == 0x5000]


def test_site_overrides_by_keyword_tag_and_path(tmp_path: Path) -> None:
    """Overrides by keyword, tag and sequence path replace the table's action."""
    overrides = (
        "overrides:\n"
        "  - keyword: StudyDescription\n    action: K\n"
        "  - tag: '(0008,0070)'\n    action: X\n"
        "  - path: RequestAttributesSequence > RequestedProcedureID\n    action: K\n"
    )
    item = Dataset()
    item.RequestedProcedureID = "RP1"
    ds = dataset(StudyDescription="Head", Manufacturer="ACME",
                 RequestAttributesSequence=Sequence([item]))
    run(ds, compiled(["clean_descriptors"], overrides))
    assert ds.StudyDescription == "Head"
    assert "Manufacturer" not in ds
    assert ds.RequestAttributesSequence[0].RequestedProcedureID == "RP1"


def test_unknown_public_text_removed_and_safe_vr_kept() -> None:
    """A public attribute in no table: text removed, numbers and codes kept (default policy)."""
    ds = dataset(ContentDescription="free text", Rows=8, PatientPosition="HFS")
    run(ds, compiled(), "3")
    assert "ContentDescription" not in ds
    assert ds.Rows == 8 and ds.PatientPosition == "HFS"


def test_unknown_sop_class_goes_through_the_same_rules() -> None:
    """An instance of a SOP class nobody knows is de-identified like any other."""
    ds = dataset(PatientName="Doe^J", InstitutionAddress="1 Road")
    ds.SOPClassUID = "1.2.3.4.5.6.7"
    ctx = run(ds, compiled())
    assert ds.PatientName != "Doe^J" and "InstitutionAddress" not in ds
    assert "Doe^J" in set(ctx.identity.texts())
