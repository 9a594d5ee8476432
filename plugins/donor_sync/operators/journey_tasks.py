"""Journeys task: decide who enters which stewardship journey and queue the triggers.

A few lines over :func:`donor_sync.journeys.decide`. It runs after ``resolve`` and the email
platforms' pull-backs and before their pushes, so this run's Mailchimp and Braze pushes carry the
triggers it queued (each waits for the donor's member or user record).

``trigger_rule`` all_done: a failed pull-back does not stop it. The journeys that rely on a
pull-back that did not succeed this run are deferred (:mod:`donor_sync.journeys.pullbacks`), the
others are decided; after a failed ``resolve`` no pull-back ran, so it decides none. DAG param
``dry_run``: plan only (:func:`donor_sync.journeys.plan`), nothing written but the run's metrics
(``planned_*``).
"""

from __future__ import annotations

import logging
from uuid import UUID

from airflow.sdk import get_current_context, task

log = logging.getLogger(__name__)


@task(pool="staging_db", trigger_rule="all_done")
def journeys_task(sync_run_id: str) -> str:
    """Airflow task: enroll this run's gifts in their journeys (suppressed ones with a reason code),
    queue the triggers, and record counts per status and reason; defer the journeys whose
    pull-backs did not succeed this run."""
    from donor_sync.db import connect
    from donor_sync.hooks.staging_db import StagingDbHook
    from donor_sync.journeys import decide, load_rules
    from donor_sync.journeys.pullbacks import deferrals_for_run
    from donor_sync.observability.runs import record_metric
    from donor_sync.operators.privacy_tasks import privacy_keys

    params = dict(get_current_context().get("params") or {})
    dry_run = bool(params.get("dry_run"))
    run_id = UUID(sync_run_id)
    rules = load_rules()
    with connect(StagingDbHook().conninfo()) as conn:
        defer = deferrals_for_run(conn, run_id, rules)
        conn.rollback()  # a read only: decide opens its own transaction
        report = decide(conn, rules=rules, keys=privacy_keys(), run_id=run_id, dry_run=dry_run, defer=defer)
        prefix = "planned_" if dry_run else ""
        figures: dict[str, int] = {f"entries_{k}": v for k, v in report.totals().items()}
        for entry in report.entries:
            if entry.reason_code and entry.status in ("suppressed", "capped"):
                name = f"suppressed_{entry.reason_code}"
                figures[name] = figures.get(name, 0) + 1
        figures["triggers_queued"] = report.triggers_queued
        figures["journeys_deferred"] = len(report.deferred)
        for metric, value in figures.items():
            record_metric(
                conn, run_id, stage="journeys", metric=prefix + metric, value=value, task_id="journeys"
            )
    log.info("%s", report.summary())
    return sync_run_id
