"""The one module that wires stages in order, by the names the configuration lists.

Stage modules are imported lazily by dotted path so that a worker only loads what it runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from gateway.pipeline.stage import Stage, StageFactory, StageServices

# name -> "module:factory". Each factory takes StageServices and returns a Stage.
STAGES: dict[str, str] = {
    "passthrough": "gateway.pipeline.passthrough:make_stage",
    "filter": "gateway.filters.stage:make_stage",
    "deidentify": "gateway.deid.stage:make_stage",
    "verify": "gateway.verify.stage:make_stage",
    # Clean Pixel Data: runs before "deidentify" (it reads identifying values for OCR).
    "pixels": "gateway.pixels.stage:make_stage",
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
