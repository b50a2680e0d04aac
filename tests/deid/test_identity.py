"""The identity model: folding, the written forms of each kind of value, and the memory."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.identity import Identity, IdentityMemory, fold, fold_map, memory_keys, shared
from gateway.identity.fold import original_span
from gateway.identity.shared import SharedIdentityMemory


def _pattern(identity: Identity) -> re.Pattern[str]:
    pattern = identity.pattern()
    assert pattern is not None
    return pattern


def _matches(identity: Identity, text: str) -> list[str]:
    return [m.group(0) for m in _pattern(identity).finditer(fold(text))]


@pytest.mark.parametrize(
    ("written", "folded"),
    [
        ("GARCÍA ZOË", "garcia zoe"),
        ("Straße", "strasse"),
        ("ØSTERGÅRD Søren", "ostergard soren"),
        ("Łukaszewicz Małgorzata", "lukaszewicz malgorzata"),
        ("Æbelø Œuvre Đorđe", "aebelo oeuvre dorde"),
        ("Y\u0131ld\u0131z", "yildiz"),
        ("\uff27\uff21\uff32\uff23\uff29\uff21", "garcia"),
        ("O\u2019Neill", "o'neill"),
        ("Garci\u0301a", "garcia"),  # decomposed accent
    ],
)
def test_fold_writes_names_as_people_type_them(written: str, folded: str) -> None:
    """Diacritics, the letters NFKD does not split, full-width forms and case fold away."""
    assert fold(written) == folded


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet="aZ -ßøÆéI\u0301\u0131\uff27", max_size=30), data=st.data())
def test_folded_spans_map_back_to_the_text_they_came_from(text: str, data: st.DataObject) -> None:
    """A span of the folded text maps back to a span of the original whose folding contains it."""
    folded, origin = fold_map(text)
    if not folded:
        return
    start = data.draw(st.integers(0, len(folded) - 1))
    end = data.draw(st.integers(start + 1, len(folded)))
    first, last = original_span(text, origin, start, end)
    assert folded[start:end] in fold(text[first:last])


NAME = "GARCÍA^ZOË MARÍA"


@pytest.mark.parametrize(
    "text",
    ["GARCIA ZOE", "Zoë García", "Garcia, Zoe", "Z. Garcia", "GARCIA Z", "ZM GARCIA",
     "garcia", "Zoe", "Maria", "seen by garcía-zoë", "\uff27\uff21\uff32\uff23\uff29\uff21"],
)
def test_a_name_is_found_in_any_order_subset_and_spelling(text: str) -> None:
    """Family alone, given + family either way round, initials with family, without diacritics."""
    identity = Identity(name={NAME})
    assert _matches(identity, text)


@pytest.mark.parametrize("text", ["MUELLER Juergen", "Muller", "OESTERGAARD", "Ostergard"])
def test_umlauts_are_found_written_with_one_letter_or_two(text: str) -> None:
    """Müller typed without the umlaut is Muller or Mueller; Østergård is Ostergard or
    Oestergaard."""
    assert _matches(Identity(name={"MÜLLER^JÜRGEN", "ØSTERGÅRD^SØREN"}), text)


@pytest.mark.parametrize(
    "text", ["CT chest", "Left lung", "T1 MPRAGE SAG", "PTV 60Gy", "GTV", "Zoetrope", "Garcias",
             "Liver segment 4", "mar 2021"],
)
def test_harmless_text_is_not_a_name(text: str) -> None:
    """Anatomy, protocol names and longer words that contain a name are not matched."""
    assert _matches(Identity(name={NAME}), text) == []


def test_short_names_are_found_only_together() -> None:
    """Two-letter names (Wu, Li) are found with the other name part, never alone."""
    identity = Identity(name={"WU^LI"})
    assert _matches(identity, "Li Wu") and _matches(identity, "WU, Li")
    assert _matches(identity, "L. Wu")
    assert _matches(identity, "li") == [] and _matches(identity, "120 kV 200 mA wu") == []


def test_ideographic_names_are_found_inside_text() -> None:
    """Han and kana names are found without word boundaries (the script has no spaces)."""
    identity = Identity(name={"Yamada^Tarou=山田^太郎=やまだ^たろう"})
    assert _matches(identity, "山田太郎様 CT")
    assert _matches(identity, "Tarou Yamada")


def test_particles_are_not_names_alone() -> None:
    """"van der" of "van der Berg" is not a name alone; "Berg" and "J. van der Berg" are."""
    identity = Identity(name={"van der Berg^Jan"})
    assert _matches(identity, "van der") == []
    assert _matches(identity, "Berg") and _matches(identity, "J. van der Berg")


@pytest.mark.parametrize(
    "text", ["00123-4567", "1234567", "123 4567", "0001234567", "MRN:1234567", "id 123.45.67"],
)
def test_ids_are_found_with_or_without_zeros_and_separators(text: str) -> None:
    """An MRN is found however its zeros and separators are written."""
    assert _matches(Identity(id={"00123-4567"}), text)


def test_ids_are_not_found_inside_longer_numbers() -> None:
    """An ID inside a longer number, or a shorter part of it, is not the ID."""
    identity = Identity(id={"00123-4567"})
    assert _matches(identity, "91234567") == [] and _matches(identity, "123456") == []


def test_prefixed_ids_are_found_by_their_number_too() -> None:
    """The digit run of "MRN-48213977" is found alone; an ID of zeros and a digit is not a "1"."""
    assert _matches(Identity(id={"MRN-48213977"}), "chart 48213977")
    assert _matches(Identity(id={"id00001"}), "series 1 of 1") == []


def test_ids_of_zeros_are_placeholders() -> None:
    """An ID of zeros (or zeros and a few digits) is a placeholder: never found in numbers."""
    assert Identity(id={"000000", "0012"}).fragments() == set()
    assert _matches(Identity(id={"000000", "00123456"}), "6.000000\\350.000000") == []


@pytest.mark.parametrize(
    "text",
    ["2021-03-04", "20210304", "04/03/2021", "4/3/21", "03/04/2021", "04.03.2021",
     "4 March 2021", "4th Mar. 2021", "March 4, 2021", "04-MAR-2021", "4. März 2021",
     "4 de marzo de 2021", "4 mars 2021", "March 2021", "2021 Mar 4"],
)
def test_dates_are_found_in_their_written_forms(text: str) -> None:
    """A date is found written as people write dates, in several languages."""
    assert _matches(Identity(date={"20210304"}), text)


def test_other_dates_and_numbers_are_not_the_date() -> None:
    """Another day, or numbers that contain the digits, are not the date."""
    identity = Identity(date={"20210304"})
    for text in ("2021-03-05", "120210304", "4 April 2021", "kVp 2021"):
        assert _matches(identity, text) == [], text


def test_phones_and_phrases() -> None:
    """A phone number with any separators or without its country code; an address part."""
    identity = Identity(phone={"+44 (0)1632 960123"})
    identity.add("address", "17 Fernleaf Crescent^Wolverhampton")
    assert _matches(identity, "call 01632-960 123") and _matches(identity, "call 1632 960123")
    assert _matches(identity, "lives at 17 Fernleaf Crescent")
    assert _matches(identity, "WOLVERHAMPTON")
    assert _matches(identity, "Crescent") == []


def test_values_the_gateway_writes_are_not_identifying() -> None:
    """An input already de-identified (ANONYMOUS, 19000101, ANON^...) does not match its output."""
    identity = Identity(name={"ANON^3V3LFJKWN2", "Anonymized"}, date={"19000101"})
    assert _matches(identity, "ANON^XYZ ANONYMIZED 19000101") == []
    assert _matches(identity, "3V3LFJKWN2")


def test_memory_extends_an_identity_across_a_study_and_a_patient() -> None:
    """What one instance taught is recalled for the next of its study or patient, bounded."""
    memory = IdentityMemory(size=2)
    first = Identity(name={"Okafor^Chidi"})
    memory.learn(memory_keys("1.2.3", "P1", "", ""), first)
    assert memory.recall(memory_keys("1.2.3", "", "", "")).name == {"Okafor^Chidi"}
    assert memory.recall(memory_keys("9.9", "P1", "", "")).name == {"Okafor^Chidi"}
    memory.learn(["study:other"], Identity(name={"X^Y"}))
    assert memory.recall(["study:1.2.3"]).name == set()  # the oldest key was forgotten
    assert len(memory) == 2


def test_memory_never_keeps_uids() -> None:
    """UIDs differ with every instance: they are not remembered."""
    memory = IdentityMemory()
    memory.learn(["study:1"], Identity(uid={"1.2.3.4"}, id={"12345"}))
    assert memory.recall(["study:1"]) == Identity(id={"12345"})


def test_the_node_shares_its_memory_between_processes(tmp_path: Path) -> None:
    """Two workers opening the node's memory file see what the other learned, hashed keys only."""
    one = SharedIdentityMemory(tmp_path / "memory.sqlite")
    two = SharedIdentityMemory(tmp_path / "memory.sqlite")
    keys = memory_keys("1.2.3", "P1", "", "")
    one.learn(keys, Identity(name={"Okafor^Chidi"}, uid={"1.2.3.4"}))
    assert two.recall(["study:1.2.3"]) == Identity(name={"Okafor^Chidi"})
    assert b"1.2.3" not in (tmp_path / "memory.sqlite").read_bytes()  # keys are stored hashed
    assert (tmp_path / "memory.sqlite").stat().st_mode & 0o077 == 0


def test_the_node_memory_forgets_the_oldest_keys(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Beyond its size the least recently learned keys are forgotten."""
    monkeypatch.setattr(shared, "PRUNE_EVERY", 1)
    memory = SharedIdentityMemory(tmp_path / "memory.sqlite", size=3)
    for i in range(6):
        memory.learn([f"study:{i}"], Identity(id={f"ID{i:06d}"}))
    assert len(memory) == 3
    assert memory.recall(["study:0"]) == Identity()
    assert memory.recall(["study:5"]) == Identity(id={"ID000005"})


def test_an_unusable_memory_file_falls_back_to_the_process(tmp_path: Path) -> None:
    """When the file cannot be opened the process remembers alone and nothing fails."""
    (tmp_path / "memory.sqlite").mkdir()  # a folder where the file should be
    memory = SharedIdentityMemory(tmp_path / "memory.sqlite")
    memory.learn(["study:1"], Identity(name={"Okafor^Chidi"}))
    assert memory.recall(["study:1"]).name == {"Okafor^Chidi"}
