"""structlog configuration: JSON lines (or console) keyed by job id, never a patient value.

The guarantee that no PHI reaches a log line has three parts, all configured here, once per
process, by :func:`configure_logging`:

1. Records of the standard ``logging`` module, which is what pydicom, pynetdicom and SQLAlchemy
   use, keep only their logger name and level (:class:`LibraryRecordHandler`): their messages
   can echo element values ("Invalid value for VR DA: '<the value>'"). The exceptions are the
   vetted pynetdicom/pydicom messages of :mod:`gateway.observe.library_messages`.
2. Exceptions are reduced to their class name wherever they could be printed: the ``exc_info``
   of a log call and any logged value that is an exception (:func:`redact_exceptions`),
   uncaught exceptions of threads and of the process (excepthooks), and Python warnings, which
   pydicom raises with the offending value in the text (:class:`WarningReporter`).
3. Gateway code logs job ids, states, bounded names and pseudonymous UIDs only (the output SOP
   Instance UID once de-identified, never an input one); the PHI tests check it end to end.

pynetdicom's switches that log request identifiers are turned off as well.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import warnings
from collections.abc import MutableMapping
from types import TracebackType
from typing import Any, TextIO

import structlog

from gateway.config import LogSettings
from gateway.observe.library_messages import is_kept

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}
# Libraries whose INFO and DEBUG records are noise at any gateway level.
CHATTY_LIBRARIES = ("pynetdicom", "pydicom", "sqlalchemy", "alembic", "urllib3")
LIBRARY_EVENT = "library_log"
_EXC_KEYS = ("exc_info", "exception", "stack_info", "stack")

EventDict = MutableMapping[str, Any]


def exception_name(exc: BaseException | type[BaseException] | None) -> str:
    """The class name of an exception (or exception class), never its message."""
    if exc is None:
        return "None"
    cls = exc if isinstance(exc, type) else type(exc)
    return cls.__name__


def redact_exceptions(_logger: Any, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: ``exc_info`` becomes ``exc_type`` (the class name); any value that
    is an exception is replaced by its class name; stack dumps are dropped."""
    exc_info = event_dict.pop("exc_info", None)
    for key in _EXC_KEYS[1:]:
        event_dict.pop(key, None)
    if exc_info:
        if exc_info is True:
            exc_info = sys.exc_info()
        if isinstance(exc_info, tuple):
            exc_info = exc_info[0]
        event_dict["exc_type"] = exception_name(exc_info)
    for key, value in list(event_dict.items()):
        if isinstance(value, BaseException):
            event_dict[key] = exception_name(value)
    return event_dict


def reduce_record(record: logging.LogRecord) -> dict[str, Any]:
    """The only fields of a standard-library record that may be logged: no args, no traceback
    text, and no message unless it is one of the vetted forms of
    :mod:`gateway.observe.library_messages` (which carry no data-set value)."""
    out: dict[str, Any] = {"logger": record.name, "library_level": record.levelname.lower()}
    with contextlib.suppress(Exception):  # a message that cannot be formatted is not kept
        message = record.getMessage()
        if is_kept(record.name, message):
            out["message"] = message
    if record.exc_info and record.exc_info[0] is not None:
        out["exc_type"] = exception_name(record.exc_info[0])
    return out


