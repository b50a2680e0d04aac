"""The identity model in the pipeline: the cleaner removes every written form of a planted name,
ID or date wherever a site puts it, and verify finds every form that a broken cleaner lets by.

Leaks are judged by this module's own folding and search, not by the gateway's code.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import re
import unicodedata
from collections.abc import Callable, Iterator

import pytest
from deid_support import ct
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydicom import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence

from gateway.config import Settings
from gateway.deid import actions, rawactions, textclean
from gateway.pipeline.compose import build_pipeline
from gateway.pipeline.stage import OutcomeKind, Stage, StageContext, StageServices
from gateway.pipeline.worker import run_stages
from gateway.pseudonyms.interface import InMemoryPseudonymizer

# --- this test's own view of text: folded and split into words --------------------------------
_LETTERS = {"ß": "ss", "ø": "o", "ł": "l", "æ": "ae", "œ": "oe", "đ": "d", "\u0131": "i"}


def folded(text: str) -> str:
    text = "".join(_LETTERS.get(c, c) for c in text.lower())
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def words(text: str) -> set[str]:
    return set(re.findall(r"[^\W_]+", folded(text)))


_NOT_TEXT = frozenset({"SQ", "UI", "OB", "OW", "OF", "OD", "OL", "OV", "US", "SS", "UL", "SL",
                       "FL", "FD", "AT", "DS", "IS", "SV", "UV"})
CODE_VALUE = 0x00080100  # codes of the standard's lexicons (DCM 113100...), not text


def output_texts(ds: Dataset) -> Iterator[tuple[str, str]]:
    """(keyword or tag, text) of every text value of ``ds`` at any depth, UIDs and code values
    apart."""
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value:
                yield from output_texts(item)
            continue
        if elem.VR in _NOT_TEXT or elem.value is None or elem.tag == CODE_VALUE:
            continue
        value = elem.value
        if isinstance(value, bytes):  # (UN) in the instance's character set, or Latin-1
            value = [value.decode("utf-8", errors="replace"), value.decode("latin-1")]
        for v in (value if isinstance(value, list | MultiValue) else [value]):
            yield elem.keyword or str(elem.tag), str(v)


# --- placements: where a site writes text ----------------------------------------------------
Place = Callable[[Dataset, str], None]


def _code(designator: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "X1", designator, meaning
    return item


def _study_description(ds: Dataset, text: str) -> None:
    ds.StudyDescription = text


def _series_description(ds: Dataset, text: str) -> None:
    ds.SeriesDescription = text


def _procedure_code(ds: Dataset, text: str) -> None:
    ds.ProcedureCodeSequence = Sequence([_code("99ACME", text)])


def _local_anatomy_code(ds: Dataset, text: str) -> None:
    ds.AnatomicRegionSequence = Sequence([_code("L", text)])


def _segment_label(ds: Dataset, text: str) -> None:
    item = Dataset()
    item.SegmentNumber, item.SegmentLabel = 1, text
    ds.SegmentSequence = Sequence([item])


def _beam_name(ds: Dataset, text: str) -> None:
    item = Dataset()
    item.BeamNumber, item.BeamName = 1, text
    ds.BeamSequence = Sequence([item])


def _safe_private(ds: Dataset, text: str) -> None:
    ds.private_block(0x0019, "GEMS_ACQU_01", create=True).add_new(0x9E, "LO", text)


def _safe_private_un(ds: Dataset, text: str) -> None:
    data = text.encode("utf-8")  # the instance's character set (ISO_IR 192)
    data += b" " * (len(data) % 2)
    ds.private_block(0x0019, "GEMS_ACQU_01", create=True).add_new(0x9E, "UN", data)


# (placement, the profiles that keep the attribute, where verify reports it)
PLACES: dict[str, tuple[Place, tuple[str, ...], str]] = {
    "study description": (_study_description, ("research",), "(0008,1030)"),
    "series description": (_series_description, ("research",), "(0008,103E)"),
    "local procedure code": (_procedure_code, ("basic", "research"), "(0008,1032)[0]>(0008,0104)"),
    "local anatomy code": (_local_anatomy_code, ("basic", "research"),
                           "(0008,2218)[0]>(0008,0104)"),
    "segment label": (_segment_label, ("basic", "research"), "(0062,0002)[0]>(0062,0005)"),
    "beam name": (_beam_name, ("basic", "research"), "(300A,00B0)[0]>(300A,00C2)"),
    "safe private": (_safe_private, ("research",), "(0019,109E)"),
    "safe private UN": (_safe_private_un, ("research",), "(0019,109E)"),
}


@functools.cache
def _stages(profile: str) -> list[Stage]:
    settings_ = Settings.model_validate({"deid": {"profile": profile}})
    services = StageServices(settings=settings_, pseudonymizer=InMemoryPseudonymizer(b"prop"))
    return build_pipeline(("deidentify", "verify"), services)


def run(ds: Dataset, profile: str) -> StageContext:
    ctx = StageContext(job_id="prop")
    result = run_stages(_stages(profile), ds, ctx)
    ctx.notes["outcome"] = result.outcome
    return ctx


@functools.cache
def _template_words() -> frozenset[str]:
    """Every word of an output without anything planted (names drawn must not be among them)."""
    ds = ct()
    run(ds, "research")
    template = set()
    for _, text in output_texts(ds):
        template |= words(text)
    return frozenset(template | words("CT exam follow-up") | {"left", "lung", "ct", "exam"})


# --- what is planted ----------------------------------------------------------------------------
_NAME_LETTERS = "abcdefghijklmnoprstuvwyzáéíóúüöäñçßøłæœđ"
name_word = st.text(alphabet=_NAME_LETTERS, min_size=4, max_size=9).map(str.capitalize)


def _plain(text: str) -> str:
    """Written without diacritics, as a keyboard without them writes it."""
    return folded(text).upper()


NAME_FORMS: dict[str, Callable[[str, str], str]] = {
    "GIVEN FAMILY": lambda f, g: f"{g} {f}".upper(),
    "Family, Given": lambda f, g: f"{f}, {g}",
    "no diacritics": lambda f, g: f"{_plain(f)} {_plain(g)}",
    "initial": lambda f, g: f"{g[0]}. {f}",
    "family initial": lambda f, g: f"{_plain(f)} {g[0]}",
    "family alone": lambda f, g: f.lower(),
    "given alone": lambda f, g: _plain(g),
}


@st.composite
def planted(draw: st.DrawFn) -> tuple[dict[str, str], str, set[str]]:
    """An identity (PN, ID, birth date), one written form of one of its values, and the words
    (folded) or digits that must not reach the output."""
    family, given = draw(name_word), draw(name_word)
    assume(family.lower() != given.lower())
    assume(not (words(family) | words(given)) & _template_words())
    digits = draw(st.text(alphabet="0123456789", min_size=6, max_size=9))
    assume(digits.lstrip("0") and len(digits.lstrip("0")) >= 5 and digits[0] != "0")
    zeros = draw(st.integers(0, 3))
    cut = draw(st.integers(2, len(digits) - 2))
    patient_id = "0" * zeros + digits[:cut] + "-" + digits[cut:]
    born = draw(st.dates(dt.date(1930, 1, 1), dt.date(2019, 12, 31)))
    identity = {"PatientName": f"{family}^{given}", "PatientID": patient_id,
                "PatientBirthDate": born.strftime("%Y%m%d")}
    kind = draw(st.sampled_from(["name", "id", "date"]))
    if kind == "name":
        form = draw(st.sampled_from(sorted(NAME_FORMS)))
        written = NAME_FORMS[form](family, given)
        gone = {w for w in words(written) if len(w) >= 3}
    elif kind == "id":
        written = draw(st.sampled_from([patient_id, digits, digits[:cut] + " " + digits[cut:],
                                        "0" + digits]))
        gone = {digits}
    else:
        written = draw(st.sampled_from([
            born.strftime("%d/%m/%Y"), born.strftime("%Y-%m-%d"),
            f"{born.day} {born.strftime('%B')} {born.year}",
            f"{born.strftime('%b')} {born.day}, {born.year}"]))
        gone = {folded(written)}
    return identity, written, gone


def _found(needle: str, text: str) -> bool:
    """A number among the digits of ``text``, a word among its words, or a longer form as it
    stands."""
    if needle.isdigit():  # any run of digit groups that reads as the number, zeros apart
        for run in re.findall(r"\d+(?:[-./ ]\d+)*", text):
            groups = re.split(r"[-./ ]", run)
            for i in range(len(groups)):
                for j in range(i + 1, len(groups) + 1):
                    if "".join(groups[i:j]).lstrip("0") == needle:
                        return True
        return False
    if re.fullmatch(r"[^\W_]+", needle):
        return needle in words(text)
    return needle in folded(text)


def _leaks(ds: Dataset, gone: set[str]) -> list[str]:
    return [where for where, text in output_texts(ds) if any(_found(g, text) for g in gone)]


def _instance(identity: dict[str, str], place: Place, written: str) -> Dataset:
    ds = ct()
    ds.SpecificCharacterSet = "ISO_IR 192"
    for keyword, value in identity.items():
        setattr(ds, keyword, value)
    # a study of its own: what earlier examples taught the stages' memory stays with theirs
    ds.StudyInstanceUID = "2.25." + str(int.from_bytes(
        hashlib.sha256(repr(sorted(identity.items())).encode()).digest()[:8], "big"))
    place(ds, f"CT exam {written} follow-up")
    return ds


PROPERTY = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])


@PROPERTY
@given(case=planted(), place=st.sampled_from(sorted(PLACES)),
       profile=st.sampled_from(["basic", "research"]))
def test_the_cleaner_removes_every_planted_form_and_keeps_the_rest(
        case: tuple[dict[str, str], str, set[str]], place: str, profile: str) -> None:
    """A name, ID or date of the patient written in any common form, anywhere a site writes
    text, is gone from the output, the words around it survive, and the instance is delivered."""
    identity, written, gone = case
    setter, keeping, _path = PLACES[place]
    ds = _instance(identity, setter, written)
    ctx = run(ds, profile)
    assert ctx.notes["outcome"].kind is OutcomeKind.CONTINUE, ctx.notes["outcome"].reason
    assert _leaks(ds, gone) == []
    if profile in keeping:
        texts = " ".join(t for _, t in output_texts(ds))
        assert "CT exam" in texts and "follow-up" in texts


@pytest.fixture
def broken_cleaner(monkeypatch: pytest.MonkeyPatch) -> None:
    """The de-identifier neither collects identifying values nor cleans text: a cleaner bug."""
    monkeypatch.setattr(textclean.TextCleaner, "clean", lambda self, value, *args: value)
    monkeypatch.setattr(textclean.TextCleaner, "needs_cleaning", lambda self, text: False)
    for module in (actions, rawactions):
        monkeypatch.setattr(module, "collect_values", lambda run, tag, vr, found: None)


@settings(PROPERTY, suppress_health_check=[*PROPERTY.suppress_health_check,
                                          HealthCheck.function_scoped_fixture])
@given(case=planted(), place=st.sampled_from(sorted(PLACES)),
       profile=st.sampled_from(["basic", "research"]))
def test_verify_finds_every_form_a_broken_cleaner_lets_by(
        broken_cleaner: None, case: tuple[dict[str, str], str, set[str]], place: str,
        profile: str) -> None:
    """With the cleaner broken, every planted form left in a kept attribute is held by verify,
    which reads the input's identity with its own code, and the reason names where it is."""
    identity, written, gone = case
    setter, keeping, path = PLACES[place]
    assume(profile in keeping)
    ds = _instance(identity, setter, written)
    ctx = run(ds, profile)
    assert _leaks(ds, gone), "the broken cleaner should have let the value by"
    outcome = ctx.notes["outcome"]
    assert outcome.kind is OutcomeKind.QUARANTINE and outcome.reason_class == "leak"
    assert path in outcome.reason or "more" in outcome.reason


