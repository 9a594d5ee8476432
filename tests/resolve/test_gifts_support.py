"""Helpers for the gift-resolve and aggregate tests: crafted staging rows, donors, settings.

Staging rows are inserted as standardization would write them (every CHECK of staging.gifts
holds); donors and their source records are inserted directly into core, standing in for the
donor side of resolve.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg

from donor_sync.resolve.fiscal import GivingSettings, RfmRules, load_giving_settings

NOW = datetime(2026, 1, 15, 12, tzinfo=UTC)
_raw_ids = itertools.count(10_000_000)


def settings(**changes: Any) -> GivingSettings:
    """Return the shipped giving rules with ``changes`` (fields of GivingSettings)."""
    base = load_giving_settings()
    return base.model_copy(update=changes) if changes else base


def rfm(base: GivingSettings, **changes: Any) -> RfmRules:
    """Return ``base``'s RFM rules with ``changes``."""
    return base.rfm.model_copy(update=changes)


def add_donor(db: psycopg.Connection, *sources: tuple[str, str]) -> UUID:
    """Insert a golden donor owning the source donor records ``(system, external_id)``; return its id."""
    row = db.execute("INSERT INTO core.donors DEFAULT VALUES RETURNING donor_id").fetchone()
    assert row is not None
    donor_id: UUID = row[0]
    for system, external_id in sources:
        db.execute(
            "INSERT INTO core.donor_sources (donor_id, system, external_id, role, id_kind)"
            " VALUES (%s, %s, %s, 'source', 'donor')",
            (donor_id, system, external_id),
        )
    return donor_id


def merge(db: psycopg.Connection, loser: UUID, survivor: UUID) -> None:
    """Mark ``loser`` merged into ``survivor`` (what the donor side does on a merge)."""
    db.execute(
        "UPDATE core.donors SET merged_into = %s, merged_at = now() WHERE donor_id = %s", (survivor, loser)
    )


_EXPONENT = {"JPY": 0}


def stage_gift(
    db: psycopg.Connection,
    *,
    source: str,
    source_id: str,
    donor: str | None,
    amount: str | Decimal = "50.00",
    gift_at: datetime = datetime(2025, 3, 1, 15, tzinfo=UTC),
    batch_id: int = 1,
    entity: str | None = None,
    gift_key: str | None = None,
    updated_at: datetime | None = None,
    raw_record_id: int | None = None,
    **fields: Any,
) -> int:
    """Insert one staged gift as standardization writes it; return its raw_record_id.

    :param donor: the source's donor id (``source_donor_id``).
    :param fields: other staging.gifts columns (currency, status, refunded_amount, designation...).
    """
    currency = fields.pop("currency", "USD")
    exponent = _EXPONENT.get(currency, 2)
    value = Decimal(amount)
    raw = raw_record_id if raw_record_id is not None else next(_raw_ids)
    row: dict[str, Any] = {
        "raw_record_id": raw,
        "batch_id": batch_id,
        "source": source,
        "entity": entity
        or {"stripe": "charge", "donorbox": "donation", "classy": "transaction"}.get(source, "csv_row"),
        "source_id": source_id,
        "source_donor_id": donor,
        "source_updated_at": updated_at or gift_at,
        "gift_key": gift_key or f"{source}:{source_id}",
        "amount": value,
        "currency": currency,
        "currency_exponent": exponent,
        "amount_minor": int(value * 10**exponent),
        "gift_at": gift_at,
        "status": fields.pop("status", "succeeded"),
        **fields,
    }
    if row.get("recurring_key"):
        row.setdefault("is_recurring", True)
    columns = ", ".join(row)
    marks = ", ".join(f"%({c})s" for c in row)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in row if c != "raw_record_id")
    db.execute(
        f"INSERT INTO staging.gifts ({columns}) VALUES ({marks})"
        f" ON CONFLICT (raw_record_id) DO UPDATE SET {updates}, resolved_at = NULL, gift_id = NULL",
        row,
    )
    return raw


def gift(db: psycopg.Connection, gift_key: str) -> dict[str, Any]:
    """Return the core gift of ``gift_key`` as a dict (columns → values)."""
    cur = db.execute("SELECT * FROM core.gifts WHERE gift_key = %s", (gift_key,))
    row = cur.fetchone()
    assert row is not None, f"no core gift {gift_key}"
    assert cur.description is not None
    return dict(zip([d.name for d in cur.description], row, strict=True))


def donor(db: psycopg.Connection, donor_id: UUID) -> dict[str, Any]:
    """Return a core donor's aggregate columns as a dict."""
    cur = db.execute(
        "SELECT gift_count, lifetime_giving, fiscal_year_giving, largest_gift, first_gift_date,"
        " last_gift_date, recurring_status, rfm_segment, giving_currency, aggregates_updated_at"
        " FROM core.donors WHERE donor_id = %s",
        (donor_id,),
    )
    row = cur.fetchone()
    assert row is not None
    assert cur.description is not None
    return dict(zip([d.name for d in cur.description], row, strict=True))


def snapshot(db: psycopg.Connection) -> dict[str, list[tuple[Any, ...]]]:
    """Return every row (with its row version, xmin) of the tables resolve writes."""
    tables = {
        "gifts": "SELECT xmin::text, * FROM core.gifts ORDER BY gift_key",
        "gift_sources": "SELECT xmin::text, * FROM core.gift_sources ORDER BY source, entity, source_id",
        "plans": "SELECT xmin::text, * FROM core.recurring_plans ORDER BY plan_key",
        "donors": "SELECT xmin::text, * FROM core.donors ORDER BY donor_id",
        "staging": "SELECT xmin::text, * FROM staging.gifts ORDER BY raw_record_id",
    }
    return {name: db.execute(query).fetchall() for name, query in tables.items()}
