"""Run bookkeeping in ``sync.runs`` and ``sync.run_metrics``, and the run summary people read.

Plain Python over psycopg: the DAGs' first and last tasks call it, and so do the CLI and demo.
Every figure in a summary is read back from the metrics the stages recorded; nothing is derived
or filled in.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg

#: The order stages appear in a summary, with the metrics people look for first.
SUMMARY_LAYOUT: tuple[tuple[str, str, str], ...] = (
    ("extract", "read", "records read per source"),
    ("extract", "loaded", "new or changed (landed in raw)"),
    ("standardize", "staged", "staged"),
    ("standardize", "quarantined", "quarantined"),
    ("standardize", "skipped", "skipped, each with its reason"),
    ("resolve", "merged", "merged (duplicates found)"),
    ("push", "pushed", "pushed per destination"),
    ("push", "dead_lettered", "dead-lettered"),
)


@dataclass(frozen=True)
class Metric:
    """One recorded figure."""

    stage: str
    scope: str
    metric: str
    value: Decimal
    unit: str


@dataclass(frozen=True)
class RunSummary:
    """A run and every metric its stages recorded."""

    run_id: UUID
    dag_id: str
    airflow_run_id: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    metrics: list[Metric] = field(default_factory=list)

    def values(self, stage: str, metric: str) -> dict[str, Decimal]:
        """Return ``{scope: value}`` for one stage's metric, summed over parts."""
        totals: dict[str, Decimal] = {}
        for m in self.metrics:
            if m.stage == stage and m.metric == metric:
                totals[m.scope] = totals.get(m.scope, Decimal(0)) + m.value
        return totals


RUN_TYPES = frozenset({"scheduled", "manual", "backfill", "asset_triggered", "cli", "test"})


def open_run(
    conn: psycopg.Connection,
    *,
    dag_id: str,
    airflow_run_id: str | None,
    run_type: str = "manual",
    logical_date: datetime | None = None,
    params: Mapping[str, Any] | None = None,
) -> UUID:
    """Record that a run started and return its id; a retried call for the same run returns the same id.

    :param run_type: Airflow's run type (scheduled, manual, backfill, asset_triggered) or cli/test.
    :param logical_date: None for manual runs, which have none in Airflow 3.
    :param params: the run's params; ``dry_run`` among them is also kept in its own column.
    """
    if run_type not in RUN_TYPES:
        raise ValueError(f"run_type must be one of {sorted(RUN_TYPES)}, got {run_type!r}")
    params = dict(params or {})
    row = conn.execute(
        """
        INSERT INTO sync.runs (dag_id, airflow_run_id, run_type, logical_date, dry_run, params, status)
        VALUES (%s, %s, %s, %s, %s, %s::jsonb, 'running')
        ON CONFLICT (dag_id, airflow_run_id) DO UPDATE SET status = 'running', finished_at = NULL
        RETURNING run_id
        """,
        (
            dag_id,
            airflow_run_id,
            run_type,
            logical_date,
            bool(params.get("dry_run", False)),
            json.dumps(params, default=str),
        ),
    ).fetchone()
    conn.commit()
    assert row is not None
    return UUID(str(row[0]))


def record_metric(
    conn: psycopg.Connection,
    run_id: UUID,
    *,
    stage: str,
    metric: str,
    value: int | float | Decimal,
    scope: str = "",
    part: str = "",
    unit: str = "records",
    task_id: str | None = None,
) -> None:
    """Record one figure for a run; recording it again (a retried task) replaces it.

    :param scope: the source or destination it is about; '' for the whole stage.
    :param part: the slice of a fanned-out task (map index, batch id); totals sum over parts.
    """
    conn.execute(
        """
        INSERT INTO sync.run_metrics (run_id, stage, scope, part, metric, value, unit, task_id)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (run_id, stage, scope, part, metric)
        DO UPDATE SET value = EXCLUDED.value, unit = EXCLUDED.unit, task_id = EXCLUDED.task_id,
                      recorded_at = now()
        """,
        (run_id, stage, scope, part, metric, value, unit, task_id),
    )
    conn.commit()


def close_run(conn: psycopg.Connection, run_id: UUID, *, status: str = "success") -> datetime:
    """Record that a run finished with ``status`` ('success', 'failed' or 'canceled'); return when."""
    if status not in {"success", "failed", "canceled"}:
        raise ValueError(f"run status must be 'success', 'failed' or 'canceled', got {status!r}")
    row = conn.execute(
        "UPDATE sync.runs SET status = %s, finished_at = now() WHERE run_id = %s RETURNING finished_at",
        (status, run_id),
    ).fetchone()
    conn.commit()
    if row is None:
        raise LookupError(f"no run {run_id} in sync.runs")
    finished_at: datetime = row[0]
    return finished_at


def fail_run(conn: psycopg.Connection, *, dag_id: str, airflow_run_id: str) -> bool:
    """Record that a still-running run failed (a DAG-level failure callback); return whether it was open."""
    updated = conn.execute(
        "UPDATE sync.runs SET status = 'failed', finished_at = now() "
        "WHERE dag_id = %s AND airflow_run_id = %s AND status = 'running'",
        (dag_id, airflow_run_id),
    ).rowcount
    conn.commit()
    return updated == 1


def load_summary(conn: psycopg.Connection, run_id: UUID) -> RunSummary:
    """Read a run and its metrics."""
    row = conn.execute(
        "SELECT run_id, dag_id, airflow_run_id, status, started_at, finished_at FROM sync.runs "
        "WHERE run_id = %s",
        (run_id,),
    ).fetchone()
    if row is None:
        raise LookupError(f"no run {run_id} in sync.runs")
    metrics = [
        Metric(*m)
        for m in conn.execute(
            "SELECT stage, scope, metric, value, unit FROM sync.run_metrics WHERE run_id = %s "
            "ORDER BY stage, metric, scope",
            (run_id,),
        ).fetchall()
    ]
    return RunSummary(UUID(str(row[0])), row[1], row[2], row[3], row[4], row[5], metrics)


def latest_run_id(conn: psycopg.Connection, dag_id: str) -> UUID | None:
    """Return the most recently started run of ``dag_id``, if any."""
    row = conn.execute(
        "SELECT run_id FROM sync.runs WHERE dag_id = %s ORDER BY started_at DESC LIMIT 1", (dag_id,)
    ).fetchone()
    return UUID(str(row[0])) if row else None


def _fmt(value: Decimal) -> str:
    return f"{int(value):,}" if value == value.to_integral_value() else f"{value:,.2f}"


def format_summary(summary: RunSummary) -> str:
    """Render a run summary for a terminal: each figure as recorded, or 'not recorded'."""
    took = ""
    if summary.finished_at:
        took = f" in {(summary.finished_at - summary.started_at).total_seconds():.1f}s"
    lines = [
        f"run {summary.airflow_run_id} of {summary.dag_id}: {summary.status}{took}",
    ]
    for stage, metric, label in SUMMARY_LAYOUT:
        values = summary.values(stage, metric)
        if not values:
            lines.append(f"  {label:<32} not recorded (no {stage} stage ran)")
        elif set(values) == {""}:
            lines.append(f"  {label:<32} {_fmt(values[''])}")
        else:
            lines.append(f"  {label:<32} {_fmt(sum(values.values(), Decimal(0)))}")
            lines.extend(f"    {scope:<30} {_fmt(value)}" for scope, value in sorted(values.items()))
    return "\n".join(lines)
