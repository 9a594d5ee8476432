"""Retention task: apply the retention policies (a few lines over ``donor_sync.privacy.retention``)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from uuid import UUID

from airflow.sdk import task

log = logging.getLogger(__name__)


@task(pool="staging_db")
def retention_purge_task(sync_run_id: str) -> str:
    """Airflow task: purge, blank or pseudonymize what include/mappings/privacy/retention.yaml says has
    expired, in committed batches; each policy that changed rows is audited (``retention.purged``) and
    every policy's count is recorded as a run metric (stage ``retention``, scope the policy).
    """
    from donor_sync.db import connect
    from donor_sync.hooks.staging_db import StagingDbHook
    from donor_sync.observability import runs
    from donor_sync.privacy.retention import load_retention_settings, run_retention

    run_id = UUID(sync_run_id)
    settings = load_retention_settings()
    with connect(StagingDbHook().conninfo()) as conn:
        report = run_retention(
            conn, settings, now=datetime.now(UTC), actor="dag:donors_nightly.retention_purge", run_id=run_id
        )
        for result in report.results:
            runs.record_metric(
                conn, run_id, stage="retention", scope=result.policy, metric="purged", value=result.count
            )
        conn.commit()
    log.info("retention: %s row(s) purged over %s policies", report.total, len(report.results))
    return sync_run_id
