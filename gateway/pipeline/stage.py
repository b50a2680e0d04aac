"""The stage interface that every pipeline step implements (filter, pixels, de-identify, verify).

A stage is a callable from the current dataset (changed in place) and a per-instance context to
an :class:`Outcome`: continue, filter (drop on purpose), quarantine (hold with a reason), or
retry (a transient failure: the job goes back to the queue). Stages never import each other;
:mod:`gateway.pipeline.compose` wires them in order.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pydicom import Dataset

from gateway.identity import Identity

if TYPE_CHECKING:
    from gateway.config import Settings


class OutcomeKind(enum.StrEnum):
    CONTINUE = "continue"
    FILTER = "filter"
    QUARANTINE = "quarantine"
    RETRY = "retry"


@dataclass(frozen=True)
class Outcome:
    """How a stage ended. ``reason`` must never contain a patient value or an original UID."""

    kind: OutcomeKind
    reason: str = ""
    # A short, bounded class for metrics labels and filtering ("leak", "rule", "decode", ...).
    reason_class: str = ""
    # The attribute paths the reason is about, as tag paths like ``(0008,1032)[0]>(0008,0104)``
    # (never values): operators group quarantined jobs by them (gateway.jobs.groups).
    paths: tuple[str, ...] = ()

    @classmethod
    def proceed(cls) -> Outcome:
        return _CONTINUE

    @classmethod
    def filter(cls, reason: str, reason_class: str = "filter") -> Outcome:
        return cls(OutcomeKind.FILTER, reason, reason_class)

    @classmethod
    def quarantine(cls, reason: str, reason_class: str, paths: tuple[str, ...] = ()) -> Outcome:
        return cls(OutcomeKind.QUARANTINE, reason, reason_class, tuple(paths))

    @classmethod
    def retry(cls, reason: str, reason_class: str = "transient") -> Outcome:
        return cls(OutcomeKind.RETRY, reason, reason_class)


_CONTINUE = Outcome(OutcomeKind.CONTINUE)


@dataclass
class StageContext:
    """What a stage knows about the instance besides its dataset; lives for one run of one job.

    ``identity`` collects identifying values of the *input* (names, IDs, dates, original UIDs)
    as the de-identifier finds them; the verify stage searches the output for them as well as
    for what it collects itself (:meth:`Stage.observe_input`). It is held in memory only and
    never logged. ``notes`` passes facts between stages, for
    example ``notes["pixels_cleaned"] = True`` from the pixel stage to the de-identifier, which
    then records code 113101 (Clean Pixel Data Option).
    """

    job_id: str
    calling_ae: str = ""
    called_ae: str = ""
    source_path: Path | None = None
    identity: Identity = field(default_factory=Identity)
    notes: dict[str, Any] = field(default_factory=dict)
    # "name@version" of each ruleset/model that touched the instance, recorded on the job.
    versions: list[str] = field(default_factory=list)


class Stage(Protocol):
    """One pipeline step.

    A stage may also define ``observe_input(ds, ctx)``: it is called for every stage that has
    it before the first stage runs, to read the input as it came (the verify stage collects the
    input's identity there with its own code, before de-identification changes it).
    """

    name: str

    def __call__(self, ds: Dataset, ctx: StageContext) -> Outcome: ...


def observe_input(stages: Sequence[Stage], ds: Dataset, ctx: StageContext) -> tuple[Outcome, str]:
    """Run the ``observe_input`` hooks; a failing one quarantines (its stage's name is given)."""
    for stage in stages:
        observe = getattr(stage, "observe_input", None)
        if observe is None:
            continue
        try:
            observe(ds, ctx)
        except Exception as exc:
            return Outcome.quarantine(f"{stage.name}: failed ({type(exc).__name__})",
                                      "error"), stage.name
    return _CONTINUE, ""


@dataclass
class StageServices:
    """Per-process resources a stage factory may use (built once per worker process)."""

    settings: Settings
    # The pseudonym store (gateway.pseudonyms.interface.Pseudonymizer) when one is configured.
    pseudonymizer: Any = None
    # Anything else a stage needs that is expensive to build (model clients, caches).
    extras: dict[str, Any] = field(default_factory=dict)
    # Where the node's identity memory lives, shared by its processes (the spool in the
    # gateway; a folder of its own in an offline run). None: each stage remembers alone.
    memory_dir: Path | None = None


class StageFactory(Protocol):
    def __call__(self, services: StageServices) -> Stage: ...


@dataclass(frozen=True)
class RulesText:
    """The YAML text of a profile or site override an operator released a job with."""

    sha256: str
    name: str
    content: str


@dataclass(frozen=True)
class ReleaseRules:
    """What replaces the configured rules for one released job (None: the configured one).

    A site override applies on top of the profile: the released one, else the configured one.
    """

    profile: RulesText | None = None
    override: RulesText | None = None


class ReleaseStageFactory(Protocol):
    def __call__(self, services: StageServices, rules: ReleaseRules) -> Stage: ...
