"""The one module that wires stages in order, by the names the configuration lists.

Stage modules are imported lazily by dotted path so that a worker only loads what it runs.
"""

from __future__ import annotations

import importlib
from collections import OrderedDict
from collections.abc import Callable, Sequence

from gateway.pipeline.stage import (
    ReleaseRules,
    ReleaseStageFactory,
    RulesText,
    Stage,
    StageFactory,
    StageServices,
)

# name -> "module:factory". Each factory takes StageServices and returns a Stage.
STAGES: dict[str, str] = {
    "passthrough": "gateway.pipeline.passthrough:make_stage",
    "filter": "gateway.filters.stage:make_stage",
    "deidentify": "gateway.deid.stage:make_stage",
    "verify": "gateway.verify.stage:make_stage",
    # Clean Pixel Data: runs before "deidentify" (it reads identifying values for OCR).
    "pixels": "gateway.pixels.stage:make_stage",
}


# The stages whose rules an operator may replace for the jobs of one release (a profile or a
# site override): name -> "module:factory" taking StageServices and ReleaseRules.
RELEASE_STAGES: dict[str, str] = {
    "deidentify": "gateway.deid.stage:make_release_stage",
}


class UnknownStage(ValueError):
    """The configuration names a stage that does not exist."""


def _factory(name: str) -> StageFactory:
    try:
        target = STAGES[name]
    except KeyError:
        known = ", ".join(sorted(STAGES))
        raise UnknownStage(f"pipeline.stages: unknown stage {name!r} (known: {known})") from None
    module, _, attr = target.partition(":")
    factory: StageFactory = getattr(importlib.import_module(module), attr)
    return factory


def build_pipeline(names: Sequence[str], services: StageServices) -> list[Stage]:
    """Instantiate the named stages in order."""
    return [_factory(n)(services) for n in names]


class ReleaseRulesError(Exception):
    """A released job's rules cannot be used here (the message names no value)."""


def _release_factory(name: str) -> ReleaseStageFactory:
    module, _, attr = RELEASE_STAGES[name].partition(":")
    factory: ReleaseStageFactory = getattr(importlib.import_module(module), attr)
    return factory


def has_release_stage(names: Sequence[str]) -> bool:
    """Whether a pipeline of ``names`` has a stage a release's rules apply to."""
    return any(n in RELEASE_STAGES for n in names)


class ReleasePipelines:
    """The pipeline for jobs released with their own profile or site override: the configured
    stages, the ``deidentify`` stage built for those rules. Every other stage (verify
    included) is the configured one. Built once per distinct rules and kept in a bounded
    least-recently-used cache (one per worker process)."""

    def __init__(
        self,
        stages: Sequence[Stage],
        services: StageServices,
        load: Callable[[str], RulesText | None],
        size: int = 8,
    ) -> None:
        self._stages = list(stages)
        self._services = services
        self._load = load
        self._size = size
        self._cache: OrderedDict[tuple[str, str], list[Stage]] = OrderedDict()

    def __call__(self, profile: str | None, override: str | None) -> Sequence[Stage]:
        """The stages for the rules stored under these sha256 (None, None: the configured)."""
        if not profile and not override:
            return self._stages
        key = (profile or "", override or "")
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        if not any(s.name in RELEASE_STAGES for s in self._stages):
            raise ReleaseRulesError("the pipeline has no stage that a profile applies to")
        rules = ReleaseRules(self._text(profile), self._text(override))
        built = [
            _release_factory(s.name)(self._services, rules) if s.name in RELEASE_STAGES else s
            for s in self._stages
        ]
        self._cache[key] = built
        while len(self._cache) > self._size:
            self._cache.popitem(last=False)
        return built

    def __len__(self) -> int:
        return len(self._cache)

    def _text(self, sha256: str | None) -> RulesText | None:
        if not sha256:
            return None
        text = self._load(sha256)
        if text is None:
            raise ReleaseRulesError(f"released rules {sha256[:12]} are not in the database")
        return text
