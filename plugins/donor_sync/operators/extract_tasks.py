"""Extract tasks: one per source, each a few lines over ``donor_sync.sources``."""

from __future__ import annotations

from uuid import UUID

from airflow.sdk import task


@task(task_id="extract_stripe", pool="source_api")
def extract_stripe_task(sync_run_id: str) -> str:
    """Airflow task: read Stripe's streams into ``raw`` and record what was read and loaded."""
    from donor_sync.db import connect
    from donor_sync.hooks.staging_db import StagingDbHook
    from donor_sync.hooks.stripe import StripeHook
    from donor_sync.observability import runs
    from donor_sync.sources.stripe import SOURCE, extract_stripe

    run_id = UUID(sync_run_id)
    with connect(StagingDbHook().conninfo()) as conn:
        results = extract_stripe(conn, StripeHook().get_api(), run_id=run_id)
        runs.record_metric(
            conn, run_id, stage="extract", scope=SOURCE, metric="read", value=sum(r.read for r in results)
        )
        runs.record_metric(
            conn, run_id, stage="extract", scope=SOURCE, metric="loaded", value=sum(r.loaded for r in results)
        )
    return sync_run_id
