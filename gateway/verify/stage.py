"""The ``verify`` pipeline stage: quarantine any instance whose output holds an input identifier.

Verify is independent of the de-identifier (DESIGN decision 11): before any stage runs it reads
the input's identity with its own rules (:mod:`gateway.verify.identity`) and remembers, per study
and patient, what earlier instances taught; after the stages it searches the output for that
identity joined with what the de-identifier collected, so that it is never weaker than the
cleaner and a cleaner bug cannot blind it.
"""

from __future__ import annotations

from pathlib import Path

from pydicom import Dataset

from gateway.deid.options import Option
from gateway.deid.profile import load_profile
from gateway.deid.ruledata import DEFAULT_RULES_DIR, RuleData, load_rule_data
from gateway.identity import OWN_VOCABULARY, Identity, IdentityMemory, Memory, open_memory, squash
from gateway.pipeline.stage import Outcome, Stage, StageContext, StageServices
from gateway.verify.identity import Retained, extract
from gateway.verify.leaks import VerifyCache, find_leaks

MAX_PATHS = 5
MEMORY_FILE = "verify-memory.sqlite"  # verify's own memory, apart from the de-identifier's
NOTE = "verify.identity"  # ctx.notes key of what observe_input read


class VerifyStage:
    """Checks every string value of the output against the input's identity."""

    name = "verify"

    def __init__(self, retained: Retained | None = None,
                 ignore: frozenset[str] = OWN_VOCABULARY, memory: Memory | None = None) -> None:
        self.retained = retained or Retained()
        self.patterns = VerifyCache(ignore=ignore)
        self.memory: Memory = memory if memory is not None else IdentityMemory()

    def observe_input(self, ds: Dataset, ctx: StageContext) -> None:
        """Read the input's identity before any stage changes it."""
        own, keys = extract(ds, self.retained)
        identity = own.copy()
        known = self.memory.recall(keys)
        identity.update(known)
        self.memory.learn(keys, own, known)
        ctx.notes[NOTE] = identity

    def __call__(self, ds: Dataset, ctx: StageContext) -> Outcome:
        identity = Identity()
        observed = ctx.notes.get(NOTE)
        if isinstance(observed, Identity):
            identity.update(observed)
        identity.update(ctx.identity)
        leaks = find_leaks(ds, identity, self.patterns, kept_vrs=self.retained.vrs)
        if not leaks:
            return Outcome.proceed()
        paths = ", ".join(leak.path for leak in leaks[:MAX_PATHS])
        more = f" and {len(leaks) - MAX_PATHS} more" if len(leaks) > MAX_PATHS else ""
        return Outcome.quarantine(f"identifying value of the input found at {paths}{more}",
                                  "leak", tuple(leak.path for leak in leaks))


def retained_by_options(options: frozenset[Option], rules: RuleData) -> Retained:
    """What the selected options keep (an option column of PS3.15 Table E.1-1 says K)."""
    names = {o.value for o in options}
    tags = []
    for tag, row in rules.attributes.items():
        codes = {row.options[n] for n in names if n in row.options}
        if "K" in codes and "C" not in codes:  # (C wins where two options meet, as it should)
            tags.append(tag)
    return Retained(tags=frozenset(tags), dates=Option.RETAIN_LONGITUDINAL_FULL_DATES in options,
                    uids=Option.RETAIN_UIDS in options)


def make_stage(services: StageServices) -> Stage:
    deid = services.settings.deid
    rules_dir = Path(deid.rules_dir) if deid.rules_dir else DEFAULT_RULES_DIR
    profile, _digest = load_profile(deid.profile, rules_dir)
    retained = retained_by_options(frozenset(profile.options), load_rule_data(rules_dir))
    prefix = squash(services.settings.pseudonyms.patient_name_prefix)
    memory = open_memory(services.memory_dir, MEMORY_FILE)
    return VerifyStage(retained, OWN_VOCABULARY | {prefix}, memory)
