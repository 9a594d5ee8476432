"""The alert check of every DAG run, and the Slack glue other tasks use to keep incidents.

``check_alerts_task`` runs near the end of a run, whatever became of it (``trigger_rule``
all_done), and is a few lines over :func:`donor_sync.observability.alerting.evaluate_and_notify`:
the Slack sender is the ``slack_alerts`` webhook connection (429 answers waited out), the run
links use Airflow's ``[api] base_url``. Database and Airflow imports are inside the callables so
that parsing a DAG stays cheap.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import timedelta
from typing import TYPE_CHECKING
from uuid import UUID

from airflow.sdk import task

if TYPE_CHECKING:
    import psycopg

    from donor_sync.observability.alerting import AlertReport

log = logging.getLogger(__name__)


def check_alerts(
    conn: psycopg.Connection, sync_run_id: str | None, *, kinds: Collection[str] | None = None
) -> AlertReport:
    """Evaluate the alert rules for a run and post what changed to Slack; return the report."""
    from donor_sync.observability.alerting import evaluate_and_notify, load_alert_rules
    from donor_sync.observability.alerts import airflow_links, slack_sender

    rules = load_alert_rules()
    return evaluate_and_notify(
        conn,
        run_id=UUID(sync_run_id) if sync_run_id else None,
        send=slack_sender(),
        links=airflow_links(rules),
        rules=rules,
        kinds=kinds,
    )


def alert_circuit_changes(conn: psycopg.Connection, sync_run_id: str) -> None:
    """After a push changed a circuit breaker: open or resolve its ``circuit_open`` incident now.

    Never fails the push that called it: a problem is logged, and the run's check_alerts task
    (or the next one) evaluates the breakers again.
    """
    from donor_sync.observability.alerting.rules import CIRCUIT_OPEN

    try:
        report = check_alerts(conn, sync_run_id, kinds={CIRCUIT_OPEN})
    except Exception as exc:
        conn.rollback()
        log.warning("circuit breaker alerts left to the alert check (%s)", type(exc).__name__)
        return
    log.info("circuit breaker alerts: %s", report.summary())


def resolve_deadline(conn: psycopg.Connection, dag_id: str, sync_run_id: str) -> bool:
    """Resolve the DAG's missed-deadline incident after a successful run, posting the resolution.

    For ``close_run`` (success only). A Slack failure leaves the resolution owed to the next check.
    """
    from donor_sync.observability.alerting import resolve_deadline_incident
    from donor_sync.observability.alerts import airflow_links, slack_sender

    return resolve_deadline_incident(conn, dag_id, sync_run_id, send=slack_sender(), links=airflow_links())


@task(task_id="check_alerts", trigger_rule="all_done", execution_timeout=timedelta(minutes=5))
def check_alerts_task(sync_run_id: str) -> str:
    """Airflow task: evaluate the threshold alerts for this run; Slack gets one message per change."""
    from donor_sync.db import connect
    from donor_sync.hooks.staging_db import StagingDbHook

    with connect(StagingDbHook().conninfo()) as conn:
        report = check_alerts(conn, sync_run_id)
    log.info("alerts: %s", report.summary())
    if report.delivery.error:
        log.warning(
            "Slack did not take every message (%s); the next check sends the rest", report.delivery.error
        )
    for observation in report.observations:
        if observation.breached:
            log.info("breached %s: %s", observation.key, observation.summary)
    return sync_run_id
