"""Resolve task: the run's staged donors and gifts into core (a few lines over ``donor_sync.resolve``)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from uuid import UUID

from airflow.sdk import task

log = logging.getLogger(__name__)


@task(pool="staging_db")
def resolve_task(sync_run_id: str) -> str:
    """Airflow task: match the run's staged donors to golden donors (new, merged, queued for review,
    linked as a household), fold its staged gifts into core gifts (one per cross-platform gift key),
    refresh the touched donors' giving aggregates, and record the counts.
    """
    from donor_sync.db import connect
    from donor_sync.hooks.staging_db import StagingDbHook
    from donor_sync.resolve import load_giving_settings, load_resolve_rules
    from donor_sync.resolve.run import resolve_run

    rules, giving = load_resolve_rules(), load_giving_settings()
    with connect(StagingDbHook().conninfo()) as conn:
        result = resolve_run(conn, UUID(sync_run_id), rules=rules, giving=giving, now=datetime.now(UTC))
    log.info(
        "resolved %s batches: %s new donors, %s records merged into another's donor, %s pairs to review,"
        " %s gifts resolved, %s pending",
        len(result.batches),
        result.donors.new_donors,
        result.donors.new_records - result.donors.new_donors,
        result.donors.review_queued,
        result.gifts.resolved_rows,
        result.gifts.pending_rows,
    )
    return sync_run_id
