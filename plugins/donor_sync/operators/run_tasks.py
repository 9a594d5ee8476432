"""Task callables that open and close a run's bookkeeping; each is a few lines over the library.

Database code is imported inside the callables so that parsing a DAG stays cheap.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any
from uuid import UUID

from airflow.sdk import task

log = logging.getLogger(__name__)


def open_run(context: Mapping[str, Any]) -> str:
    """Record the DAG run in ``sync.runs`` (and any configuration change) and return the run id.

    It also marks abandoned the extraction batches that killed tasks of ended runs left
    'extracting' (:func:`donor_sync.sources.raw_landing.abandon_orphaned_batches`).
    """
    from donor_sync.db import connect
    from donor_sync.hooks.staging_db import StagingDbHook
    from donor_sync.observability import runs
    from donor_sync.observability.config_audit import record_config_changes

    dag_run = context["dag_run"]
    with connect(StagingDbHook().conninfo()) as conn:
        run_id = runs.open_run(
            conn,
            dag_id=dag_run.dag_id,
            airflow_run_id=dag_run.run_id,
            run_type=run_type_of(dag_run),
            logical_date=context.get("logical_date"),  # None for manual runs in Airflow 3
            params=context.get("params"),
        )
        # Which configuration this run works with: a change since the last run is audited.
        record_config_changes(conn, actor=f"dag:{dag_run.dag_id}.open_run", run_id=run_id)
        conn.commit()
        _abandon_orphaned_batches(conn)
    return str(run_id)


def _abandon_orphaned_batches(conn: Any) -> None:
    """Mark abandoned the extraction batches killed tasks of ended runs left 'extracting'.

    Housekeeping: never fails the run it opens (a problem is logged; the next open_run tries again).
    """
    from donor_sync.sources.raw_landing import abandon_orphaned_batches

    try:
        abandon_orphaned_batches(conn)
    except Exception as exc:
        conn.rollback()
        log.warning("extraction batches left 'extracting' not swept (%s)", type(exc).__name__)


def run_type_of(dag_run: Any) -> str:
    """Return the run's type as ``sync.runs`` records it (Airflow's DagRunType value)."""
    value = str(getattr(dag_run.run_type, "value", dag_run.run_type)).lower()
    return value if value in {"scheduled", "manual", "backfill", "asset_triggered"} else "manual"


def close_run(sync_run_id: str) -> str:
    """Advance the run's watermarks, mark it successful, and return its summary (shown in the log)."""
    from donor_sync.db import connect
    from donor_sync.hooks.staging_db import StagingDbHook
    from donor_sync.observability import runs
    from donor_sync.sources.watermarks import advance_from_run

    with connect(StagingDbHook().conninfo()) as conn:
        summary = runs.load_summary(conn, UUID(sync_run_id))  # fails before the run is marked done
        # Only a successful run moves watermarks; one commit with the run's status, so a worker
        # killed here leaves neither (the retry closes the run again).
        advance_from_run(conn, UUID(sync_run_id), commit=False)
        finished_at = runs.close_run(conn, UUID(sync_run_id), status="success")
        _resolve_missed_deadline(conn, summary.dag_id, sync_run_id)
    return runs.format_summary(replace(summary, status="success", finished_at=finished_at))


def _resolve_missed_deadline(conn: Any, dag_id: str, sync_run_id: str) -> None:
    """A run that succeeded ends the DAG's missed-deadline incident, if one is open (Slack is told).

    Never fails the run it closes: a problem is logged and the next alert check posts what is owed.
    """
    from donor_sync.operators.alert_tasks import resolve_deadline

    try:
        resolve_deadline(conn, dag_id, sync_run_id)
    except Exception as exc:
        conn.rollback()
        log.warning(
            "missed-deadline incident of %s left to the next alert check (%s)", dag_id, type(exc).__name__
        )


def mark_run_failed(context: Mapping[str, Any]) -> None:
    """DAG-level ``on_failure_callback``: record the failed run in ``sync.runs``.

    Without it a run whose task failed would stay 'running' there, since ``close_run`` never ran.
    """
    from donor_sync.db import connect
    from donor_sync.hooks.staging_db import StagingDbHook
    from donor_sync.observability import runs

    dag_run = context["dag_run"]
    with connect(StagingDbHook().conninfo()) as conn:
        runs.fail_run(conn, dag_id=dag_run.dag_id, airflow_run_id=dag_run.run_id)


@task(task_id="open_run", execution_timeout=timedelta(minutes=2))
def open_run_task(**context: Any) -> str:
    """Airflow task: open the run's bookkeeping (first task of every donor-sync DAG)."""
    return open_run(context)


@task(task_id="close_run", execution_timeout=timedelta(minutes=2))
def close_run_task(sync_run_id: str) -> str:
    """Airflow task: close the run's bookkeeping and log its summary (last task of every DAG)."""
    return close_run(sync_run_id)
