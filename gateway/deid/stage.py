"""The ``deidentify`` pipeline stage: the engine behind the stage interface.

A :class:`~gateway.pseudonyms.interface.PseudonymUnavailable` becomes a quarantine outcome, and
so does any failure of the engine on a malformed instance; reasons name the failure's class,
never a value of the instance.
"""

from __future__ import annotations

from pathlib import Path

from pydicom import Dataset

from gateway.config import DeidSettings
from gateway.deid.compiled import CompiledProfile, compile_profile
from gateway.deid.engine import Deidentifier
from gateway.deid.iod import TableIodTypes
from gateway.deid.profile import load_profile
from gateway.deid.ruledata import DEFAULT_RULES_DIR, load_rule_data
from gateway.pipeline.stage import Outcome, Stage, StageContext, StageServices
from gateway.pseudonyms.interface import Pseudonymizer, PseudonymUnavailable


class StageConfigError(ValueError):
    """The stage cannot be built from the configuration (the message names the key)."""


def compile_from_settings(settings: DeidSettings, profile: str | None = None) -> CompiledProfile:
    """Load and compile the configured profile (or ``profile``) once."""
    rules_dir = Path(settings.rules_dir) if settings.rules_dir else DEFAULT_RULES_DIR
    loaded, digest = load_profile(profile or settings.profile, rules_dir)
    if settings.unknown_public is not None:
        loaded = loaded.model_copy(update={"unknown_public": settings.unknown_public})
        digest = f"{digest}:{settings.unknown_public}"
    return compile_profile(loaded, digest, load_rule_data(rules_dir))


def build_deidentifier(settings: DeidSettings, pseudonymizer: Pseudonymizer,
                       profile: str | None = None) -> Deidentifier:
    """The engine for the configured profile with the generated IOD Type table."""
    rules_dir = Path(settings.rules_dir) if settings.rules_dir else DEFAULT_RULES_DIR
    return Deidentifier(
        compile_from_settings(settings, profile), pseudonymizer, TableIodTypes.load(rules_dir)
    )


class DeidentifyStage:
    """Applies the profile to each instance."""

    name = "deidentify"

    def __init__(self, engine: Deidentifier) -> None:
        self.engine = engine

    def __call__(self, ds: Dataset, ctx: StageContext) -> Outcome:
        try:
            self.engine.apply(ds, ctx)
        except PseudonymUnavailable:
            return Outcome.quarantine("no pseudonym may be produced for this instance",
                                      "pseudonym")
        except (ValueError, TypeError, KeyError, AttributeError, IndexError, OverflowError,
                UnicodeError) as err:
            return Outcome.quarantine(f"de-identification failed ({type(err).__name__})", "rule")
        return Outcome.proceed()


def make_stage(services: StageServices) -> Stage:
    if services.pseudonymizer is None:
        raise StageConfigError("deidentify: the stage needs a pseudonymizer (services)")
    return DeidentifyStage(build_deidentifier(services.settings.deid, services.pseudonymizer))
