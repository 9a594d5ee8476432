"""The standardize stage of one sync run: which batches, standardize them, record metrics, reconcile.

Plain Python, called by the Airflow task (:mod:`donor_sync.operators.standardize_tasks`) and usable
from the CLI or a test. A retried run standardizes its own batches again (idempotent), so a
reconcile failure is retried on the same records rather than passing on an empty set.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import psycopg

from donor_sync.db.statistics import analyze_stale
from donor_sync.errors import DonorSyncError
from donor_sync.observability import runs
from donor_sync.standardize.pipeline import StandardizeResult, standardize_batches
from donor_sync.standardize.reconcile import Mismatch, reconcile
from donor_sync.standardize.settings import StandardizeSettings


class ReconcileError(DonorSyncError):
    """Standardized batches do not add up: some raw record has no disposition, or counts differ."""

    def __init__(self, mismatches: list[Mismatch]) -> None:
        """Keep the mismatches (ids and counts only)."""
        self.mismatches = mismatches
        shown = "; ".join(str(m) for m in mismatches[:5])
        more = f" (and {len(mismatches) - 5} more)" if len(mismatches) > 5 else ""
        super().__init__(f"standardized batches do not reconcile: {shown}{more}")


def batches_of_run(conn: psycopg.Connection, run_id: UUID) -> list[int]:
    """Return the batches a run standardizes.

    Its own loaded or standardized batches, earlier batches left 'loaded' (a failed run's), and
    batches standardized since the run started (adopted by an earlier attempt of this run).
    """
    rows = conn.execute(
        "SELECT b.batch_id FROM raw.batches b, sync.runs r WHERE r.run_id = %(run)s"
        " AND ((b.run_id = r.run_id AND b.status IN ('loaded', 'standardized'))"
        "      OR b.status = 'loaded'"
        "      OR (b.status = 'standardized' AND b.finished_at >= r.started_at))"
        " ORDER BY b.batch_id",
        {"run": run_id},
    ).fetchall()
    return [int(r[0]) for r in rows]


def standardize_run(
    conn: psycopg.Connection,
    run_id: UUID,
    *,
    settings: StandardizeSettings,
    now: datetime,
    task_id: str | None = None,
) -> StandardizeResult:
    """Standardize the run's batches, record staged/quarantined/skipped per source, and reconcile.

    :raises ReconcileError: when a batch does not add up (recorded as metric 'unreconciled' first).
    """
    batch_ids = batches_of_run(conn, run_id)
    result = standardize_batches(conn, batch_ids, settings=settings, now=now, actor=f"run:{run_id}")
    for source, figures in sorted(result.per_source().items()):
        for metric, value in figures.items():
            runs.record_metric(
                conn, run_id, stage="standardize", scope=source, metric=metric, value=value, task_id=task_id
            )
    mismatches = reconcile(conn, batch_ids)
    runs.record_metric(
        conn,
        run_id,
        stage="standardize",
        metric="unreconciled",
        value=len(mismatches),
        unit="count",
        task_id=task_id,
    )
    if mismatches:
        raise ReconcileError(mismatches)
    analyze_stale(conn)  # resolve reads these staged rows next
    return result
