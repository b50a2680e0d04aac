"""Markers, method codes of exactly the options applied, and new file meta information."""

from __future__ import annotations

from deid_support import ct, deidentify, to_bytes


def _codes(ds: object) -> list[str]:
    return [item.CodeValue for item in ds.DeidentificationMethodCodeSequence]  # type: ignore[attr-defined]


def test_markers_of_research() -> None:
    """Research declares 113100 and its seven header options, not 113101 without pixel news."""
    ds = ct()
    deidentify(ds, "research")
    assert ds.PatientIdentityRemoved == "YES"
    assert _codes(ds) == ["113100", "113103", "113104", "113105", "113107", "113108",
                          "113109", "113111"]
    assert ds.DeidentificationMethod[1].startswith("ps3.15-2024b+research@")
    equipment = ds.ContributingEquipmentSequence[-1]
    assert equipment.PurposeOfReferenceCodeSequence[0].CodeValue == "109104"
    assert equipment.PurposeOfReferenceCodeSequence[0].CodeMeaning == "De-identifying Equipment"


def test_clean_pixel_data_declared_only_when_pixels_cleaned() -> None:
    """113101 appears when the pixel stage says it cleaned the pixels, and only then."""
    ds = ct()
    deidentify(ds, "research", notes={"pixels_cleaned": True})
    assert "113101" in _codes(ds)


def test_basic_declares_only_the_basic_profile() -> None:
    """Basic has one method code and says dates were removed."""
    ds = ct()
    deidentify(ds, "basic")
    assert _codes(ds) == ["113100"]
    assert ds.LongitudinalTemporalInformationModified == "REMOVED"


def test_file_meta_replaced() -> None:
    """New Media Storage SOP Instance UID, our class UID and name, no source AE, zero preamble."""
    ds = ct()
    original = ds.file_meta.MediaStorageSOPInstanceUID
    ctx = deidentify(ds, "research")
    meta = ds.file_meta
    assert meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID != original
    assert meta.ImplementationClassUID.startswith("2.25.")
    assert meta.ImplementationVersionName.startswith("DEIDGW_")
    assert "SourceApplicationEntityTitle" not in meta
    assert to_bytes(ds)[:128] == bytes(128)
    assert original in set(ctx.identity.texts())
    assert ctx.versions and ctx.versions[0].startswith("ps3.15-2024b+research@")


def test_same_input_gives_byte_identical_output() -> None:
    """Processing the same input twice gives the same bytes (no time stamps)."""
    a, b = ct(), ct()
    deidentify(a, "research")
    deidentify(b, "research")
    assert to_bytes(a) == to_bytes(b)


def test_directory_information_removed() -> None:
    """Group 0004 elements never reach the output."""
    ds = ct()
    ds.add_new(0x00041130, "CS", "FILESET")
    deidentify(ds, "basic")
    assert not [t for t in list(ds.keys()) if t.group == 0x0004]
