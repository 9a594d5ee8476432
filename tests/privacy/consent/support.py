"""Helpers of the consent tests: donors, merges and events written straight into core."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from donor_sync.privacy.consent.state import StateRefresh, refresh_consent_state

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ACTOR = "test:consent"


def donor(db: psycopg.Connection, **fields: Any) -> str:
    """Insert a bare golden donor; return its id."""
    donor_id = str(uuid.uuid4())
    columns = ["donor_id", *fields]
    db.execute(
        f"INSERT INTO core.donors ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})",
        [donor_id, *fields.values()],
    )
    return donor_id


def merge(db: psycopg.Connection, merged: str, survivor: str, at: datetime) -> None:
    """Mark ``merged`` as merged into ``survivor`` at ``at`` (what resolve's merge leaves)."""
    db.execute(
        "UPDATE core.donors SET merged_into = %s, merged_at = %s WHERE donor_id = %s", [survivor, at, merged]
    )


def event(
    db: psycopg.Connection,
    donor_id: str,
    purpose: str,
    channel: str,
    status: str,
    at: datetime,
    *,
    expires: datetime | None = None,
    source: str = "donorbox",
    ref: str | None = None,
) -> int:
    """Insert one consent event; return its id."""
    row = db.execute(
        "INSERT INTO core.consent_events (donor_id, purpose, channel, status, source, source_ref,"
        " occurred_at, expires_at, evidence, recorded_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " RETURNING consent_event_id",
        [donor_id, purpose, channel, status, source, ref, at, expires, json.dumps({}), ACTOR],
    ).fetchone()
    assert row is not None
    return int(row[0])


def refresh(db: psycopg.Connection, *donors: str, now: datetime = T0 + timedelta(days=30)) -> StateRefresh:
    return refresh_consent_state(db, list(donors), actor=ACTOR, now=now)


def states(
    db: psycopg.Connection, donor_id: str | None = None
) -> dict[tuple[str, str, str], tuple[str, int]]:
    """Return ``{(donor, purpose, channel): (status, deciding event)}`` of core.consent_state."""
    rows = db.execute(
        "SELECT donor_id::text, purpose, channel, status, consent_event_id FROM core.consent_state"
        " WHERE %(d)s::uuid IS NULL OR donor_id = %(d)s::uuid",
        {"d": donor_id},
    ).fetchall()
    return {(r[0], r[1], r[2]): (r[3], int(r[4])) for r in rows}
