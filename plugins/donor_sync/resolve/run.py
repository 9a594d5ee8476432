"""The resolve stage of one sync run: staged donors to golden donors, staged gifts to core gifts, aggregates.

Plain Python, called by the Airflow task (:mod:`donor_sync.operators.resolve_tasks`) and usable from
the CLI or a test. One transaction: a failure leaves core as it was and the staged rows unresolved,
so a retry resolves the same rows again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import psycopg

from donor_sync.db.statistics import analyze_stale
from donor_sync.events.producers import produce_gift_events
from donor_sync.observability import runs
from donor_sync.privacy.consent.ingest import ingest_staged_signals
from donor_sync.resolve.aggregates import AggregateCounts, refresh_aggregates
from donor_sync.resolve.donors import ResolveCounts, ResolveRules, resolve_donors
from donor_sync.resolve.fiscal import GivingSettings
from donor_sync.resolve.gifts import GiftResolveCounts, resolve_gifts
from donor_sync.standardize.run import batches_of_run


@dataclass(frozen=True)
class ResolveRunResult:
    """What the resolve stage of a run did (counts only)."""

    batches: list[int]
    donors: ResolveCounts
    gifts: GiftResolveCounts
    aggregates: AggregateCounts


def left_unresolved(conn: psycopg.Connection) -> list[int]:
    """Return the standardized batches still holding staged donors no resolve has resolved.

    A run that fails after its standardize (its resolve killed, its retries spent) leaves its
    batches standardized and their rows unresolved. The next run lands nothing new for them (raw
    already holds every version) and no longer counts them among its own batches, so without this
    their donors would never be resolved and their gifts would wait as pending for ever.
    A successful resolve leaves no such row: normally this finds nothing (through a partial index).
    """
    rows = conn.execute(
        "SELECT DISTINCT s.batch_id FROM staging.donors s JOIN raw.batches b USING (batch_id)"
        " WHERE s.resolved_at IS NULL AND b.status = 'standardized' ORDER BY s.batch_id"
    ).fetchall()
    return [int(r[0]) for r in rows]


def resolve_run(
    conn: psycopg.Connection,
    run_id: UUID,
    *,
    rules: ResolveRules,
    giving: GivingSettings,
    now: datetime,
    task_id: str | None = None,
) -> ResolveRunResult:
    """Resolve the run's standardized batches and what earlier runs left unresolved; record metrics."""
    batch_ids = sorted({*batches_of_run(conn, run_id), *left_unresolved(conn)})
    actor = f"run:{run_id}"
    donors = resolve_donors(conn, batch_ids, rules=rules, now=now, actor=actor)
    gifts = resolve_gifts(conn, batch_ids, now=now, settings=giving)
    aggregates = refresh_aggregates(conn, gifts.donor_ids, today=giving.today(now), settings=giving)
    consent = ingest_staged_signals(conn, batch_ids, actor=actor, now=now, run_id=run_id)
    events = produce_gift_events(conn, gifts.donor_ids, run_id=run_id, now=now)  # donation.created/refunded
    figures = {
        "new_donors": donors.new_donors,
        # New records that did not become a donor of their own: attached to an existing donor (same
        # email, a confident match) or clustered with another new record of the run.
        "merged": donors.new_records - donors.new_donors,
        "attached_to_existing": donors.deterministic + donors.auto_merged,
        "auto_merged": donors.auto_merged,
        "review_queued": donors.review_queued,
        "household_links": donors.household_links,
        "gifts_resolved": gifts.resolved_rows,
        "gifts_pending": gifts.pending_rows,
        "gifts_created": gifts.gifts_created,
        "donors_refreshed": len(gifts.donor_ids),
        "consent_events_recorded": consent.events_recorded,
        "outbound_events": events.recorded,
    }
    for metric, value in figures.items():
        runs.record_metric(conn, run_id, stage="resolve", metric=metric, value=value, task_id=task_id)
    conn.commit()
    analyze_stale(conn)  # the queue reads these donors and gifts next
    return ResolveRunResult(batch_ids, donors, gifts, aggregates)
