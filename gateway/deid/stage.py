"""The ``deidentify`` pipeline stage: the engine behind the stage interface.

A :class:`~gateway.pseudonyms.interface.PseudonymUnavailable` becomes a quarantine outcome, and
so does any failure of the engine on a malformed instance; reasons name the failure's class,
never a value of the instance.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from pydicom import Dataset

from gateway.config import DeidSettings
from gateway.deid.compiled import CompiledProfile, compile_profile
from gateway.deid.engine import Deidentifier
from gateway.deid.iod import TableIodTypes
from gateway.deid.profile import (
    Profile,
    load_profile,
    parse_profile,
    parse_site_override,
    with_site_override,
)
from gateway.deid.ruledata import DEFAULT_RULES_DIR, load_rule_data
from gateway.identity import Memory, open_memory
from gateway.pipeline.stage import (
    Outcome,
    ReleaseRules,
    Stage,
    StageContext,
    StageServices,
)
from gateway.pseudonyms.interface import Pseudonymizer, PseudonymUnavailable


class StageConfigError(ValueError):
    """The stage cannot be built from the configuration (the message names the key)."""


def _rules_dir(settings: DeidSettings) -> Path:
    return Path(settings.rules_dir) if settings.rules_dir else DEFAULT_RULES_DIR


def _with_policy(settings: DeidSettings, loaded: Profile, digest: str) -> tuple[Profile, str]:
    if settings.unknown_public is not None:
        loaded = loaded.model_copy(update={"unknown_public": settings.unknown_public})
        digest = f"{digest}:{settings.unknown_public}"
    return loaded, digest


def compile_from_settings(settings: DeidSettings, profile: str | None = None) -> CompiledProfile:
    """Load and compile the configured profile (or ``profile``) once."""
    rules_dir = _rules_dir(settings)
    loaded, digest = _with_policy(settings, *load_profile(profile or settings.profile, rules_dir))
    return compile_profile(loaded, digest, load_rule_data(rules_dir))


def compile_release(settings: DeidSettings, rules: ReleaseRules) -> CompiledProfile:
    """The profile an operator released a job with: the released profile (else the configured
    one), the settings' policy for public attributes in no table, then the site override.

    With an override the profile is named ``<profile>+<override>`` and its hash covers both
    texts, so the ruleset recorded on the job shows the override was used. Raises
    ``ProfileError`` (naming the line and key) for a text that does not validate.
    """
    rules_dir = _rules_dir(settings)
    if rules.profile is not None:
        base = parse_profile(rules.profile.content, f"profile {rules.profile.name}")
        loaded, digest = _with_policy(settings, base, rules.profile.sha256)
    else:
        loaded, digest = _with_policy(settings, *load_profile(settings.profile, rules_dir))
    if rules.override is not None:
        site = parse_site_override(rules.override.content, f"override {rules.override.name}",
                                   name=rules.override.name)
        loaded = with_site_override(loaded, site)
        digest = hashlib.sha256(f"{digest}+{rules.override.sha256}".encode()).hexdigest()
    return compile_profile(loaded, digest, load_rule_data(rules_dir))


MEMORY_FILE = "identity-memory.sqlite"


def build_deidentifier(settings: DeidSettings, pseudonymizer: Pseudonymizer,
                       profile: str | None = None, memory: Memory | None = None
                       ) -> Deidentifier:
    """The engine for the configured profile with the generated IOD Type table."""
    return Deidentifier(
        compile_from_settings(settings, profile), pseudonymizer,
        TableIodTypes.load(_rules_dir(settings)), memory=memory,
    )


class DeidentifyStage:
    """Applies the profile to each instance."""

    name = "deidentify"

    def __init__(self, engine: Deidentifier) -> None:
        self.engine = engine

    def observe_input(self, ds: Dataset, ctx: StageContext) -> None:
        """Learn what the instance teaches about its study and patient before any instance of
        the worker's batch is cleaned; best effort (the cleaning itself collects again)."""
        try:
            self.engine.learn(ds)
        except (ValueError, TypeError, KeyError, AttributeError, IndexError, OverflowError,
                UnicodeError):
            return

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
    memory = open_memory(services.memory_dir, MEMORY_FILE)
    return DeidentifyStage(build_deidentifier(services.settings.deid, services.pseudonymizer,
                                              memory=memory))


def make_release_stage(services: StageServices, rules: ReleaseRules) -> Stage:
    """The stage for jobs an operator released with their own profile or site override."""
    if services.pseudonymizer is None:
        raise StageConfigError("deidentify: the stage needs a pseudonymizer (services)")
    settings = services.settings.deid
    engine = Deidentifier(compile_release(settings, rules), services.pseudonymizer,
                          TableIodTypes.load(_rules_dir(settings)),
                          memory=open_memory(services.memory_dir, MEMORY_FILE))
    return DeidentifyStage(engine)
