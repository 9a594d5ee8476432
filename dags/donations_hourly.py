"""
### donations_hourly

Every hour: extract new and changed gifts from every configured donation platform, stage and
standardize them in Postgres, resolve donor identities, gate by consent and suppression, push to
every CRM and email platform, trigger stewardship journeys, and record the run's metrics.

**Incremental.** Windows come from per-source watermarks in `sync.watermarks`, not from the
schedule, so a late or re-run hour reads exactly what it has not read yet.

**Stages live today:** `open_run` → in parallel, into `raw` through COPY: `extract_stripe`,
`extract_donorbox`, `extract_classy` (from each stream's watermark minus its overlap; Stripe's
customers, charges, payment intents, refunds and events; Donorbox donations re-scanning a 30-day
trailing window; Classy transactions by `updated_at`), `extract_csv_drop` (CSV exports in the
`csv_drop` folder whose size has settled, each file once, then archived; docs/csv-drops.md) and
`drain_webhook_inbox` (events the webhook receiver stored; docs/webhooks.md) → `standardize`
(names, emails, phones, addresses, amounts, UTM into `staging`; what breaks a rule goes to
`staging.quarantine` with every reason, and every raw record of the run must be accounted for as
staged, quarantined or skipped, else the task fails; docs/standardize-rules.md) → `resolve`
(staged donors matched to golden donors in `core`: same id or email, else scored by the dedup
rules and merged, queued for review in `sync.review_queue` or linked as a household;
docs/dedup-rules.md, docs/survivorship.md; staged gifts folded into one core gift per
cross-platform gift key; the touched donors' giving aggregates refreshed) → per CRM,
`queue_<destination>` (the changed donors, households, plans and gifts rendered by the
destination's mapping, include/mappings/destinations/, docs/field-mappings.md; only records whose
payload changed since the last push enter `sync.outbox`; a run that would remove or overwrite
more than the configured share stops and alerts unless `approve_blast_radius` is set) →
`push_<destination>` (Salesforce: sObject Collections, Bulk API 2.0 above 2,000 records;
HubSpot: batch upserts and associations; per-record retry ladder, dead letters in
`sync.dead_letters`, circuit breaker alerts to Slack) → `close_run`
(advances the watermarks of a successful run and logs the summary: records read per source,
staged, quarantined, merged, pushed per destination, dead-lettered; also in `sync.run_metrics`).
The consent gate (issue 7) and the email platforms (issue 8) are wired in as they land.
`dry_run` plans every destination without writing the outbox or calling a vendor.

**Alerts.** A task that fails after the retry ladder (1m, 5m, 15m, 1h, 4h, 24h) posts to the
`slack_alerts` connection; a run that has not succeeded 50 minutes after it was queued posts a
deadline alert there too.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, CronTriggerTimetable, Param

from donor_sync.observability.notifiers import deadline_alert
from donor_sync.operators.csv_tasks import extract_csv_task
from donor_sync.operators.dag_defaults import START_DATE, default_args
from donor_sync.operators.delivery_tasks import DESTINATION_POOLS, push_task, queue_task
from donor_sync.operators.extract_tasks import API_SOURCES, extract_source_task
from donor_sync.operators.resolve_tasks import resolve_task
from donor_sync.operators.run_tasks import close_run_task, mark_run_failed, open_run_task
from donor_sync.operators.standardize_tasks import standardize_task
from donor_sync.operators.webhook_tasks import drain_webhooks_task

with DAG(
    dag_id="donations_hourly",
    description="Gifts from donation platforms into CRMs and email platforms, every hour",
    schedule=CronTriggerTimetable("5 * * * *", timezone="UTC"),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=default_args(execution_timeout=timedelta(minutes=40)),
    dagrun_timeout=timedelta(hours=2),
    tags=["donor-sync", "gifts", "hourly"],
    doc_md=__doc__,
    on_failure_callback=mark_run_failed,
    deadline=deadline_alert(
        timedelta(minutes=50), "this hour's gifts have not all reached the CRMs and email platforms"
    ),
    params={
        "dry_run": Param(
            False,
            type="boolean",
            title="Dry run",
            description="Plan each destination's creates, updates and deletes without queueing or pushing "
            "(see the run's plan metrics and `donor-sync outbox plan`).",
        ),
        "approve_blast_radius": Param(
            False,
            type="boolean",
            title="Approve a large change",
            description="Let a run that would delete, archive or overwrite more than a destination's "
            "configured share of its records go ahead (audited).",
        ),
    },
):
    sync_run = open_run_task()
    extracted = [
        *(
            extract_source_task.override(task_id=f"extract_{source}")(sync_run, source)
            for source in API_SOURCES
        ),
        extract_csv_task.override(task_id="extract_csv_drop")(sync_run),
        drain_webhooks_task.override(task_id="drain_webhook_inbox")(sync_run),
    ]
    standardized = standardize_task.override(task_id="standardize")(sync_run)
    resolved = resolve_task.override(task_id="resolve")(sync_run)
    closed = close_run_task(sync_run)
    extracted >> standardized >> resolved
    for destination, pool in DESTINATION_POOLS.items():
        queued = queue_task.override(task_id=f"queue_{destination}")(sync_run, destination)
        pushed = push_task.override(task_id=f"push_{destination}", pool=pool)(sync_run, destination)
        resolved >> queued >> pushed >> closed
