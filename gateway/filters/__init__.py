"""The filter stage: drop or quarantine instances before de-identification, by rules in YAML.

A rule matches when every condition it lists holds: SOP Class UID, Modality, Image Type values
(for example whole-slide ``LABEL`` and ``OVERVIEW`` images, which carry handwritten labels), or
any attribute's value. The first matching rule decides; an instance no rule matches continues.
"""

from gateway.filters.rules import FilterRule, first_match, load_rules

__all__ = ["FilterRule", "first_match", "load_rules"]
