"""Test helpers: core rows inserted directly, a hand-written renderer, and a simulated push."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import psycopg

from donor_sync.delivery.contracts import Operation, RecordRef, RenderedRecord, SyncMode
from donor_sync.delivery.outbox import MappedObject

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def add_donor(db: psycopg.Connection, first: str = "Jane", last: str = "Okafor", **extra: Any) -> str:
    """Insert a golden donor; return its id."""
    donor_id = str(uuid.uuid4())
    columns = {"donor_id": donor_id, "first_name": first, "last_name": last, **extra}
    if "email" not in extra:
        columns["email"] = f"{first.lower()}.{last.lower()}.{donor_id[:6]}@example.org"
    names = ", ".join(columns)
    marks = ", ".join(["%s"] * len(columns))
    db.execute(f"INSERT INTO core.donors ({names}) VALUES ({marks})", list(columns.values()))
    return donor_id


def add_gift(db: psycopg.Connection, donor_id: str, key: str, amount: str = "25.00", **extra: Any) -> str:
    """Insert a succeeded USD gift; return its gift key."""
    value = Decimal(amount)
    columns = {
        "gift_key": key,
        "donor_id": donor_id,
        "source": "stripe",
        "amount": value,
        "currency": "USD",
        "currency_exponent": 2,
        "amount_minor": int(value * 100),
        "gift_at": NOW,
        "gift_date": date(2026, 1, 15),
        "status": "succeeded",
        **extra,
    }
    names = ", ".join(columns)
    marks = ", ".join(["%s"] * len(columns))
    db.execute(f"INSERT INTO core.gifts ({names}) VALUES ({marks})", list(columns.values()))
    return key


def add_plan(db: psycopg.Connection, donor_id: str, key: str) -> str:
    """Insert an active monthly plan of 10 USD; return its plan key."""
    db.execute(
        "INSERT INTO core.recurring_plans (plan_key, donor_id, source, source_id, amount, currency,"
        " currency_exponent, amount_minor, interval_unit, status, started_at)"
        " VALUES (%s, %s, 'stripe', %s, 10, 'USD', 2, 1000, 'month', 'active', %s)",
        (key, donor_id, key.split(":", 1)[1], NOW),
    )
    return key


def add_household(db: psycopg.Connection, name: str, members: Sequence[tuple[str, str]]) -> str:
    """Insert a household with (donor_id, role) members; return its id."""
    row = db.execute("INSERT INTO core.households (name) VALUES (%s) RETURNING household_id::text", (name,))
    household_id = str(row.fetchone()[0])  # type: ignore[index]
    for donor_id, role in members:
        db.execute(
            "INSERT INTO core.household_members (donor_id, household_id, role, linked_by)"
            " VALUES (%s, %s, %s, 'test')",
            (donor_id, household_id, role),
        )
    return household_id


def merge(db: psycopg.Connection, survivor: str, merged: str, *, at: datetime | None = None) -> str:
    """Record a review-approved merge of ``merged`` into ``survivor``; return the decision id."""
    decision = str(uuid.uuid4())
    when = at or datetime.now(UTC)
    db.execute(
        "UPDATE core.donors SET merged_into = %s, merged_at = %s WHERE donor_id = %s",
        (survivor, when, merged),
    )
    db.execute(
        "INSERT INTO core.merge_decisions (decision_id, decision, survivor_id, merged_donor_id, decided_by,"
        " decided_at) VALUES (%s, 'manual_merge', %s, %s, 'test', %s)",
        (decision, survivor, merged, when),
    )
    return decision


def unmerge(db: psycopg.Connection, decision_id: str) -> None:
    """Undo a merge decision (the parts of it the outbox reads)."""
    row = db.execute(
        "UPDATE core.merge_decisions SET undone_at = now(), undone_by = 'test' WHERE decision_id = %s"
        " RETURNING merged_donor_id",
        (decision_id,),
    ).fetchone()
    assert row is not None
    db.execute("UPDATE core.donors SET merged_into = NULL, merged_at = NULL WHERE donor_id = %s", (row[0],))


def land(
    db: psycopg.Connection,
    destination: str,
    entity: str,
    record_key: str,
    payload: Mapping[str, Any] | None,
    remote_id: str | None,
    *,
    donor_id: str | None = None,
) -> None:
    """Write destination state as if ``payload`` had landed with ``remote_id``."""
    import json

    db.execute(
        "INSERT INTO sync.destination_state (destination, entity, record_key, donor_id, remote_id,"
        " last_payload_sha256, last_pushed_at)"
        " VALUES (%s, %s, %s, %s, %s, core.jsonb_sha256(%s::jsonb), now())"
        " ON CONFLICT (destination, entity, record_key) DO UPDATE SET remote_id = EXCLUDED.remote_id,"
        " last_payload_sha256 = EXCLUDED.last_payload_sha256, last_pushed_at = now()",
        (
            destination,
            entity,
            record_key,
            donor_id,
            remote_id,
            json.dumps(payload) if payload is not None else None,
        ),
    )


def push_all(db: psycopg.Connection, destination: str) -> int:
    """Simulate a successful push of every pending row: succeeded, destination state written."""
    rows = db.execute(
        "UPDATE sync.outbox SET state = 'succeeded', attempts = attempts + 1"
        " WHERE destination = %s AND state = 'pending'"
        " RETURNING outbox_id, entity, record_key, donor_id, operation, payload_sha256",
        (destination,),
    ).fetchall()
    for outbox_id, entity, key, donor_id, operation, sha in rows:
        removed = operation in ("delete", "archive", "merge")
        db.execute(
            "INSERT INTO sync.destination_state (destination, entity, record_key, donor_id, remote_id,"
            " last_payload_sha256, last_pushed_at, last_outbox_id, remote_deleted_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, now(), %s, CASE WHEN %s THEN now() END)"
            " ON CONFLICT (destination, entity, record_key) DO UPDATE SET"
            " last_payload_sha256 = EXCLUDED.last_payload_sha256, last_pushed_at = now(),"
            " last_outbox_id = EXCLUDED.last_outbox_id, remote_deleted_at = EXCLUDED.remote_deleted_at,"
            " remote_id = coalesce(sync.destination_state.remote_id, EXCLUDED.remote_id)",
            (destination, entity, key, donor_id, f"R-{key[:12]}", sha, outbox_id, removed),
        )
    return len(rows)


def claim_all(db: psycopg.Connection, destination: str) -> int:
    """Put every pending row of ``destination`` in flight (as a push worker's claim does)."""
    return db.execute(
        "UPDATE sync.outbox SET state = 'in_flight', claimed_by = 'worker-1',"
        " next_attempt_at = now() + interval '15 minutes' WHERE destination = %s AND state = 'pending'",
        (destination,),
    ).rowcount


def outbox_rows(
    db: psycopg.Connection, destination: str, *, state: str | None = None
) -> list[dict[str, Any]]:
    """Return outbox rows as dicts, oldest first."""
    from psycopg.rows import dict_row

    with db.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT outbox_id, entity, record_key, donor_id::text AS donor_id, operation, payload, state,"
            " depends_on, set_if_empty, priority, error_code FROM sync.outbox"
            " WHERE destination = %s AND (%s::text IS NULL OR state = %s) ORDER BY outbox_id",
            (destination, state, state),
        ).fetchall()


