"""One destination's delivery stage of a run: queue what changed, then push it (or plan it).

Plain Python over :mod:`donor_sync.delivery.outbox` and :mod:`donor_sync.delivery.push`, called
by the Airflow tasks (:mod:`donor_sync.operators.delivery_tasks`), the demo, the benchmarks and
the CLI. Queueing and pushing are separate calls so the DAG can run them as separate tasks (a
push retried by Airflow does not recompute the outbox) and so a dry run stops after the plan.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import psycopg

from donor_sync.db.statistics import analyze_stale
from donor_sync.delivery.contracts import Connector
from donor_sync.delivery.dlq import dead_letter_render_errors
from donor_sync.delivery.outbox import (
    Plan,
    QueueReport,
    Scope,
    default_renderer,
    plan_destination,
    queue_destination,
)
from donor_sync.delivery.push import PushReport, push_destination
from donor_sync.observability import runs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlanSummary:
    """A dry run's counts per action (no payloads: safe to log)."""

    destination: str
    creates: int
    updates: int
    deletes: int
    archives: int
    unchanged: int
    merges: int
    guard: str


def queue(
    conn: psycopg.Connection,
    destination: str,
    *,
    run_id: UUID | None,
    actor: str,
    approved: bool = False,
    scope: Scope | None = None,
) -> QueueReport:
    """Queue ``destination``'s changed records in the outbox and record the counts; commit.

    :raises donor_sync.delivery.outbox.BlastRadiusExceeded: nothing written.
    """
    renderer = default_renderer(destination)
    report = queue_destination(
        conn, destination, renderer, run_id=run_id, approved=approved, actor=actor, scope=scope
    )
    # Records the mapping could not render reach no destination: each is a dead letter.
    errors = list(getattr(renderer, "errors", []))
    dead_letter_render_errors(conn, destination, errors, run_id=run_id)
    if run_id is not None:
        for metric, value in {**report.metrics(), "render_errors": len(errors)}.items():
            runs.record_metric(conn, run_id, stage="queue", scope=destination, metric=metric, value=value)
    conn.commit()
    analyze_stale(conn)  # the push claims from this outbox next
    return report


def plan(
    conn: psycopg.Connection,
    destination: str,
    *,
    run_id: UUID | None,
    scope: Scope | None = None,
    samples: int = 5,
) -> tuple[Plan, PlanSummary]:
    """Compute what a run would queue for ``destination`` without writing the outbox (dry run)."""
    result = plan_destination(conn, destination, default_renderer(destination), scope=scope, samples=samples)
    totals = result.totals
    summary = PlanSummary(
        destination=destination,
        creates=totals.creates,
        updates=totals.updates,
        deletes=totals.deletes,
        archives=totals.archives,
        unchanged=totals.unchanged,
        merges=result.merges_api + result.merges_listed,
        guard=result.verdict.describe(),
    )
    if run_id is not None:
        for metric in ("creates", "updates", "deletes", "archives", "unchanged", "merges"):
            runs.record_metric(
                conn, run_id, stage="plan", scope=destination, metric=metric, value=getattr(summary, metric)
            )
        conn.commit()
    return result, summary


def has_due_work(conn: psycopg.Connection, destination: str) -> bool:
    """Whether ``destination`` has outbox rows due now (pending, or in flight with an expired lease).

    Lets a push with nothing to do skip its vendor connection entirely (no token, no API call).
    """
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM sync.outbox WHERE destination = %s"
        " AND state IN ('pending', 'in_flight') AND next_attempt_at <= now())",
        [destination],
    ).fetchone()
    return bool(row and row[0])


def record_idle_push(conn: psycopg.Connection, destination: str, *, run_id: UUID) -> None:
    """Record that a run's push of ``destination`` found nothing due (zero pushed, zero failed),
    so the run's summary says so rather than "not recorded"."""
    for metric in ("pushed", "succeeded", "failed", "dead_lettered"):
        runs.record_metric(conn, run_id, stage="push", scope=destination, metric=metric, value=0)
    conn.commit()


def push(
    conn: psycopg.Connection,
    connector: Connector,
    *,
    run_id: UUID | None,
    worker_id: str,
    deadline: datetime | None = None,
) -> PushReport:
    """Push every due outbox row of the connector's destination (the engine commits as it goes)."""
    report = push_destination(conn, connector, run_id=run_id, worker_id=worker_id, deadline=deadline)
    log.info("push %s: %s", connector.destination, report.summary())
    return report