# --- the benign rule, the gateway's own values, memory ------------------------------------------
def test_a_value_standing_in_a_benign_attribute_is_not_a_leak() -> None:
    """An institution called like its equipment's maker, a name like an Image Type value and a
    local coding scheme called TEST are delivered (the matches are inside benign elements)."""
    ds = ct()
    ds.PatientName = "Perfusion^Test"
    ds.InstitutionName = "OFFIS"
    ds.Manufacturer = "OFFIS"
    ds.ImageType = ["DERIVED", "PRIMARY", "PERFUSION"]
    ds.ProcedureCodeSequence = Sequence([_code("TEST", "CT perfusion")])
    ctx = run(ds, "basic")
    assert ctx.notes["outcome"].kind is OutcomeKind.CONTINUE, ctx.notes["outcome"].reason
    assert ds.Manufacturer == "OFFIS" and "PERFUSION" in ds.ImageType
    assert ds.ProcedureCodeSequence[0].CodeMeaning == "CT ***"


def test_a_name_written_into_a_benign_attribute_is_a_leak() -> None:
    """The patient's name in Manufacturer is held: a benign element excuses a word, not a name."""
    ds = ct()
    ds.PatientName = "García^Zoë"
    ds.Manufacturer = "Zoe Garcia"
    outcome = run(ds, "basic").notes["outcome"]
    assert outcome.kind is OutcomeKind.QUARANTINE and "(0008,0070)" in outcome.reason


