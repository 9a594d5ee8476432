"""How the command line writes log records: one JSON object per line, or text with the ids appended.

A record's ids are the ones bound in :mod:`.context` (copied onto it by
:class:`~.context.ContextFilter`) and its ``extra=`` values named like ids (``*_id``, ``*_ids``,
``*_key``, ``*_hash`` or one of :data:`~.context.LOG_IDS`). Other ``extra=`` values are left out:
a log line carries ids and hashes, not values.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from donor_sync.observability.logging.context import LOG_IDS

#: Attributes every LogRecord has; anything else on a record came from ``extra=`` or a filter.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}
_ID_SUFFIXES = ("_id", "_ids", "_key", "_hash")


def record_ids(record: logging.LogRecord) -> dict[str, Any]:
    """Return the record's ids: bound ones first in :data:`LOG_IDS` order, then its other ``*_id`` extras."""
    found = {
        name: value
        for name, value in record.__dict__.items()
        if name not in _STANDARD
        and not name.startswith("_")
        and (name in LOG_IDS or name.endswith(_ID_SUFFIXES))
    }
    ordered = {name: found.pop(name) for name in LOG_IDS if name in found}
    return {**ordered, **dict(sorted(found.items()))}


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, list | tuple | set | frozenset):
        return [_json_value(v) for v in value]
    return str(value)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``message``, the ids, ``exc``."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as one line of JSON."""
        document: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in record_ids(record).items():
            document.setdefault(name, _json_value(value))
        if record.exc_info:
            document["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            document["exc"] = record.exc_text
        if record.stack_info:
            document["stack"] = self.formatStack(record.stack_info)
        return json.dumps(document, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``<time> <LEVEL> <logger> [id=value ...]: <message>`` for people at a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        """Return the line, with the record's ids after the logger's name."""
        ids = " ".join(f"{name}={value}" for name, value in record_ids(record).items())
        where = f"{record.name} [{ids}]" if ids else record.name
        return f"{record.asctime} {record.levelname} {where}: {record.message}"
