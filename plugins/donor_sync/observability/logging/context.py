"""The ids a log line carries, bound once for a task, a batch or a command.

They live in :mod:`structlog.contextvars`, the store Airflow 3 itself binds ``ti_id``, ``dag_id``,
``task_id``, ``run_id``, ``try_number`` and ``map_index`` into when a worker starts a task. Its
task log handler (a ``structlog.stdlib.ProcessorFormatter`` on the root logger) merges that store
into every record, the standard library's included, so whatever is bound here appears as a key of
each JSON line of the task log. Attributes a :class:`logging.Filter` sets on a record and ``extra=``
values do *not*: that formatter keeps only the message. Bind ids; do not pass them as ``extra=``
when they must reach the Airflow UI.

Only ids are bound (the names in :data:`LOG_IDS`, or ending in ``_id``): a value bound here is
printed on every line that follows, so it must never be a name, an email or anything else a
person could be recognised by.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import Iterator, Mapping
from typing import Any
from uuid import UUID

import structlog.contextvars

#: The ids donor-sync binds, in the order a JSON line shows them.
LOG_IDS: tuple[str, ...] = (
    "sync_run_id",
    "dag_id",
    "task_id",
    "run_id",
    "map_index",
    "try_number",
    "destination",
    "source",
    "batch_id",
    "request_id",
    "command",
)
#: Task arguments :func:`bind_task_context` binds when a task takes them.
TASK_ARGUMENT_IDS: tuple[str, ...] = ("sync_run_id", "destination", "source", "batch_id")

Scalar = str | int | float | bool


def _check(name: str, value: object) -> Scalar | None:
    if name not in LOG_IDS and not name.endswith("_id"):
        raise ValueError(f"log context: {name!r} is not an id (bind {', '.join(LOG_IDS)} or *_id)")
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, UUID):
        return str(value)
    raise TypeError(f"log context: {name} must be a str, number or UUID, not {type(value).__name__}")


def bind(**ids: object) -> None:
    """Bind ids to every log line that follows in this context (thread, task); ``None`` unbinds."""
    checked = {name: _check(name, value) for name, value in ids.items()}
    structlog.contextvars.unbind_contextvars(*(n for n, v in checked.items() if v is None))
    structlog.contextvars.bind_contextvars(**{n: v for n, v in checked.items() if v is not None})


@contextlib.contextmanager
def bound(**ids: object) -> Iterator[None]:
    """Bind ids for the ``with`` block, then restore what was bound before.

    ``with bound(batch_id=batch.id): ...`` puts the batch on every line logged inside, the
    Airflow task log's included.
    """
    checked = {name: _check(name, value) for name, value in ids.items()}
    before = structlog.contextvars.get_contextvars()
    bind(**checked)
    try:
        yield
    finally:
        structlog.contextvars.unbind_contextvars(*checked)
        structlog.contextvars.bind_contextvars(**{n: before[n] for n in checked if n in before})


def current_ids() -> dict[str, Any]:
    """Return the ids bound in this context (Airflow's own, in a task, included)."""
    return structlog.contextvars.get_contextvars()


def bind_task_context(context: Mapping[str, Any]) -> None:
    """Bind an Airflow task's ids: ``on_execute_callback`` of every donor-sync task.

    Binds ``dag_id``, ``task_id``, ``run_id``, ``map_index`` and ``try_number`` (a worker has
    bound them already; ``dag.test()`` has not) and, from the task's arguments, its
    ``sync_run_id``, ``destination``, ``source`` and ``batch_id``. Airflow runs the callback just
    before ``execute`` and copies the context into it, so every line the task logs carries them.
    Values of any other type are left out, so the callback cannot fail a task.
    """
    ti = context.get("ti") or context.get("task_instance")
    ids: dict[str, object] = dict.fromkeys(TASK_ARGUMENT_IDS)
    for name in ("dag_id", "task_id", "run_id", "map_index", "try_number"):
        value = getattr(ti, name, None)
        ids[name] = value if isinstance(value, str | int) else None
    arguments = _task_arguments(context.get("task"))
    for name in TASK_ARGUMENT_IDS:
        value = arguments.get(name)
        if isinstance(value, str | int | UUID):
            ids[name] = value
    bind(**ids)


class ContextFilter(logging.Filter):
    """Copy the bound ids onto each record as attributes (for :class:`~.formatting.JsonFormatter`).

    An attribute the record already has (an ``extra=`` value) wins over the bound one.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Add the ids; never drops a record."""
        for name, value in structlog.contextvars.get_contextvars().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


def _task_arguments(task: Any) -> dict[str, Any]:
    """Return a ``@task`` function's arguments by name, as rendered for this run (``{}`` otherwise)."""
    function = getattr(task, "python_callable", None)
    if function is None:
        return {}
    args = getattr(task, "op_args", None) or ()
    kwargs = getattr(task, "op_kwargs", None) or {}
    try:
        return dict(inspect.signature(function).bind_partial(*args, **kwargs).arguments)
    except (TypeError, ValueError):
        return {}
