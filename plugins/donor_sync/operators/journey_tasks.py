"""Journeys task: decide who enters which stewardship journey and queue the triggers.

A few lines over :func:`donor_sync.journeys.decide`. It runs after ``resolve`` and before the
pushes, so this run's pushes carry the triggers it queued (each waits for the donor's member or
user record). DAG param ``dry_run``: plan only (:func:`donor_sync.journeys.plan`), nothing written
but the run's metrics (``planned_*``).
"""

from __future__ import annotations

import logging
from uuid import UUID

from airflow.sdk import get_current_context, task

log = logging.getLogger(__name__)


@task(pool="staging_db")
def journeys_task(sync_run_id: str) -> str:
    """Airflow task: enroll this run's gifts in their journeys (suppressed ones with a reason code),
    queue the triggers, and record counts per status and reason."""
    from donor_sync.db import connect
    from donor_sync.hooks.staging_db import StagingDbHook
    from donor_sync.journeys import decide
    from donor_sync.observability.runs import record_metric
    from donor_sync.operators.privacy_tasks import privacy_keys

    params = dict(get_current_context().get("params") or {})
    dry_run = bool(params.get("dry_run"))
    run_id = UUID(sync_run_id)
    with connect(StagingDbHook().conninfo()) as conn:
        report = decide(conn, keys=privacy_keys(), run_id=run_id, dry_run=dry_run)
        prefix = "planned_" if dry_run else ""
        figures: dict[str, int] = {f"entries_{k}": v for k, v in report.totals().items()}
        for entry in report.entries:
            if entry.reason_code and entry.status in ("suppressed", "capped"):
                name = f"suppressed_{entry.reason_code}"
                figures[name] = figures.get(name, 0) + 1
        figures["triggers_queued"] = report.triggers_queued
        for metric, value in figures.items():
            record_metric(
                conn, run_id, stage="journeys", metric=prefix + metric, value=value, task_id="journeys"
            )
    log.info("%s", report.summary())
    return sync_run_id
