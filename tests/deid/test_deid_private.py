"""Private attributes: removed by Basic; Retain Safe Private by table or declaration."""

from __future__ import annotations

from deid_support import deidentify
from pydicom import Dataset
from pydicom.sequence import Sequence

CT = "1.2.840.10008.5.1.4.1.1.2"


def _ds() -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = CT
    ds.SOPInstanceUID = "1.2.3.4"
    return ds


def _declare(ds: Dataset, group: int, creator: str, status: str = "",
             nonid: list[int] | None = None, actions: dict[int, str] | None = None) -> None:
    item = Dataset()
    item.PrivateGroupReference = group
    item.PrivateCreatorReference = creator
    if status:
        item.BlockIdentifyingInformationStatus = status
    if nonid:
        item.NonidentifyingPrivateElements = nonid
    if actions:
        seq = []
        for elem, code in actions.items():
            a = Dataset()
            a.IdentifyingPrivateElements = [elem]
            a.DeidentificationAction = code
            seq.append(a)
        item.DeidentificationActionSequence = Sequence(seq)
    items = list(ds.get("PrivateDataElementCharacteristicsSequence", []) or [])
    ds.PrivateDataElementCharacteristicsSequence = Sequence([*items, item])


def test_basic_removes_every_private_element() -> None:
    """Without Retain Safe Private, even Safe Private elements and their creators go."""
    ds = _ds()
    ds.add_new(0x00190010, "LO", "GEMS_ACQU_01")
    ds.add_new(0x00191023, "DS", "5.0")
    deidentify(ds, "basic")
    assert not [t for t in list(ds.keys()) if t.group & 1]


def test_safe_private_matched_by_creator_in_any_block() -> None:
    """E.3.10-1 rows match the creator whichever block (0x10, 0x40, 0xFF) it occupies."""
    for block in (0x10, 0x40, 0xFF):
        ds = _ds()
        ds.add_new(0x00190000 | block, "LO", "GEMS_ACQU_01")
        ds.add_new(0x00190000 | (block << 8) | 0x23, "DS", "5.0")
        ds.add_new(0x00190000 | (block << 8) | 0x99, "LO", "secret")
        deidentify(ds, "research")
        assert ds[0x00190000 | (block << 8) | 0x23].value == "5.0"
        assert (0x00190000 | (block << 8) | 0x99) not in ds


def test_orphan_private_elements_removed() -> None:
    """A private data element whose block has no private creator is removed."""
    ds = _ds()
    ds.add_new(0x00191023, "DS", "5.0")
    deidentify(ds, "research")
    assert 0x00191023 not in ds


def test_declared_safe_block_and_nonidentifying_elements_kept() -> None:
    """(0008,0300) SAFE blocks and listed non-identifying elements are kept; others removed."""
    ds = _ds()
    ds.add_new(0x00330010, "LO", "VENDOR SAFE")
    ds.add_new(0x00331001, "LO", "kept1")
    ds.add_new(0x00330011, "LO", "VENDOR MIXED")
    ds.add_new(0x00331102, "LO", "kept2")
    ds.add_new(0x00331103, "LO", "gone")
    _declare(ds, 0x0033, "VENDOR SAFE", status="SAFE")
    _declare(ds, 0x0033, "VENDOR MIXED", status="MIXED", nonid=[0x02])
    deidentify(ds, "research")
    assert ds[0x00331001].value == "kept1"
    assert ds[0x00331102].value == "kept2"
    assert 0x00331103 not in ds
    assert len(ds.PrivateDataElementCharacteristicsSequence) == 2


def test_declared_deidentification_actions_applied() -> None:
    """A Deidentification Action (0008,0307) of Z, D or U is applied to its element."""
    ds = _ds()
    ds.add_new(0x00350010, "LO", "VENDOR ACT")
    ds.add_new(0x00351001, "LO", "zero me")
    ds.add_new(0x00351002, "LO", "dummy me")
    ds.add_new(0x00351003, "UI", "1.2.3.4.5.6")
    _declare(ds, 0x0035, "VENDOR ACT", status="MIXED", actions={1: "Z", 2: "D", 3: "U"})
    deidentify(ds, "research")
    assert ds[0x00351001].value in (None, "")
    assert ds[0x00351002].value not in (None, "", "dummy me")
    assert ds[0x00351003].value.startswith("2.25.")


def test_declarations_of_removed_blocks_are_dropped() -> None:
    """(0008,0300) items describing blocks that are no longer present are removed."""
    ds = _ds()
    ds.add_new(0x00370010, "LO", "VENDOR GONE")
    ds.add_new(0x00371001, "LO", "x")
    _declare(ds, 0x0037, "VENDOR GONE", status="UNSAFE")
    deidentify(ds, "research")
    assert "PrivateDataElementCharacteristicsSequence" not in ds
    assert 0x00370010 not in ds


def test_kept_private_dates_shift_with_the_patient() -> None:
    """A Safe Private date shifts by the patient's offset under Modified Dates."""
    ds = _ds()
    ds.StudyDate = "20210423"
    ds.add_new(0x00330010, "LO", "VENDOR SAFE")
    ds.add_new(0x00331001, "DA", "20210423")
    _declare(ds, 0x0033, "VENDOR SAFE", status="SAFE")
    deidentify(ds, "research")
    assert ds[0x00331001].value == ds.StudyDate != "20210423"
