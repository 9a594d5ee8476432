"""Helpers for the events tests: subscriber settings, core facts, outbox and receiver reads."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import psycopg

from donor_sync.events.settings import EventSettings, SubscriberSpec

ALL_TYPES = ("donation.created", "donation.refunded", "donor.merged", "consent.changed", "donor.erased")
SECRET_A = "whsec-a-current"
SECRET_B = "whsec-b"


def subscribers(base_url: str, *names: str, events: Sequence[str] = ALL_TYPES) -> EventSettings:
    """Subscribers ``names`` posting to the receiver's ``/hooks/<name>``."""
    return EventSettings(
        subscribers=tuple(
            SubscriberSpec(name=n, secret=f"{n}_conn", url=f"{base_url}/hooks/{n}", events=tuple(events))  # type: ignore[arg-type]
            for n in names
        )
    )


def add_donor(db: psycopg.Connection) -> UUID:
    row = db.execute("INSERT INTO core.donors DEFAULT VALUES RETURNING donor_id").fetchone()
    assert row is not None
    donor_id: UUID = row[0]
    return donor_id


def add_gift(
    db: psycopg.Connection,
    donor_id: UUID,
    gift_key: str,
    *,
    status: str = "succeeded",
    refunded: str = "0",
    is_test: bool = False,
    tribute: tuple[str, str] | None = None,
) -> None:
    db.execute(
        "INSERT INTO core.gifts (gift_key, donor_id, source, amount, currency, currency_exponent,"
        " amount_minor, gift_at, gift_date, status, refunded_amount, refunded_at, is_test, designation,"
        " tribute_type, tribute_name)"
        " VALUES (%s, %s, 'stripe', 25.00, 'USD', 2, 2500, %s, %s, %s, %s, %s, %s, 'General', %s, %s)",
        (
            gift_key,
            donor_id,
            datetime(2026, 1, 5, 12, tzinfo=UTC),
            datetime(2026, 1, 5).date(),
            status,
            refunded,
            datetime(2026, 1, 9, tzinfo=UTC) if refunded != "0" else None,
            is_test,
            tribute[0] if tribute else None,
            tribute[1] if tribute else None,
        ),
    )


def events(db: psycopg.Connection) -> list[dict[str, Any]]:
    """Every stored envelope, oldest first."""
    rows = db.execute("SELECT envelope FROM sync.events ORDER BY created_at, fact_key").fetchall()
    return [r[0] for r in rows]


def outbox_rows(db: psycopg.Connection) -> list[tuple[str, str, str, str]]:
    """(destination, entity, record_key, state) of every outbox row."""
    rows = db.execute(
        "SELECT destination, entity, record_key, state FROM sync.outbox ORDER BY 1, 2, 3"
    ).fetchall()
    db.commit()
    return [(str(a), str(b), str(c), str(d)) for a, b, c, d in rows]


def deliveries(snapshot: dict[str, Any], hook: str) -> list[dict[str, Any]]:
    """The receiver's deliveries to ``hook``, each with its parsed body under ``event``."""
    return [{**d, "event": json.loads(d["text"])} for d in snapshot["deliveries"] if d["hook"] == hook]
