"""
### donors_nightly

Every night: reconcile with each CRM (pull staff edits and conflicts back, report drift), run the
full deduplication pass and fill the review queue, compute the data quality scorecard, and purge
or pseudonymize what the retention policies say has expired.

**Stages live today:** `open_run` → `reconcile_salesforce`, `reconcile_hubspot` (what staff
changed in each CRM since its watermark: the fields include/mappings/reconcile.yaml pulls --
do-not-contact, deceased, names, address corrections -- become the CRM record's attributes and
survivorship decides, so the CRM wins for staff-owned fields and the sources for gift data;
merges made in the CRM merge the donors in core, reversibly; values the golden record does not
take are counted as drift per field; then every record of the destination is recomputed into
the outbox, which repairs drift and mirrors removals at the next push) → `refit_match_weights`
(the match weights refitted from the review queue's decisions once at least 20 are decided and
some are new; `donor-sync review refit` by hand) → `retention_purge` (the policies in
include/mappings/privacy/retention.yaml: raw payloads, webhook bodies, CSV rows, closed quarantine,
resolved dead letters, lapsed donors' PII, push log, resolved alert incidents; each purge counted
and audited;
`donor-sync retention run --dry-run` shows what is due) → `expire_consent` (donors whose deciding
consent event expired get their state recomputed, audited) → `anchor_audit_log` (the audit log's
hash chain verified, its head anchored and the anchor printed to the task log: docs/audit.md) →
`close_run`. Consent opt-outs and do-not-contact flags staff set in a CRM come back during
reconcile as consent events and suppressions (docs/consent.md). The scorecard stage is
wired in between as it lands.

**Alerts.** Task failures after the retry ladder and a run not done by 06:00 UTC (four hours after
it was queued) go to the `slack_alerts` connection.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, CronTriggerTimetable

from donor_sync.observability.notifiers import deadline_alert
from donor_sync.operators.dag_defaults import START_DATE, default_args
from donor_sync.operators.health_tasks import check_health_task
from donor_sync.operators.privacy_tasks import anchor_audit_log_task, expire_consent_task
from donor_sync.operators.reconcile_tasks import CRM_POOLS, reconcile_task
from donor_sync.operators.resolve_tasks import refit_match_weights_task
from donor_sync.operators.retention_tasks import retention_purge_task
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
    sync_run = open_run_task()
    refit = refit_match_weights_task(sync_run)
    for destination, pool in CRM_POOLS.items():
        reconcile_task.override(task_id=f"reconcile_{destination}", pool=pool)(sync_run, destination) >> refit
    last = anchor_audit_log_task(expire_consent_task(retention_purge_task(refit)))
    # Whatever became of the run: record its health figures and judge the alert rules.
    last >> check_health_task(sync_run) >> close_run_task(last)