class LibraryRecordHandler(logging.Handler):
    """Sends every standard-library record through structlog, reduced by :func:`reduce_record`."""

    def __init__(self, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self._log = structlog.get_logger()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._log.log(record.levelno, LIBRARY_EVENT, **reduce_record(record))
        except Exception:  # a log line must never break its caller
            self.handleError(record)

    def handleError(self, record: logging.LogRecord) -> None:
        return None  # the default prints the record's message and traceback to stderr


class WarningReporter:
    """``warnings.showwarning`` replacement: the category and where it was raised, never the
    text (pydicom puts the offending value in it); each place is reported once per process."""

    def __init__(self) -> None:
        self._seen: set[tuple[str, str, int]] = set()
        self._lock = threading.Lock()

    def __call__(
        self,
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        key = (category.__name__, os.path.basename(filename), lineno)
        with self._lock:
            if key in self._seen:
                return
            self._seen.add(key)
        structlog.get_logger().warning(
            "python_warning", category=key[0], source=f"{key[1]}:{key[2]}"
        )


def _thread_excepthook(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    structlog.get_logger().error(
        "uncaught_exception", exc_type=exception_name(args.exc_type),
        thread=args.thread.name if args.thread is not None else "",
    )


def _process_excepthook(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    structlog.get_logger().error("uncaught_exception", exc_type=exception_name(exc_type))


class AddProcess:
    """Adds the process's role ("serve", "worker-3") to every line, from any thread."""

    def __init__(self, process: str) -> None:
        self._process = process

    def __call__(self, _logger: Any, _method: str, event_dict: EventDict) -> EventDict:
        event_dict.setdefault("process", self._process)
        return event_dict


_FIRST = ("timestamp", "level", "event", "process", "component", "job_id", "stage")


def order_keys(_logger: Any, _method: str, event_dict: EventDict) -> EventDict:
    """The common keys first, in a fixed order, so that lines read alike."""
    first = {k: event_dict.pop(k) for k in _FIRST if k in event_dict}
    first.update(event_dict)
    return first


class LineWriter:
    """structlog logger that writes each line with one ``os.write`` on a raw descriptor.

    The serve process, its workers, forwarder, scrubber and sink share one stderr. A buffered
    stream writes a long line in pieces, and pieces of two processes interleave (lines holding
    two objects). One ``write(2)`` per line does not: it is atomic on a file opened for
    appending, and on a pipe for lines up to ``PIPE_BUF`` (4096 bytes). A write that fails
    (a closed pipe, a full disk) drops the line: logging never breaks its caller.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def msg(self, message: str) -> None:
        data = memoryview((message + "\n").encode("utf-8", "backslashreplace"))
        try:
            while data:  # a write cut short (by a signal) carries on with the rest
                data = data[os.write(self._fd, data):]
        except OSError:
            return

    log = debug = info = warning = warn = error = err = critical = exception = fatal = msg


def _logger_factory(stream: TextIO | None) -> Any:
    """One :class:`LineWriter` on stderr's descriptor; a given stream (tests), or a stderr
    without a descriptor, is written through structlog's PrintLogger."""
    if stream is None:
        try:
            fd = sys.stderr.fileno()
        except (AttributeError, ValueError, OSError):
            return structlog.PrintLoggerFactory(file=sys.stderr)
        writer = LineWriter(fd)
        return lambda *_args: writer
    return structlog.PrintLoggerFactory(file=stream)


def _renderer(settings: LogSettings) -> structlog.typing.Processor:
    if settings.format == "json":
        return structlog.processors.JSONRenderer(sort_keys=False)
    return structlog.dev.ConsoleRenderer(colors=False)


def processors(settings: LogSettings, process: str) -> list[structlog.typing.Processor]:
    """The processor chain of every gateway log line (redaction before rendering)."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        AddProcess(process),
        redact_exceptions,
        order_keys,
        _renderer(settings),
    ]


def _configure_stdlib(level: int) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(LibraryRecordHandler())
    root.setLevel(level)
    for name in CHATTY_LIBRARIES:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    logging.captureWarnings(False)
    warnings.showwarning = WarningReporter()
    # "always": the reporter deduplicates by place; the default action would also remember
    # every distinct text (one per offending value) in the warning module's registry.
    warnings.filterwarnings("always", category=UserWarning)


def configure_logging(
    settings: LogSettings, process: str = "serve", stream: TextIO | None = None
) -> None:
    """Set up structlog, the standard library's logging and the excepthooks for this process
    (call once per process, before anything logs)."""
    from pynetdicom import _config

    _config.LOG_REQUEST_IDENTIFIERS = False
    _config.LOG_RESPONSE_IDENTIFIERS = False
    level = _LEVELS[settings.level]
    structlog.configure(
        processors=processors(settings, process),
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=_logger_factory(stream),
        cache_logger_on_first_use=True,
    )
    _configure_stdlib(level)
    sys.excepthook = _process_excepthook
    threading.excepthook = _thread_excepthook


def get_logger(name: str = "gateway") -> structlog.typing.FilteringBoundLogger:
    """A logger whose lines carry ``component=name`` (lazy: usable before configuration)."""
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(component=name)
    return logger