def test_standard_code_meanings_are_kept_local_ones_cleaned() -> None:
    """A DCM code meaning that is the lexicon's stays whole even when a name shares a word; the
    same text under a local scheme, or a site's own text for a DCM code, is cleaned."""
    ds = ct()
    ds.PatientName = "Observer^Person"
    ds.AnatomicRegionSequence = Sequence([_code("DCM", "Person Observer Name")])
    ds.AnatomicRegionSequence[0].CodeValue = "121008"
    ds.ProcedureCodeSequence = Sequence([_code("99ACME", "Person Observer Name")])
    ds.ProcedureCodeSequence.append(_code("DCM", "Observer Person scan"))
    ctx = run(ds, "basic")
    assert ctx.notes["outcome"].kind is OutcomeKind.CONTINUE, ctx.notes["outcome"].reason
    assert ds.AnatomicRegionSequence[0].CodeMeaning == "Person Observer Name"
    assert [i.CodeMeaning for i in ds.ProcedureCodeSequence] == ["*** Name", "*** scan"]


def test_a_name_like_a_word_of_the_gateways_own_markers_is_delivered() -> None:
    """A patient called Basic (the profile named in the gateway's De-identification Method and
    Contribution Description) is delivered: those texts are the gateway's own."""
    ds = ct()
    ds.PatientName = "Basic^Research"
    outcome = run(ds, "basic").notes["outcome"]
    assert outcome.kind is OutcomeKind.CONTINUE, outcome.reason


