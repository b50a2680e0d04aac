"""The ``verify`` pipeline stage: quarantine any instance whose output holds an input identifier."""

from __future__ import annotations

from pydicom import Dataset

from gateway.pipeline.stage import Outcome, Stage, StageContext, StageServices
from gateway.verify.leaks import VerifyCache, find_leaks

MAX_PATHS = 5


class VerifyStage:
    """Checks every string value of the output against ``ctx.identifiers``."""

    name = "verify"

    def __init__(self) -> None:
        self.patterns = VerifyCache()

    def __call__(self, ds: Dataset, ctx: StageContext) -> Outcome:
        leaks = find_leaks(ds, ctx.identifiers, self.patterns)
        if not leaks:
            return Outcome.proceed()
        paths = ", ".join(leak.path for leak in leaks[:MAX_PATHS])
        more = f" and {len(leaks) - MAX_PATHS} more" if len(leaks) > MAX_PATHS else ""
        return Outcome.quarantine(f"identifying value of the input found at {paths}{more}",
                                  "leak", tuple(leak.path for leak in leaks))


def make_stage(services: StageServices) -> Stage:
    return VerifyStage()
