"""The verify stage (DESIGN decision 7): the output is checked for the input's identifying values.

Every string value of the de-identified instance, at every depth and in private elements and
file meta too, is compared with the identifying values that earlier stages collected from the
input (``StageContext.identifiers``: names and their parts, IDs, dates, addresses, original
UIDs). A hit holds the instance in quarantine with the tag path of the value, never the value.
"""

from gateway.verify.leaks import Leak, find_leaks

__all__ = ["Leak", "find_leaks"]
