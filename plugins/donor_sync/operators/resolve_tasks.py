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


@task(pool="staging_db")
def refit_match_weights_task(sync_run_id: str) -> str:
    """Airflow task: refit the match weights from the review queue's decisions when enough new ones
    arrived (``donor-sync review refit`` does the same by hand); the next resolve scores with them.
    """
    from donor_sync.db import connect
    from donor_sync.hooks.staging_db import StagingDbHook
    from donor_sync.observability import runs
    from donor_sync.resolve import load_resolve_rules
    from donor_sync.resolve.match_models import refit_from_reviews

    run_id = UUID(sync_run_id)
    with connect(StagingDbHook().conninfo()) as conn:
        report = refit_from_reviews(
            conn, load_resolve_rules(), actor="dag:donors_nightly.refit_match_weights"
        )
        figures = {"labels": report.labels, "models_stored": int(report.model_id is not None)}
        for metric, value in figures.items():
            runs.record_metric(conn, run_id, stage="refit", metric=metric, value=value, unit="count")
        if report.agreement_after is not None:
            runs.record_metric(
                conn,
                run_id,
                stage="refit",
                metric="label_agreement",
                value=report.agreement_after,
                unit="ratio",
            )
        conn.commit()
    if report.model_id is None:
        log.info("match weights not refitted: %s", report.skipped_reason)
    else:
        log.info(
            "match model %s fitted on %s decisions; agreement %s -> %s",
            report.model_id,
            report.labels,
            report.agreement_before,
            report.agreement_after,
        )
    return sync_run_id