def table_counts(db: psycopg.Connection) -> dict[str, int]:
    """Row counts of every table a queue run may write."""
    tables = (
        "sync.outbox",
        "sync.destination_merges",
        "sync.watermarks",
        "sync.audit_log",
        "sync.destination_state",
    )
    out = {}
    for table in tables:
        row = db.execute(f"SELECT count(*) FROM {table}").fetchone()
        out[table] = int(row[0]) if row else 0
    return out


def contact_payload(row: Mapping[str, Any]) -> dict[str, Any]:
    """The test mapping's contact payload of a donor row."""
    return {
        "external_id": row["donor_id"],
        "first_name": row["first_name"],
        "last_name": row["last_name"],
        "email": row["email"],
        "household": row["household_name"],
        "gift_count": row["gift_count"],
    }


def gift_payload(row: Mapping[str, Any]) -> dict[str, Any]:
    """The test mapping's opportunity payload of a gift row."""
    return {
        "gift_key": row["gift_key"],
        "amount": str(row["amount"]),
        "stage": "Closed Won" if row["status"] == "succeeded" else row["status"],
        "close_date": row["gift_date"].isoformat(),
        "contact": row["donor_id"],
    }


@dataclass
class HandRenderer:
    """A hand-written mapping: contacts from donors (not do-not-contact), opportunities from gifts.

    ``modes`` sets each entity's sync mode (and mirror action); ``exclude`` filters records out by key.
    """

    modes: dict[str, tuple[SyncMode, Operation | None]] = field(default_factory=dict)
    exclude: set[str] = field(default_factory=set)
    rendered: list[str] = field(default_factory=list)
    extra: Callable[[str, Mapping[str, Any]], Iterable[RenderedRecord]] | None = None

    def objects(self) -> Sequence[MappedObject]:
        out = []
        for entity, kind in (("contact", "donor"), ("opportunity", "gift")):
            mode, action = self.modes.get(entity, (SyncMode.UPSERT, None))
            out.append(MappedObject(entity, kind, mode, action))
        return out

    def render(self, kind: str, rows: Iterable[Mapping[str, Any]]) -> Iterator[RenderedRecord]:
        for row in rows:
            self.rendered.append(kind)
            if kind == "donor":
                if row["do_not_contact"] or row["donor_id"] in self.exclude:
                    continue
                yield RenderedRecord(
                    "contact",
                    row["donor_id"],
                    Operation.UPSERT,
                    contact_payload(row),
                    donor_id=row["donor_id"],
                )
            elif kind == "gift":
                if row["gift_key"] in self.exclude:
                    continue
                yield RenderedRecord(
                    "opportunity",
                    row["gift_key"],
                    Operation.UPSERT,
                    gift_payload(row),
                    donor_id=row["donor_id"],
                    depends_on=(RecordRef("contact", row["donor_id"]),),
                    priority=120,
                    set_if_empty=frozenset({"stage"}),
                )
            if self.extra is not None:
                yield from self.extra(kind, row)
