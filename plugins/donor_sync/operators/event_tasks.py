"""The events task of donations_hourly: push every subscriber's queued events.

Events are queued where their facts happen (resolve, merges, consent refreshes, erasures: see
:mod:`donor_sync.events.producers`); this task delivers what is due, one subscriber after
another, each with its own ladder, dead letters and circuit breaker. Events produced by other
DAGs (privacy_requests, donors_nightly) go out with the next hourly run.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from uuid import UUID

from airflow.sdk import get_current_context, task

log = logging.getLogger(__name__)

#: Budget of one run's event push (the DAG's deadline is 50 min).
EVENTS_BUDGET = timedelta(minutes=10)


@task(pool="outbound_webhooks")
def push_events_task(sync_run_id: str) -> str:
    """Airflow task: push every enabled subscriber's due events; alert on breaker changes."""
    from donor_sync.db import connect
    from donor_sync.errors import DonorSyncError
    from donor_sync.events.push import push_subscribers
    from donor_sync.hooks.events import subscriber_connector, subscriber_destinations
    from donor_sync.hooks.staging_db import StagingDbHook
    from donor_sync.operators.alert_tasks import alert_circuit_changes

    context = get_current_context()
    if (context.get("params") or {}).get("dry_run"):
        log.info("dry run: no events pushed")
        return sync_run_id
    ti = context["ti"]
    with connect(StagingDbHook().conninfo()) as conn:
        report = push_subscribers(
            conn,
            subscriber_destinations(),
            subscriber_connector,
            run_id=UUID(sync_run_id),
            worker_id=f"{ti.dag_id}.{ti.task_id}.{ti.run_id}.{ti.try_number}",
            deadline=datetime.now(UTC) + EVENTS_BUDGET,
        )
        if any(pushed.transitions for pushed in report.reports.values()):
            alert_circuit_changes(conn, sync_run_id)  # one message when a breaker opens, one when it closes
    for pushed in report.reports.values():
        log.info("%s", pushed.summary())
    if report.errors:
        raise DonorSyncError(
            "event push failed for " + ", ".join(f"{d} ({e})" for d, e in sorted(report.errors.items()))
        )
    return sync_run_id
