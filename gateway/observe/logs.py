"""structlog configuration: JSON lines (or console) keyed by job id, never a patient value.

pynetdicom can log request identifiers and dataset summaries; those switches are turned off and
its logger is held at WARNING so that nothing it prints can echo an element value.
"""

from __future__ import annotations

import logging
import sys

import structlog

from gateway.config import LogSettings

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}


def configure_logging(settings: LogSettings, process: str = "serve") -> None:
    """Set up structlog for this process (call once per process)."""
    from pynetdicom import _config

    _config.LOG_REQUEST_IDENTIFIERS = False
    _config.LOG_RESPONSE_IDENTIFIERS = False
    level = _LEVELS[settings.level]
    logging.basicConfig(stream=sys.stderr, level=max(level, logging.WARNING), format="%(message)s")
    for name in ("pynetdicom", "pydicom"):
        logging.getLogger(name).setLevel(logging.ERROR)
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if settings.format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(process=process)


def get_logger(name: str = "gateway") -> structlog.typing.FilteringBoundLogger:
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name)
    return logger
