"""Delivery tasks: queue each destination's changed records in the outbox, then push them.

A few lines over :mod:`donor_sync.delivery.run`. One queue task and one push task per
destination, so each vendor's push runs in its own pool (``salesforce_api``, ``hubspot_api``)
and a retried push does not recompute the outbox. DAG params (donations_hourly):

* ``dry_run``: the queue task computes and records the plan (creates, updates, deletes per
  entity) without writing the outbox, and the push task does nothing.
* ``approve_blast_radius``: let a run that would remove or overwrite more than a destination's
  configured share go ahead (audited); without it such a run stops before writing and alerts.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from airflow.sdk import get_current_context, task

from donor_sync.delivery.contracts import BRAZE, HUBSPOT, MAILCHIMP, SALESFORCE

log = logging.getLogger(__name__)

#: Destinations donations_hourly delivers to, with the pool that bounds each vendor's concurrency.
DESTINATION_POOLS: dict[str, str] = {
    SALESFORCE: "salesforce_api",
    HUBSPOT: "hubspot_api",
    MAILCHIMP: "mailchimp_api",
    BRAZE: "braze_api",
}
#: A push leaves what it has not claimed by then for the next run (the DAG's deadline is 50 min).
PUSH_BUDGET = timedelta(minutes=30)


def connector_for(destination: str) -> Any:
    """Return the connector of ``destination`` from its Airflow connection, deprecations to Slack."""
    from donor_sync.hooks.destinations import connector_for as build

    return build(destination, on_deprecation=_deprecation_alert(destination))


def _deprecation_alert(destination: str) -> Any:
    seen: set[str] = set()

    def alert(*args: Any, **kwargs: Any) -> None:
        from donor_sync.observability.alerts import send_alert

        what = " ".join(str(a) for a in args) or str(kwargs)
        if what in seen:
            return
        seen.add(what)
        send_alert(f":warning: *{destination}* API deprecation signal: {what[:300]}")

    return alert


def _enabled(destination: str) -> bool:
    """False (and logged) for a destination delivery.yaml disables: its tasks do nothing."""
    from donor_sync.delivery.settings import destination_enabled

    if destination_enabled(destination):
        return True
    log.info("%s is disabled in include/mappings/delivery.yaml: nothing to do", destination)
    return False


def _params() -> dict[str, Any]:
    context = get_current_context()
    return dict(context.get("params") or {})


@task(pool="staging_db")
def queue_task(sync_run_id: str, destination: str) -> str:
    """Airflow task: queue (or, in a dry run, plan) the destination's changed records."""
    from airflow.exceptions import AirflowFailException

    from donor_sync.db import connect
    from donor_sync.delivery import run as delivery
    from donor_sync.delivery.outbox import BlastRadiusExceeded
    from donor_sync.hooks.staging_db import StagingDbHook
    from donor_sync.observability.alerts import send_alert

    if not _enabled(destination):
        return sync_run_id
    params = _params()
    run_id = UUID(sync_run_id)
    with connect(StagingDbHook().conninfo()) as conn:
        if params.get("dry_run"):
            _, summary = delivery.plan(conn, destination, run_id=run_id)
            log.info("dry run %s: %s", destination, summary)
            return sync_run_id
        try:
            report = delivery.queue(
                conn,
                destination,
                run_id=run_id,
                actor=f"dag:donations_hourly.queue_{destination}",
                approved=bool(params.get("approve_blast_radius")),
            )
        except BlastRadiusExceeded as exc:
            send_alert(
                f":octagonal_sign: *{destination}*: blast-radius guard stopped run `{sync_run_id}` before it "
                f"wrote anything: {exc.verdict.describe()}. Re-run with `approve_blast_radius` if intended."
            )
            # Retrying cannot change the verdict: fail now, without the ladder.
            raise AirflowFailException(str(exc)) from None
    log.info("queued %s for %s (%s unchanged)", report.queued, destination, report.unchanged)
    return sync_run_id


@task
def push_task(sync_run_id: str, destination: str) -> str:
    """Airflow task: push the destination's due outbox rows; alert when its circuit opens or closes."""
    from donor_sync.db import connect
    from donor_sync.delivery import run as delivery
    from donor_sync.hooks.staging_db import StagingDbHook

    if not _enabled(destination):
        return sync_run_id
    if _params().get("dry_run"):
        log.info("dry run: nothing pushed to %s", destination)
        return sync_run_id
    context = get_current_context()
    ti = context["ti"]
    worker = f"{ti.dag_id}.{ti.task_id}.{ti.run_id}.{ti.try_number}"
    with connect(StagingDbHook().conninfo()) as conn:
        if not delivery.has_due_work(conn, destination):
            log.info("nothing due for %s", destination)
            delivery.record_idle_push(conn, destination, run_id=UUID(sync_run_id))
            return sync_run_id
        report = delivery.push(
            conn,
            connector_for(destination),
            run_id=UUID(sync_run_id),
            worker_id=worker,
            deadline=datetime.now(UTC) + PUSH_BUDGET,
        )
        if report.transitions:  # the circuit_open incident: one message when it opens, one when it closes
            from donor_sync.operators.alert_tasks import alert_circuit_changes

            alert_circuit_changes(conn, sync_run_id)
    return sync_run_id
