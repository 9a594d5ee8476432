"""Helpers for the run-health and scorecard tests: runs, pushes through the real engine, readers.

Pushes go through :func:`donor_sync.delivery.push.push_destination` and the scripted destination
of ``tests.delivery.fakes``, so push_log, gift_destinations, dead letters, api_usage and the
breakers hold exactly what a real run leaves. Expected figures are computed here from the rows
themselves, independently of the SQL under test.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg

from donor_sync.delivery.contracts import QuotaState
from donor_sync.delivery.push import push_destination
from donor_sync.delivery.push.engine import PushReport
from donor_sync.observability.runs import close_run, open_run
from tests.delivery.fakes import FakeConnector
from tests.delivery.push.support import queue, settings

DEST = "fake_crm"


def start_run(db: psycopg.Connection, name: str, *, dag_id: str = "donations_hourly") -> UUID:
    """Open a run (committed), as the DAGs' first task does."""
    db.commit()
    return open_run(db, dag_id=dag_id, airflow_run_id=name, run_type="test")


def finish_run(db: psycopg.Connection, run_id: UUID) -> datetime:
    """Close a run; return its finished_at."""
    db.commit()
    return close_run(db, run_id, status="success")


def add_donor(db: psycopg.Connection, *, email: str | None = None, **fields: Any) -> UUID:
    columns = {"email": email, **fields}
    names = ", ".join(columns)
    row = db.execute(
        f"INSERT INTO core.donors ({names}) VALUES ({', '.join(['%s'] * len(columns))}) RETURNING donor_id",
        list(columns.values()),
    ).fetchone()
    assert row is not None
    donor_id: UUID = row[0]
    return donor_id


def add_gift(db: psycopg.Connection, donor_id: UUID, gift_key: str, *, age: str) -> UUID:
    """Add a core gift made ``age`` (an interval) before now."""
    row = db.execute(
        "INSERT INTO core.gifts (gift_key, donor_id, source, amount, currency, currency_exponent,"
        " amount_minor, gift_at, gift_date, status)"
        " VALUES (%s, %s, 'stripe', 25.00, 'USD', 2, 2500, now() - %s::interval, current_date, 'succeeded')"
        " RETURNING gift_id",
        (gift_key, donor_id, age),
    ).fetchone()
    assert row is not None
    db.commit()
    gift_id: UUID = row[0]
    return gift_id


def push(
    db: psycopg.Connection,
    run_id: UUID | None,
    keys: Sequence[str],
    *,
    entity: str = "opportunity",
    destination: str = DEST,
    fake: FakeConnector | None = None,
    quota: QuotaState | None = None,
) -> PushReport:
    """Queue ``keys`` for ``destination`` and push them through the engine as run ``run_id``."""
    for key in keys:
        queue(db, key, entity=entity, destination=destination, payload={"Name": key}, commit=False)
    db.commit()
    fake = fake or FakeConnector(destination=destination, entities=(entity,), quota_state=quota)
    return push_destination(db, fake, worker_id=f"w-{run_id}", run_id=run_id, settings=settings())


def figures(
    db: psycopg.Connection, run_id: UUID, stage: str | None = None
) -> dict[tuple[str, str, str], Decimal]:
    """Return the run's recorded figures ``{(stage, scope, metric): value}`` (parts summed)."""
    rows = db.execute(
        "SELECT stage, scope, metric, sum(value) FROM sync.run_metrics WHERE run_id = %s"
        " AND (%s::text IS NULL OR stage = %s::text) GROUP BY 1, 2, 3",
        (run_id, stage, stage),
    ).fetchall()
    db.commit()
    return {(str(s), str(sc), str(m)): Decimal(v) for s, sc, m, v in rows}


def rows_of(db: psycopg.Connection, run_id: UUID, stages: Sequence[str]) -> list[tuple[Any, ...]]:
    """Return the run's rows of ``stages`` as (stage, scope, part, metric, value, unit), sorted."""
    rows = db.execute(
        "SELECT stage, scope, part, metric, value, unit FROM sync.run_metrics"
        " WHERE run_id = %s AND stage = ANY(%s) ORDER BY 1, 2, 3, 4",
        (run_id, list(stages)),
    ).fetchall()
    db.commit()
    return [tuple(r) for r in rows]


def percentile_cont(values: Sequence[float], fraction: float) -> float:
    """Linear-interpolation percentile, as SQL's percentile_cont defines it."""
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def add_inbox_event(
    db: psycopg.Connection,
    source: str,
    event_id: str,
    *,
    received: str,
    processed: bool = False,
    attempts: int = 0,
    error: str | None = None,
) -> None:
    """Store one webhook event as the receiver writes it, in the state a drain would leave it.

    :param received: when, as SQL (``now()``, ``now() - interval '2 hours'``...).
    """
    body = {"id": event_id, "type": "donation.created"}
    raw = json.dumps(body).encode()
    db.execute(
        "INSERT INTO raw.webhook_inbox (source, event_id, event_type, body, body_sha256, body_bytes,"
        " signature_scheme, signature_verified, received_at, processed_at, process_attempts, process_error)"
        f" VALUES (%s, %s, 'donation.created', %s::jsonb, %s, %s, 'hmac_sha256', true, {received},"
        f" CASE WHEN %s THEN now() END, %s, %s)",
        (
            source,
            event_id,
            json.dumps(body),
            hashlib.sha256(raw).digest(),
            len(raw),
            processed,
            attempts,
            error,
        ),
    )
