"""The vetted library messages: each kept form carries no value, every other stays reduced."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pydicom
import pynetdicom
import pytest
from test_observe_logs import NAME, PATIENT_ID, assert_no_phi, configured, lines

from gateway.config import LogSettings
from gateway.observe.library_messages import KEPT, is_kept

parser: Any = re._parser  # type: ignore[attr-defined]
constants: Any = re._constants  # type: ignore[attr-defined]
DIGITS = {(constants.RANGE, (ord("0"), ord("9"))), (constants.CATEGORY,
                                                    constants.CATEGORY_DIGIT)}
HEX = DIGITS | {(constants.RANGE, (ord("A"), ord("F")))}
MAX_VARIABLE = 5  # digits: a status, a message or context ID, never a value


def _digit_class(node: Any) -> bool:
    """A character class of decimal or upper-case hexadecimal digits only."""
    op, av = node
    if op is constants.CATEGORY:
        return bool(av is constants.CATEGORY_DIGIT)
    return op is constants.IN and all((o, a) in HEX for o, a in av)


def _fixed_or_bounded_digits(tokens: Any) -> None:
    """Raise AssertionError unless every variable part of ``tokens`` is an alternative of
    fixed text, an optional fixed part, or at most MAX_VARIABLE digits."""
    for op, av in tokens:
        if op is constants.LITERAL or op is constants.AT:
            continue
        if op is constants.SUBPATTERN:
            _fixed_or_bounded_digits(av[-1])
        elif op is constants.BRANCH:
            for branch in av[1]:
                _fixed_or_bounded_digits(branch)
        elif op in (constants.MAX_REPEAT, constants.MIN_REPEAT):
            _low, high, body = av
            if high <= 1:
                _fixed_or_bounded_digits(body)
            else:
                assert high <= MAX_VARIABLE, f"repeat of up to {high}"
                assert all(_digit_class(node) for node in body), f"repeat of {list(body)}"
        elif op is constants.IN:
            assert _digit_class((op, av)), f"class {av}"
        else:
            raise AssertionError(f"{op} admits free text")


@pytest.mark.parametrize(("pattern", "example"), KEPT, ids=[e for _, e in KEPT])
def test_kept_form_admits_no_value(pattern: str, example: str) -> None:
    """A kept pattern's only variable parts are fixed words or at most five digits."""
    _fixed_or_bounded_digits(parser.parse(pattern))


def _library_source() -> str:
    """The libraries' code, with implicitly concatenated string literals joined."""
    roots = [Path(pynetdicom.__file__).parent, Path(pydicom.__file__).parent]
    text = "\n".join(p.read_text(errors="replace") for root in roots
                     for p in root.rglob("*.py") if "tests" not in p.parts)
    return re.sub(r'"\s*\n\s*f?"', "", text)


@pytest.fixture(scope="module")
def library_source() -> str:
    return _library_source()


def _fixed_runs(pattern: str) -> list[str]:
    """The runs of fixed text outside groups, classes and escapes in ``pattern``'s own text
    (six characters or more; the parsed form would merge the alternatives' common starts)."""
    runs, current, depth, i = [], "", 0, 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            literal = pattern[i + 1] in "().[]{}\\?*+|"
            if depth == 0 and literal:
                current += pattern[i + 1]
            elif depth == 0:
                runs.append(current)
                current = ""
            i += 2
            continue
        if c in "([{":
            if depth == 0:
                runs.append(current)
                current = ""
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0 and c not in "?*+":
            current += c
        i += 1
    runs.append(current)
    # a status's "0x" is written before its format field, in the library too
    return [r for run in runs for r in run.split("0x") if len(r.strip()) >= 6]


@pytest.mark.parametrize(("pattern", "example"), KEPT, ids=[e for _, e in KEPT])
def test_kept_form_is_one_the_library_emits(
    pattern: str, example: str, library_source: str
) -> None:
    """Each entry's example matches its pattern, and the pattern's fixed text is in the
    installed library's source (a form the library no longer emits is dropped, not kept)."""
    assert re.fullmatch(pattern, example)
    runs = _fixed_runs(pattern)
    assert runs and all(run in library_source for run in runs), runs


@pytest.mark.parametrize("message", [
    f"Received unexpected {NAME} service message",
    f"Association Aborted {PATIENT_ID}",
    f"Reason: {NAME}",
    "Received DIMSE message with invalid or rejected context ID: 123456",
    "Invalid value for VR DA: '19700101'",
    f"Sending Echo Request: MsgID {PATIENT_ID}",
])
def test_a_value_in_a_kept_form_is_not_kept(message: str) -> None:
    """A message that puts any value where a kept form has fixed text is not kept."""
    assert not is_kept("pynetdicom.association", message)


def test_kept_forms_only_for_pynetdicom_and_pydicom() -> None:
    """The same words from another library's logger are not kept."""
    assert is_kept("pynetdicom.association", "Network timeout reached")
    assert is_kept("pydicom", "Association Released")
    assert not is_kept("sqlalchemy", "Association Released")
    assert not is_kept("pynetdicomx", "Network timeout reached")


def test_vetted_messages_reach_the_log_and_others_stay_reduced() -> None:
    """The stall's two pynetdicom messages keep their text in the JSON line; a message quoting
    a value keeps only logger and level, as before."""
    with configured(LogSettings(level="debug")) as buf:
        lib = logging.getLogger("pynetdicom.association")
        lib.warning("Received unexpected %s service message", "C-STORE")
        lib.error("DIMSE timeout reached while waiting for message response")
        lib.error("Invalid value for PN: '%s' (%s)", NAME, PATIENT_ID)
        logging.getLogger("pydicom").warning(f"Unknown PDU type received '{PATIENT_ID}'")
    first, second, third, fourth = lines(buf)
    assert first["message"] == "Received unexpected C-STORE service message"
    assert second["message"] == "DIMSE timeout reached while waiting for message response"
    assert third == {**third, "event": "library_log", "logger": "pynetdicom.association",
                     "library_level": "error"}
    assert "message" not in third and "message" not in fourth
    assert_no_phi(buf)

