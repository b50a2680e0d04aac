"""Quarantined jobs grouped into classes that an operator can act on at once.

A group is every quarantined job with the same reason class, the same stage and the same
normalised reason: attribute paths without their item indexes
(``(0008,1032)[0]>(0008,0104)`` -> ``(0008,1032)>(0008,0104)``) and, where the reason is not
about attribute paths, its decimal numbers replaced by ``#`` (attempt counts, sizes). A job's
paths come from the structured paths the stage reported (the ``reason_paths`` column); jobs
quarantined before that column existed fall back to the tag paths written in the reason text.
The group id is the first ten hex digits of the SHA-256 of the key, so it is the same in every
run, on every node, for as long as the normalisation stays the same.

Only tag paths are ever kept here, never values: a path that is not a well-formed tag path is
dropped rather than stored.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

_TAG = r"\([0-9A-Fa-f]{4},[0-9A-Fa-f]{4}\)"
_ITEM = r"\[\d+\]"
_STEP = rf"{_TAG}(?:{_ITEM})?"
PATH_RE = re.compile(rf"{_STEP}(?:>{_STEP})*")
_FULL_PATH = re.compile(rf"{PATH_RE.pattern}\Z")
_ITEM_RE = re.compile(_ITEM)
# A decimal number standing alone (not part of a tag, a hex status like 0xA700, or a name).
_NUMBER = re.compile(r"(?<![\w(,.])\d+(?![\w,).])")
# "... at P1, P2 and 3 more": the tail the verify stage adds after five paths.
_MORE = re.compile(r"\s+and\s+\d+\s+more\b")
MAX_PATHS = 64
ID_LENGTH = 10
SHOWN_PATHS = 5


def normalise_path(path: str) -> str:
    """A tag path without item indexes, hex digits in upper case."""
    return _ITEM_RE.sub("", path.strip()).upper()


def clean_paths(paths: Iterable[str]) -> tuple[str, ...]:
    """Well-formed tag paths only, normalised, sorted and unique (at most ``MAX_PATHS``)."""
    found = {normalise_path(p) for p in paths if _FULL_PATH.match(p.strip())}
    return tuple(sorted(found))[:MAX_PATHS]


def paths_in_text(text: str) -> tuple[str, ...]:
    """The tag paths written in a reason (the fallback for jobs without stored paths)."""
    return clean_paths(m.group(0) for m in PATH_RE.finditer(text))


def encode_paths(paths: Sequence[str]) -> str | None:
    """The ``reason_paths`` column value: JSON of the cleaned paths, or None when there are none."""
    cleaned = clean_paths(paths)
    return json.dumps(list(cleaned)) if cleaned else None


def decode_paths(stored: str | None) -> tuple[str, ...] | None:
    """The paths of a ``reason_paths`` value; None for a job quarantined before the column."""
    if stored is None:
        return None
    try:
        value = json.loads(stored)
    except ValueError:
        return ()
    return clean_paths(str(p) for p in value) if isinstance(value, list) else ()


def _list_of(paths: Sequence[str]) -> str:
    shown = ", ".join(paths[:SHOWN_PATHS])
    more = f" and {len(paths) - SHOWN_PATHS} more" if len(paths) > SHOWN_PATHS else ""
    return shown + more


def normalise_reason(reason: str, paths: Sequence[str]) -> str:
    """The reason as a group shows it: the run of tag paths it names replaced by ``paths``
    (normalised, unique), other decimal numbers replaced by ``#``."""
    found = list(PATH_RE.finditer(reason))
    if found and paths:
        start, end = found[0].start(), found[-1].end()
        tail = _MORE.match(reason, end)
        if tail is not None:
            end = tail.end()
        head, rest = reason[:start], reason[end:]
        return f"{_NUMBER.sub('#', head)}{_list_of(paths)}{_NUMBER.sub('#', rest)}"
    pieces, last = [], 0
    for m in found:
        pieces += [_NUMBER.sub("#", reason[last:m.start()]), normalise_path(m.group(0))]
        last = m.end()
    pieces.append(_NUMBER.sub("#", reason[last:]))
    return "".join(pieces)


def group_key(reason_class: str, stage: str, reason: str, paths: Sequence[str]) -> str:
    """What makes two quarantined jobs one group."""
    about = "paths:" + ",".join(paths) if paths else "reason:" + normalise_reason(reason, ())
    return "\x1f".join((reason_class, stage, about))


def group_id(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:ID_LENGTH]


@dataclass(frozen=True)
class QuarantineEntry:
    """What grouping needs of one quarantined job (no patient value)."""

    job_id: str
    updated_at: dt.datetime
    reason_class: str
    stage: str
    reason: str
    stored_paths: str | None  # the reason_paths column

    def paths(self) -> tuple[str, ...]:
        stored = decode_paths(self.stored_paths)
        return paths_in_text(self.reason) if stored is None else stored

    def group(self) -> str:
        return group_id(group_key(self.reason_class, self.stage, self.reason, self.paths()))


@dataclass(frozen=True)
class Group:
    """Quarantined jobs with one reason class, stage and normalised reason."""

    id: str
    reason_class: str
    stage: str
    reason: str
    paths: tuple[str, ...]
    count: int
    newest: dt.datetime
    oldest: dt.datetime
    job_ids: tuple[str, ...]  # oldest first


def group_entries(entries: Iterable[QuarantineEntry]) -> list[Group]:
    """The groups of ``entries``, newest group (by its newest job) first."""
    members: dict[str, list[tuple[QuarantineEntry, tuple[str, ...]]]] = {}
    for e in entries:
        paths = e.paths()
        key = group_key(e.reason_class, e.stage, e.reason, paths)
        members.setdefault(key, []).append((e, paths))
    groups = []
    for key, items in members.items():
        items.sort(key=lambda item: (item[0].updated_at, item[0].job_id))
        newest, paths = items[-1]
        groups.append(Group(
            id=group_id(key),
            reason_class=newest.reason_class,
            stage=newest.stage,
            reason=normalise_reason(newest.reason, paths),
            paths=paths,
            count=len(items),
            newest=newest.updated_at,
            oldest=items[0][0].updated_at,
            job_ids=tuple(e.job_id for e, _ in items),
        ))
    groups.sort(key=lambda g: (g.newest, g.id), reverse=True)
    return groups
