"""The filter stage drops or holds by rule; the verify stage holds any output that leaks."""

from __future__ import annotations

from pathlib import Path

import pytest
from deid_support import PLANTED, ct, deidentify
from pydicom import Dataset

from gateway.config import FilterSettings, Settings, parse_settings
from gateway.filters.rules import FilterConfigError, load_rules
from gateway.filters.stage import FilterStage
from gateway.identity import Identity
from gateway.pipeline.compose import build_pipeline
from gateway.pipeline.stage import OutcomeKind, StageContext, StageServices
from gateway.pseudonyms.interface import InMemoryPseudonymizer
from gateway.verify import find_leaks
from gateway.verify.stage import VerifyStage

WSI = "1.2.840.10008.5.1.4.1.1.77.1.6"


def _stage(rules: list[dict[str, object]]) -> FilterStage:
    settings = parse_settings({"filters": {"rules": rules}})
    return FilterStage(load_rules(settings.filters))


def _wsi(image_type: list[str]) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID, ds.Modality, ds.ImageType = WSI, "SM", image_type
    return ds


@pytest.mark.parametrize(
    ("rule", "ds", "kind"),
    [
        ({"name": "labels", "image_type": ["LABEL"]}, _wsi(["ORIGINAL", "PRIMARY", "LABEL"]),
         OutcomeKind.FILTER),
        ({"name": "labels", "image_type": ["LABEL"]}, _wsi(["ORIGINAL", "PRIMARY", "VOLUME"]),
         OutcomeKind.CONTINUE),
        ({"name": "ov", "action": "quarantine", "image_type": ["OVERVIEW"]},
         _wsi(["DERIVED", "PRIMARY", "OVERVIEW"]), OutcomeKind.QUARANTINE),
        ({"name": "sc", "sop_class_uid": [WSI]}, _wsi(["X"]), OutcomeKind.FILTER),
        ({"name": "us", "modality": ["us"]}, _wsi(["X"]), OutcomeKind.CONTINUE),
        ({"name": "burned", "attributes": {"BurnedInAnnotation": ["YES"]}},
         ct(), OutcomeKind.CONTINUE),
        ({"name": "any-name", "attributes": {"PatientName": ["*"]}}, ct(), OutcomeKind.FILTER),
        ({"name": "no-mod", "attributes": {"BurnedInAnnotation": [""]}}, ct(),
         OutcomeKind.FILTER),
        ({"name": "both", "modality": ["CT"], "image_type": ["LOCALIZER"]}, ct(),
         OutcomeKind.CONTINUE),
    ],
)
def test_filter_rules(rule: dict[str, object], ds: Dataset, kind: OutcomeKind) -> None:
    """Rules match by SOP class, modality, image type or attribute; all conditions must hold."""
    outcome = _stage([rule])(ds, StageContext(job_id="t"))
    assert outcome.kind is kind
    if kind is not OutcomeKind.CONTINUE:
        assert outcome.reason == f"filter rule {rule['name']}"


def test_filter_rule_file(tmp_path: Path) -> None:
    """Rules are also read from a YAML file; bad keys are named."""
    good = tmp_path / "filters.yaml"
    good.write_text("rules:\n  - name: wsi-label\n    image_type: [LABEL]\n")
    rules = load_rules(FilterSettings(file=good))
    assert [r.name for r in rules] == ["wsi-label"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - name: x\n    attributes: {NotAKeyword: [A]}\n")
    with pytest.raises(FilterConfigError, match="NotAKeyword"):
        load_rules(FilterSettings(file=bad))
    empty = tmp_path / "empty.yaml"
    empty.write_text("rules:\n  - name: x\n")
    with pytest.raises(FilterConfigError, match="no condition"):
        load_rules(FilterSettings(file=empty))


def test_verify_quarantines_with_path_never_value() -> None:
    """A leak is reported by tag path; the reason never contains the leaked value."""
    ds = ct()
    ctx = deidentify(ds, "research")
    ds.ImageComments = f"note {PLANTED['family'].upper()} here"
    ds.RequestAttributesSequence[0].RequestedProcedureDescription = PLANTED["patient_id"]
    outcome = VerifyStage()(ds, ctx)
    assert outcome.kind is OutcomeKind.QUARANTINE and outcome.reason_class == "leak"
    assert "(0020,4000)" in outcome.reason
    assert "(0040,0275)[0]>(0032,1060)" in outcome.reason
    for value in PLANTED.values():
        assert value.lower() not in outcome.reason.lower()


def test_verify_matches_whole_words_only() -> None:
    """An identifier inside a longer word is not a leak ("Lee" in "Fleet")."""
    ds = Dataset()
    lee = Identity(name={"Lee^Ann"})
    ds.StudyDescription = "Fleet scan"
    assert find_leaks(ds, lee) == []
    ds.StudyDescription = "scan of lee"
    assert [leak.path for leak in find_leaks(ds, lee)] == ["(0008,1030)"]


def test_pipeline_runs_filter_deidentify_verify() -> None:
    """The three registered stages compose and pass a research output through."""
    settings = Settings()
    services = StageServices(settings=settings.model_copy(
        update={"deid": settings.deid.model_copy(update={"profile": "research"})}),
        pseudonymizer=InMemoryPseudonymizer())
    stages = build_pipeline(["filter", "deidentify", "verify"], services)
    ds, ctx = ct(), StageContext(job_id="t")
    assert [s(ds, ctx).kind for s in stages] == [OutcomeKind.CONTINUE] * 3
    assert ctx.versions[0].startswith("ps3.15-2024b+research@")


def test_pseudonym_unavailable_becomes_quarantine() -> None:
    """When no pseudonym may be produced, the deidentify stage quarantines the instance."""
    from gateway.deid.stage import make_stage
    from gateway.pseudonyms.interface import PseudonymUnavailable

    class Refusing(InMemoryPseudonymizer):
        def patient(self, patient_id: str, issuer: str, patient_name: str):  # type: ignore[no-untyped-def]
            raise PseudonymUnavailable("not in the site table")

    stage = make_stage(StageServices(settings=Settings(), pseudonymizer=Refusing()))
    outcome = stage(ct(), StageContext(job_id="t"))
    assert outcome.kind is OutcomeKind.QUARANTINE and outcome.reason_class == "pseudonym"
    assert PLANTED["patient_id"] not in outcome.reason
