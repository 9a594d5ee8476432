"""
### donors_nightly

Every night: reconcile with each CRM (pull staff edits and conflicts back, report drift), run the
full deduplication pass and fill the review queue, compute the data quality scorecard, and purge
or pseudonymize what the retention policies say has expired.

**Stages live today:** `open_run` → `refit_match_weights` (the match weights refitted from the
review queue's decisions once at least 20 are decided and some are new; `donor-sync review refit`
by hand) → `close_run`. The reconcile, scorecard and retention stages are wired in between as
they land.

**Alerts.** Task failures after the retry ladder and a run not done by 06:00 UTC (four hours after
it was queued) go to the `slack_alerts` connection.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, CronTriggerTimetable

from donor_sync.observability.notifiers import deadline_alert
from donor_sync.operators.dag_defaults import START_DATE, default_args
from donor_sync.operators.resolve_tasks import refit_match_weights_task
from donor_sync.operators.run_tasks import close_run_task, mark_run_failed, open_run_task

with DAG(
    dag_id="donors_nightly",
    description="CRM reconciliation, full dedup pass, data quality scorecard, retention purge",
    schedule=CronTriggerTimetable("0 2 * * *", timezone="UTC"),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=default_args(execution_timeout=timedelta(hours=2)),
    dagrun_timeout=timedelta(hours=6),
    tags=["donor-sync", "donors", "nightly"],
    doc_md=__doc__,
    on_failure_callback=mark_run_failed,
    deadline=deadline_alert(timedelta(hours=4), "the nightly reconcile, dedup and retention pass is late"),
):
    close_run_task(refit_match_weights_task(open_run_task()))
