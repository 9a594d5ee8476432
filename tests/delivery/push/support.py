"""Helpers for the push and DLQ tests: core rows, queued outbox rows, settings, the clock.

Outbox rows are inserted as the outbox stage writes them (payload hashed with
core.jsonb_sha256). Time is simulated by moving ``next_attempt_at`` (and ``created_at``) into the
past, never by sleeping.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import psycopg

from donor_sync.delivery.push.settings import CircuitBreakerSettings, PushOptions, PushSettings

DEST = "fake_crm"


def settings(*, breaker: dict[str, Any] | None = None, **push: Any) -> PushSettings:
    """Return push settings whose breaker never opens unless the test asks for it."""
    breaker_defaults: dict[str, Any] = {"consecutive_failures": 1000, "min_calls": 1000}
    return PushSettings(
        push=PushOptions(**push),
        circuit_breaker=CircuitBreakerSettings(**{**breaker_defaults, **(breaker or {})}),
    )


def add_donor(db: psycopg.Connection) -> UUID:
    row = db.execute("INSERT INTO core.donors DEFAULT VALUES RETURNING donor_id").fetchone()
    assert row is not None
    donor_id: UUID = row[0]
    return donor_id


def add_gift(db: psycopg.Connection, donor_id: UUID, gift_key: str) -> UUID:
    row = db.execute(
        "INSERT INTO core.gifts (gift_key, donor_id, source, amount, currency, currency_exponent,"
        " amount_minor, gift_at, gift_date, status)"
        " VALUES (%s, %s, 'stripe', 25.00, 'USD', 2, 2500, %s, %s, 'succeeded') RETURNING gift_id",
        (gift_key, donor_id, datetime(2026, 1, 5, 12, tzinfo=UTC), datetime(2026, 1, 5).date()),
    ).fetchone()
    assert row is not None
    gift_id: UUID = row[0]
    return gift_id


def queue(
    db: psycopg.Connection,
    record_key: str,
    *,
    entity: str = "contact",
    operation: str = "upsert",
    payload: dict[str, Any] | None = None,
    donor_id: UUID | None = None,
    priority: int = 100,
    depends_on: Sequence[tuple[str, str]] = (),
    destination: str = DEST,
    commit: bool = True,
) -> int:
    """Queue one pending outbox row; return its id."""
    payload = payload if payload is not None else {"Donor_Sync_Id__c": record_key, "LastName": "Okafor"}
    row = db.execute(
        "INSERT INTO sync.outbox (destination, entity, record_key, donor_id, operation, payload,"
        " payload_sha256, priority, depends_on)"
        " VALUES (%s, %s, %s, %s, %s, %s::jsonb, core.jsonb_sha256(%s::jsonb), %s, %s::jsonb)"
        " RETURNING outbox_id",
        (
            destination,
            entity,
            record_key,
            donor_id,
            operation,
            json.dumps(payload),
            json.dumps(payload),
            priority,
            json.dumps([{"entity": e, "record_key": k} for e, k in depends_on]),
        ),
    ).fetchone()
    assert row is not None
    if commit:
        db.commit()
    outbox_id: int = row[0]
    return outbox_id


def queue_many(db: psycopg.Connection, count: int, *, prefix: str = "k", **kwargs: Any) -> list[int]:
    ids = [queue(db, f"{prefix}{i:04d}", commit=False, **kwargs) for i in range(count)]
    db.commit()
    return ids


def make_due(db: psycopg.Connection) -> None:
    """Let the clock pass every waiting row's next attempt (and every lease)."""
    db.execute(
        "UPDATE sync.outbox SET next_attempt_at = now() - interval '1 second'"
        " WHERE state IN ('pending', 'in_flight')"
    )
    db.commit()


def outbox(db: psycopg.Connection, outbox_id: int) -> dict[str, Any]:
    """Return an outbox row as a dict, with ``delay_s``: next_attempt_at - updated_at in seconds."""
    cur = db.execute(
        "SELECT *, extract(epoch FROM next_attempt_at - updated_at)::float AS delay_s"
        " FROM sync.outbox WHERE outbox_id = %s",
        (outbox_id,),
    )
    row = cur.fetchone()
    assert row is not None
    assert cur.description is not None
    db.commit()
    return {col.name: value for col, value in zip(cur.description, row, strict=True)}


def states(db: psycopg.Connection) -> dict[str, int]:
    rows = db.execute("SELECT state, count(*) FROM sync.outbox GROUP BY state").fetchall()
    db.commit()
    return dict(rows)


def scalar(db: psycopg.Connection, sql: str, *params: Any) -> Any:
    row = db.execute(sql, params).fetchone()
    db.commit()
    return row[0] if row else None
