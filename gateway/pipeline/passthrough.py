"""The pass-through stage: forwards the instance unchanged (used until de-identification runs)."""

from __future__ import annotations

from pydicom import Dataset

from gateway.pipeline.stage import Outcome, Stage, StageContext, StageServices


class PassThrough:
    """Leaves the dataset untouched."""

    name = "passthrough"

    def __call__(self, ds: Dataset, ctx: StageContext) -> Outcome:
        return Outcome.proceed()


def make_stage(services: StageServices) -> Stage:
    return PassThrough()
