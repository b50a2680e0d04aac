"""Where the shipped data folders are: ``rules/`` (PS3.15 tables, profiles, pixel signatures)
and ``models/`` (detector weights).

In a checkout (the editable install that ``make run`` makes) they sit beside the package; a
wheel installs them under ``<prefix>/share/deid-gateway/`` (``[tool.setuptools.data-files]``).
"""

from __future__ import annotations

import sys
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]
INSTALLED = Path(sys.prefix) / "share" / "deid-gateway"


def shipped(name: str) -> Path:
    """The ``rules`` or ``models`` folder: the checkout's, else the installed copy."""
    for base in (CHECKOUT, INSTALLED):
        candidate = base / name
        if candidate.is_dir():
            return candidate
    return CHECKOUT / name
