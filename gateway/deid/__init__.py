"""Header de-identification per PS3.15 Annex E: the Basic Profile, its options and site overrides.

The rule data is generated from the standard's own tables (``rules/ps3.15/``); a profile
(``rules/profiles/*.yaml``) names options and overrides and is compiled once into a tag -> action
table (:mod:`gateway.deid.compiled`); :class:`gateway.deid.engine.Deidentifier` applies it.
"""

from gateway.deid.compiled import CompiledProfile, compile_profile, load_compiled
from gateway.deid.engine import Deidentifier, DeidResult
from gateway.deid.profile import Profile, ProfileError, load_profile

__all__ = [
    "CompiledProfile",
    "DeidResult",
    "Deidentifier",
    "Profile",
    "ProfileError",
    "compile_profile",
    "load_compiled",
    "load_profile",
]
