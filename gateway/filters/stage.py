"""The ``filter`` pipeline stage: the first matching rule drops or quarantines the instance."""

from __future__ import annotations

from collections.abc import Sequence

from pydicom import Dataset

from gateway.filters.rules import FilterRule, first_match, load_rules
from gateway.pipeline.stage import Outcome, Stage, StageContext, StageServices


class FilterStage:
    """Applies the configured filter rules; reasons name the rule, never a value."""

    name = "filter"

    def __init__(self, rules: Sequence[FilterRule]) -> None:
        self.rules = tuple(rules)

    def __call__(self, ds: Dataset, ctx: StageContext) -> Outcome:
        rule = first_match(self.rules, ds)
        if rule is None:
            return Outcome.proceed()
        reason = f"filter rule {rule.name}"
        if rule.action == "quarantine":
            return Outcome.quarantine(reason, "filter")
        return Outcome.filter(reason, "filter")


def make_stage(services: StageServices) -> Stage:
    return FilterStage(load_rules(services.settings.filters))
