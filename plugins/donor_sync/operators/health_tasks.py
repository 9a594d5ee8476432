"""The health check at the end of every DAG run: record the run's health figures, then judge them.

``check_health`` runs whatever became of the run's other tasks (``trigger_rule`` all_done), so a
run whose push failed still records its latency, quota, breaker states, dead letters and data
quality scorecard (:func:`donor_sync.observability.metrics.collect_run_health`), and the alert
rules are evaluated over them (:func:`donor_sync.operators.alert_tasks.check_alerts`): Slack gets
one message per incident opened or resolved. A problem recording the figures never hides an
alert: the alert check runs anyway, then the task fails and says why.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from uuid import UUID

from airflow.sdk import task

log = logging.getLogger(__name__)


def check_health(sync_run_id: str, *, task_id: str = "check_health") -> str:
    """Record the run's health figures and evaluate the alert rules; return the health summary."""
    from donor_sync.db import connect
    from donor_sync.hooks.staging_db import StagingDbHook
    from donor_sync.observability.metrics import collect_run_health, format_health
    from donor_sync.operators.alert_tasks import check_alerts

    failure: Exception | None = None
    summary = ""
    with connect(StagingDbHook().conninfo()) as conn:
        try:
            summary = format_health(collect_run_health(conn, UUID(sync_run_id), task_id=task_id))
        except Exception as exc:  # judged below, after the alerts had their say
            conn.rollback()
            failure = exc
            log.warning("health figures of run %s not all recorded (%s)", sync_run_id, type(exc).__name__)
        report = check_alerts(conn, sync_run_id)
    log.info("alerts: %s", report.summary())
    if report.delivery.error:
        log.warning(
            "Slack did not take every message (%s); the next check sends the rest", report.delivery.error
        )
    if failure is not None:
        raise failure
    return summary


@task(task_id="check_health", trigger_rule="all_done", execution_timeout=timedelta(minutes=5))
def check_health_task(sync_run_id: str) -> str:
    """Airflow task: record this run's health figures and alert on what crossed a threshold."""
    summary = check_health(sync_run_id)
    log.info("run health:\n%s", summary)
    return sync_run_id