def test_an_input_already_de_identified_is_delivered() -> None:
    """Dummy and pseudonymous values of an earlier de-identification match nothing."""
    ds = ct()
    ds.PatientName = "ANONYMOUS"
    ds.PatientID = "ANON"
    ds.PatientBirthDate = "19000101"
    ds.ReferringPhysicianName = "ANON^3V3LFJKWN2"
    outcome = run(ds, "basic").notes["outcome"]
    assert outcome.kind is OutcomeKind.CONTINUE, outcome.reason


def _study_pair(study: str) -> tuple[Dataset, Dataset]:
    first, second = ct(number=1), ct(number=2)
    for ds in (first, second):
        ds.StudyInstanceUID = study
        ds.PatientName, ds.PatientID = "Ngata^Aroha", "PX-5521934"
    first.ReferringPhysicianName = "Okafor^Chidi"
    second.ReferringPhysicianName = ""
    second.SeriesDescription = "CT follow-up, ref. Dr Okafor"
    return first, second


def test_what_a_study_taught_cleans_its_next_instances() -> None:
    """A referring physician named only in the first instance is cleaned from the second."""
    first, second = _study_pair("1.2.826.0.1.3680043.10.999.77.1")
    assert run(first, "research").notes["outcome"].kind is OutcomeKind.CONTINUE
    ctx = run(second, "research")
    assert ctx.notes["outcome"].kind is OutcomeKind.CONTINUE, ctx.notes["outcome"].reason
    assert second.SeriesDescription == "CT follow-up, ref. Dr ***"


def test_verify_remembers_the_study_too(broken_cleaner: None) -> None:
    """With the cleaner broken, verify's own memory of the study holds the second instance."""
    first, second = _study_pair("1.2.826.0.1.3680043.10.999.77.2")
    run(first, "research")
    outcome = run(second, "research").notes["outcome"]
    assert outcome.kind is OutcomeKind.QUARANTINE and "(0008,103E)" in outcome.reason
