"""
### privacy_requests

Every 30 minutes, and on demand: carry out donors' erasure, export and consent-change requests,
cascaded to every CRM and email platform with a receipt from each, and tombstone erased donors
(keyed hashes only) so they never come back.

Manual runs may name the requests to process (`request_ids`); requests themselves are recorded
in the staging database, so no donor's personal data ever passes through Airflow's params.

**Stages:** `open_run` → `process_requests` (each due request claimed alone, `FOR UPDATE SKIP
LOCKED`; erasures: freeze + tombstones, every destination's eraser with a receipt, then the local
purge of raw, staging, core and sync; exports: a 0600 JSON file under `.local/exports`; consent
changes recorded as consent events) → `push_events` (the `donor.erased` and `consent.changed`
events, signed, to each subscriber of include/mappings/events.yaml; the erasure's
`outbound_webhooks` receipt records the queued event) → `check_deadlines` (the
`erasure_deadline` incidents: one Slack message when a request comes within 7 days of its
deadline, one when it is overdue, one when it is done; docs/alerts.md) → `check_health` (the
run's health figures and every alert rule, whatever became of the run) → `close_run`. A failed
destination leaves its request `failed`; the next run retries only what is not done.
docs/erasure.md has the order and the runbook.

**Alerts.** Task failures after the retry ladder, and a run not done within two hours of being
queued, go to the `slack_alerts` connection.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, CronTriggerTimetable, Param

from donor_sync.observability.notifiers import deadline_alert
from donor_sync.operators.dag_defaults import START_DATE, default_args
from donor_sync.operators.event_tasks import push_events_task
from donor_sync.operators.health_tasks import check_health_task
from donor_sync.operators.privacy_tasks import check_deadlines_task, process_requests_task
from donor_sync.operators.run_tasks import close_run_task, mark_run_failed, open_run_task

with DAG(
    dag_id="privacy_requests",
    description="Erasure, export and consent-change requests cascaded to every system",
    schedule=CronTriggerTimetable("*/30 * * * *", timezone="UTC"),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=default_args(execution_timeout=timedelta(minutes=30)),
    dagrun_timeout=timedelta(hours=3),
    tags=["donor-sync", "privacy"],
    doc_md=__doc__,
    on_failure_callback=mark_run_failed,
    deadline=deadline_alert(timedelta(hours=2), "donors' privacy requests are waiting"),
    params={
        "request_ids": Param(
            [],
            type="array",
            items={"type": "string", "format": "uuid"},
            title="Request ids",
            description="Process only these requests (ids in the staging database); empty: all due.",
        ),
    },
):
    sync_run = open_run_task()
    processed = process_requests_task(sync_run)
    # donor.erased (and consent.changed) events reach the event subscribers in the same run.
    announced = push_events_task.override(task_id="push_events")(processed)
    deadlines = check_deadlines_task(announced)
    # Whatever became of the run: record its health figures and judge the alert rules.
    deadlines >> check_health_task(sync_run) >> close_run_task(deadlines)
