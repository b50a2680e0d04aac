"""The verify stage (DESIGN decision 7): the output is checked for the input's identifying values.

Every string value of the de-identified instance, at every depth and in private elements and
file meta too, is searched for every written form of the input's identity (names, IDs, dates,
phones, institutions and addresses, original UIDs): the identity verify reads itself before any
stage runs (:mod:`gateway.verify.identity`), what earlier instances of the study and patient
taught it, and what the de-identifier collected. A hit holds the instance in quarantine with the
tag path of the value, never the value.
"""

from gateway.verify.leaks import Leak, find_leaks

__all__ = ["Leak", "find_leaks"]
