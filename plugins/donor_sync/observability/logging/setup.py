"""Where the log filters go: :func:`install` for any process, :func:`configure` for the command line.

In an Airflow process the task log handler is Airflow's (structlog, see :mod:`.context`), so
:func:`install` only hangs a handler that writes nothing on the ``donor_sync`` logger: its
filters add the bound ids to each donor_sync record and clean it (:mod:`.redact`) before the
record propagates to the handlers that do write, Airflow's and pytest's included. The command
line also gets a handler of its own on the root logger, text or JSON (``--log-format``,
``$DONOR_SYNC_LOG_FORMAT``), with the same filters for every library's records.

Airflow's own task logs hold no donor data at DEBUG in a ``donations_hourly`` run (the scan test
reads them); the one third-party logger that did, urllib3's request lines, is held at INFO
(:data:`QUIET_LOGGERS`).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

from donor_sync.errors import ConfigError
from donor_sync.observability.logging.context import ContextFilter
from donor_sync.observability.logging.formatting import JsonFormatter, TextFormatter
from donor_sync.observability.logging.redact import RedactingFilter

LOG_FORMAT_ENV = "DONOR_SYNC_LOG_FORMAT"
LOG_FORMATS = ("text", "json")
LIBRARY_LOGGER = "donor_sync"
#: Third-party loggers held at a level (unless configured otherwise) because below it they would
#: print what donor-sync must not. urllib3 logs each request's URL at DEBUG, and a Salesforce SOQL
#: query travels in the URL: the erasers look contacts up ``WHERE Email IN (...)`` (the REST
#: query endpoint takes SOQL only as ``?q=``), so its DEBUG lines would hold the email.
QUIET_LOGGERS: dict[str, int] = {"urllib3.connectionpool": logging.INFO}


class _SafetyNet(logging.Handler):
    """Writes nothing itself: its filters clean each donor_sync record for the handlers above."""

    def emit(self, record: logging.LogRecord) -> None:
        """Stand in for logging's last resort when no handler above would write the record."""
        last_resort = logging.lastResort
        if (
            last_resort is not None
            and not logging.getLogger().handlers
            and record.levelno >= last_resort.level
        ):
            last_resort.handle(record)


class _ConsoleHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is at the time (click's test runner swaps it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        """Return the current standard error."""
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        """Ignore: the stream is always the current standard error."""


def install() -> None:
    """Put the ids and the safety net on every donor_sync record of this process (idempotent).

    Also holds each of :data:`QUIET_LOGGERS` at its level, unless its level was set already.
    """
    for name, floor in QUIET_LOGGERS.items():
        quiet = logging.getLogger(name)
        if quiet.level == logging.NOTSET:
            quiet.setLevel(floor)
    logger = logging.getLogger(LIBRARY_LOGGER)
    if any(isinstance(handler, _SafetyNet) for handler in logger.handlers):
        return
    net = _SafetyNet()
    net.addFilter(ContextFilter())
    net.addFilter(RedactingFilter())
    logger.addHandler(net)


def configure(*, level: int = logging.WARNING, log_format: str | None = None) -> logging.Handler:
    """Set up the command line's logging: one handler on the root logger, text or JSON.

    :param level: the least severe level written (the root logger is lowered to it if needed,
        never raised, so a host that wants more, e.g. pytest's ``caplog``, still gets it).
    :param log_format: ``text`` or ``json``; default ``$DONOR_SYNC_LOG_FORMAT``, else ``text``.
    :return: the handler (replacing the one an earlier call installed).
    :raises ConfigError: for an unknown format.
    """
    chosen = (log_format or os.environ.get(LOG_FORMAT_ENV) or "text").strip().lower()
    if chosen not in LOG_FORMATS:
        raise ConfigError(f"${LOG_FORMAT_ENV}: unknown log format {chosen!r}; use {' or '.join(LOG_FORMATS)}")
    install()
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _ConsoleHandler)]:
        root.removeHandler(old)
    handler = _ConsoleHandler()
    handler.setLevel(level)
    handler.setFormatter(JsonFormatter() if chosen == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactingFilter())
    root.addHandler(handler)
    if root.level > level:
        root.setLevel(level)
    return handler
