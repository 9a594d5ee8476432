"""Webhook drain task: a few lines over ``donor_sync.sources.webhook_inbox``."""

from __future__ import annotations

import logging
from uuid import UUID

from airflow.sdk import task

log = logging.getLogger(__name__)


@task
def drain_webhooks_task(sync_run_id: str) -> str:
    """Airflow task: land waiting webhook events into ``raw`` and record per-source figures.

    Figures go to the ``extract`` stage under each source with the part ``webhook_<batch id>``, so
    they add up with the API extraction's figures for the same source in the run summary.
    """
    from donor_sync.db import connect
    from donor_sync.hooks.staging_db import StagingDbHook
    from donor_sync.observability import runs
    from donor_sync.sources.webhook_inbox import DEFAULT_MAX_ATTEMPTS, drain_webhook_inbox

    run_id = UUID(sync_run_id)
    with connect(StagingDbHook().conninfo()) as conn:
        for result in drain_webhook_inbox(conn, run_id=run_id):
            figures = (
                ("read", result.read, "records"),
                ("loaded", result.loaded, "records"),
                ("webhook_events", result.events, "count"),
                ("webhook_events_ignored", result.ignored, "count"),
                ("webhook_events_failed", result.failed, "count"),
                ("webhook_events_stuck", result.stuck, "count"),
            )
            for metric, value, unit in figures:
                runs.record_metric(
                    conn,
                    run_id,
                    stage="extract",
                    scope=result.source,
                    part=f"webhook_{result.batch_id}",
                    metric=metric,
                    value=value,
                    unit=unit,
                )
            if result.stuck:
                log.warning(
                    "%s: %s webhook events are no longer retried after %s failed attempts;"
                    " see raw.webhook_inbox.process_error",
                    result.source,
                    result.stuck,
                    DEFAULT_MAX_ATTEMPTS,
                )
    return sync_run_id
