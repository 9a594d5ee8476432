"""Structured logs: every line carries the ids of the run and record at hand, never PII or a secret.

* :mod:`.context` -- the ids (sync run, Airflow dag/task/run, destination, source, batch) bound
  for a task, a batch or a command, in :mod:`structlog.contextvars`. Airflow 3's task log
  handler merges those into every line of the task log, donor-sync's and Airflow's own.
* :mod:`.redact` -- the safety net: emails and phone numbers in a donor_sync message become keyed
  hash tags (``email#1a2b3c4d``), known secrets become ``***``. Leaks are fixed where they are
  logged; this only catches the ones nobody has found yet.
* :mod:`.formatting` -- one JSON object per line (``DONOR_SYNC_LOG_FORMAT=json``) or text with the
  ids appended.
* :mod:`.setup` -- :func:`install` (the safety net and ids on the ``donor_sync`` logger; the
  operators package calls it) and :func:`configure` (the command line's handler).
"""

from __future__ import annotations

from donor_sync.observability.logging.context import (
    LOG_IDS,
    ContextFilter,
    bind,
    bind_task_context,
    bound,
    current_ids,
)
from donor_sync.observability.logging.formatting import JsonFormatter, TextFormatter
from donor_sync.observability.logging.redact import (
    RedactingFilter,
    redact_text,
    register_secret,
)
from donor_sync.observability.logging.setup import (
    LOG_FORMAT_ENV,
    QUIET_LOGGERS,
    configure,
    install,
)

__all__ = [
    "LOG_FORMAT_ENV",
    "LOG_IDS",
    "QUIET_LOGGERS",
    "ContextFilter",
    "JsonFormatter",
    "RedactingFilter",
    "TextFormatter",
    "bind",
    "bind_task_context",
    "bound",
    "configure",
    "current_ids",
    "install",
    "redact_text",
    "register_secret",
]
