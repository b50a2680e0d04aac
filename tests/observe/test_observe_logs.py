"""PHI-free logs: library records, warnings and exceptions are reduced before rendering."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import sys
import threading
import warnings
from collections.abc import Iterator

import pytest
import structlog
from pydicom import Dataset

from gateway.config import LogSettings
from gateway.observe.logs import (
    CHATTY_LIBRARIES,
    configure_logging,
    get_logger,
    redact_exceptions,
)

NAME = "Fakename731^Quintessa"
PATIENT_ID = "SYN48151623"


@contextlib.contextmanager
def configured(settings: LogSettings) -> Iterator[io.StringIO]:
    """Logging configured into a buffer; every global it touches is restored after."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    saved_levels = {n: logging.getLogger(n).level for n in CHATTY_LIBRARIES}
    buf = io.StringIO()
    with warnings.catch_warnings():
        configure_logging(settings, process="test", stream=buf)
        try:
            yield buf
        finally:
            structlog.reset_defaults()
            root.handlers[:] = saved_handlers
            root.setLevel(saved_level)
            for n, lvl in saved_levels.items():
                logging.getLogger(n).setLevel(lvl)
            sys.excepthook = sys.__excepthook__
            threading.excepthook = threading.__excepthook__


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """Logging configured at debug into a buffer."""
    with configured(LogSettings(level="debug")) as buf:
        yield buf


def lines(buf: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buf.getvalue().splitlines() if line.strip()]


def assert_no_phi(buf: io.StringIO) -> None:
    text = buf.getvalue()
    for value in (NAME, "Fakename731", "Quintessa", PATIENT_ID):
        assert value not in text


def test_pydicom_warning_is_reduced_to_category_and_place(logs: io.StringIO) -> None:
    """pydicom's 'Invalid value for VR DA: <value>' reaches the log without the value."""
    ds = Dataset()
    ds.PatientBirthDate = NAME  # pydicom warns and logs, quoting the value
    events = lines(logs)
    assert_no_phi(logs)
    warning = [e for e in events if e["event"] == "python_warning"]
    assert warning and warning[0]["category"] == "UserWarning"
    assert str(warning[0]["source"]).startswith("valuerep.py:")
    library = [e for e in events if e["event"] == "library_log"]
    assert library and library[0]["logger"] == "pydicom"


def test_the_same_warning_place_is_reported_once(logs: io.StringIO) -> None:
    """Hundreds of instances with bad values give one warning line, not one per value."""
    for i in range(5):
        Dataset().PatientBirthDate = f"{NAME}{i}"
    assert sum(1 for e in lines(logs) if e["event"] == "python_warning") == 1


def test_logged_exception_keeps_only_its_class(logs: io.StringIO) -> None:
    """An exception logged with exc_info, or as a value, is its class name: no text, no trace."""
    log = get_logger("gateway.test")
    try:
        raise ValueError(f"cannot shift date of {NAME} ({PATIENT_ID})")
    except ValueError as exc:
        log.exception("stage_failed", job_id="j1")
        log.error("stage_failed_again", error=exc)
    events = lines(logs)
    assert_no_phi(logs)
    assert "Traceback" not in logs.getvalue()
    assert events[0]["exc_type"] == "ValueError" and events[0]["job_id"] == "j1"
    assert events[1]["error"] == "ValueError"


def test_library_record_with_exception_is_reduced(logs: io.StringIO) -> None:
    """A pynetdicom record (message, args and traceback) keeps only logger, level, class."""
    lib = logging.getLogger("pynetdicom.assoc")
    try:
        raise KeyError(PATIENT_ID)
    except KeyError:
        lib.error("Exception in handler for %s", NAME, exc_info=True)
    (event,) = lines(logs)
    assert_no_phi(logs)
    assert event == {**event, "event": "library_log", "logger": "pynetdicom.assoc",
                     "library_level": "error", "exc_type": "KeyError"}


def test_uncaught_thread_exception_is_reduced(logs: io.StringIO) -> None:
    """A thread dying of an exception logs the class name, not the message or the trace."""

    def boom() -> None:
        raise RuntimeError(f"patient {NAME}")

    t = threading.Thread(target=boom, name="forward-research")
    t.start()
    t.join()
    (event,) = lines(logs)
    assert_no_phi(logs)
    assert event["event"] == "uncaught_exception" and event["exc_type"] == "RuntimeError"
    assert event["thread"] == "forward-research" and event["process"] == "test"


def test_lines_are_json_with_fixed_leading_keys(logs: io.StringIO) -> None:
    """Each line is one JSON object starting with timestamp, level, event, process."""
    get_logger("gateway.test").info("stored", job_id="abc", bytes=10)
    (line,) = logs.getvalue().splitlines()
    event = json.loads(line)
    assert list(event)[:5] == ["timestamp", "level", "event", "process", "component"]
    assert event["job_id"] == "abc"


def test_level_is_configurable() -> None:
    """At level warning, info lines are dropped."""
    with configured(LogSettings(level="warning")) as buf:
        log = get_logger("gateway.test")
        log.info("dropped")
        log.warning("kept")
    assert [e["event"] for e in lines(buf)] == ["kept"]


def test_redact_processor_drops_stack_and_exc_info() -> None:
    """The processor alone: exc_info tuples and stack dumps never reach the renderer."""
    try:
        raise OSError(NAME)
    except OSError:
        event = redact_exceptions(None, "error", {"event": "x", "exc_info": sys.exc_info(),
                                                  "stack_info": True, "stack": "..."})
    assert event == {"event": "x", "exc_type": "OSError"}


def test_console_format_is_optional() -> None:
    """format: console renders human-readable lines, still reduced (no exception text)."""
    with configured(LogSettings(format="console")) as buf:
        try:
            raise ValueError(NAME)
        except ValueError:
            get_logger("gateway.test").exception("stage_failed", job_id="j9")
    text = buf.getvalue()
    assert "stage_failed" in text and "j9" in text and "ValueError" in text
    assert NAME not in text and not text.lstrip().startswith("{")
