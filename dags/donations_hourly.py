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
cross-platform gift key; the touched donors' giving aggregates refreshed; consent signals from
the forms recorded as consent events) → `pull_mailchimp_unsubscribes`, `pull_braze_unsubscribes`
(unsubscribes, cleaned addresses and complaints made at the email platforms become consent
events and suppressions before that platform is queued) → `journeys` (stewardship journeys from
include/mappings/journeys.yaml: each gift enters a journey at most once, suppressed donors are
recorded with a reason, triggers queued for Mailchimp and Braze; docs/journeys.md) → per
destination, `queue_<destination>` (the changed donors, households, plans and gifts that the
consent and suppression gate lets through, minimized by the destination's privacy profile and
rendered by its mapping, include/mappings/destinations/, docs/field-mappings.md, docs/privacy.md;
only records whose payload changed since the last push enter `sync.outbox`; a run that would
remove or overwrite more than the configured share stops and alerts unless
`approve_blast_radius` is set) → `push_<destination>` (Salesforce: sObject Collections, Bulk API
2.0 above 2,000 records; HubSpot: batch upserts, associations and subscription statuses;
Mailchimp: batch member upserts, `/batches` for large volumes; Braze: `/users/track` and
subscription groups, paced by its rate-limit headers; per-record retry ladder, dead letters in
`sync.dead_letters`, circuit breaker alerts to Slack), and `push_events` (donation.created,
donation.refunded, donor.merged, consent.changed and donor.erased, signed, to each subscriber in
include/mappings/events.yaml; docs/events.md) → `close_run`
(advances the watermarks of a successful run and logs the summary: records read per source,
staged, quarantined, merged, pushed per destination, dead-lettered; also in `sync.run_metrics`).
`dry_run` plans every destination without writing the outbox or calling a vendor.

**One platform down.** A pull-back that fails at the vendor fails its task at once (no ladder):
that platform's queue and push wait for the next run, the journeys relying on its unsubscribes
are deferred (docs/journeys.md), and the CRMs, the other email platform and `push_events` go on.
The run ends failed (the sources' watermarks stay) and Slack hears of the failed task.

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
from donor_sync.operators.email_platform_tasks import PULLBACK_TASKS
from donor_sync.operators.event_tasks import push_events_task
from donor_sync.operators.extract_tasks import API_SOURCES, extract_source_task
from donor_sync.operators.health_tasks import check_health_task
from donor_sync.operators.journey_tasks import journeys_task
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
    # Whatever became of the run: record its health figures and judge the alert rules.
    health = check_health_task(sync_run)
    health >> closed
    extracted >> standardized >> resolved
    # Stewardship journeys (docs/journeys.md): after resolve and the pull-backs, before the pushes.
    journeys = journeys_task.override(task_id="journeys")(sync_run)
    resolved >> journeys
    # Outbound events (docs/events.md): queued where their facts happen (resolve, merges, consent
    # pulled back from the email platforms), delivered per subscriber once those have run.
    journeys >> push_events_task.override(task_id="push_events")(sync_run) >> [health, closed]
    for destination, pool in DESTINATION_POOLS.items():
        queued = queue_task.override(task_id=f"queue_{destination}")(sync_run, destination)
        pushed = push_task.override(task_id=f"push_{destination}", pool=pool)(sync_run, destination)
        resolved >> queued >> pushed >> [health, closed]
        pull = PULLBACK_TASKS.get(destination)
        if pull is not None:  # an email platform: unsubscribes, complaints, cleaned addresses every run
            pulled = pull.override(task_id=f"pull_{destination}_unsubscribes")(sync_run)
            # Its queue only after its own pull-back succeeded; the journeys (all_done) whatever
            # became of it, and the triggers they queue go with this platform's push. The CRMs
            # wait for neither: one email platform down never holds up the gifts.
            resolved >> pulled >> [queued, journeys]
            journeys >> pushed
