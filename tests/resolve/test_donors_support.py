"""Helpers for the donor-resolve, review and unmerge tests: crafted staged donors, snapshots, truth.

Crafted rows are inserted into staging.donors as standardization writes them; sample data comes
from ``sandbox.datagen`` through the standardize test helpers.
"""

from __future__ import annotations

import functools
import itertools
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from donor_sync.resolve import ResolveCounts, ResolveRules, load_resolve_rules, resolve_donors
from tests.standardize.test_pipeline_support import ALL_RAW, OBJECTS, truth_rows

NOW = datetime(2026, 1, 15, 12, tzinfo=UTC)
ACTOR = "test:resolve"
_raw_ids = itertools.count(20_000_000)
_batches = itertools.count(900_000)

#: a person's standardized fields, as staging.donors holds them
JANE: dict[str, Any] = {
    "first_name": "Jane",
    "last_name": "Okafor",
    "last_name_key": "AKFR",
    "email": "jane.okafor@example.org",
    "phone": "+16175550142",
    "address_line1": "41 Linden St",
    "city": "Somerville",
    "region": "MA",
    "postal_code": "02143",
    "country_code": "US",
    "address_validated": True,
}


@functools.cache
def rules() -> ResolveRules:
    """Return the shipped resolve rules (loaded once)."""
    return load_resolve_rules()


def new_batch() -> int:
    """Return a fresh batch id."""
    return next(_batches)


def stage(
    db: psycopg.Connection,
    batch_id: int,
    source: str,
    source_id: str,
    *,
    updated: datetime | None = None,
    review_flags: list[dict[str, str]] | None = None,
    **fields: Any,
) -> int:
    """Insert one staged donor row; return its raw_record_id."""
    import json

    raw_id = next(_raw_ids)
    columns = [
        "raw_record_id",
        "batch_id",
        "source",
        "source_id",
        "source_updated_at",
        "review_flags",
        *fields,
    ]
    values = [
        raw_id,
        batch_id,
        source,
        source_id,
        updated or NOW - timedelta(days=30),
        json.dumps(review_flags or []),
        *fields.values(),
    ]
    db.execute(
        f"INSERT INTO staging.donors ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(values))})",
        values,
    )
    return raw_id


def run(db: psycopg.Connection, *batches: int, now: datetime = NOW) -> ResolveCounts:
    """Resolve these batches and commit."""
    counts = resolve_donors(db, list(batches), rules=rules(), now=now, actor=ACTOR)
    db.commit()
    return counts


def donor_of(db: psycopg.Connection, source: str, source_id: str) -> str:
    """Return the donor a source record is mapped to."""
    row = db.execute(
        "SELECT donor_id::text FROM core.donor_sources WHERE system = %s AND external_id = %s",
        (source, source_id),
    ).fetchone()
    assert row is not None, (source, source_id)
    return str(row[0])


def current_mapping(db: psycopg.Connection, source: str, source_id: str) -> tuple[str, str, Any]:
    """Return the current cluster_map row of a record: (donor, decision, explanation)."""
    row = db.execute(
        "SELECT c.donor_id::text, c.decision, c.match_explanation FROM core.cluster_map c"
        " JOIN core.donor_sources ds USING (donor_source_id)"
        " WHERE ds.system = %s AND ds.external_id = %s AND c.valid_to IS NULL",
        (source, source_id),
    ).fetchone()
    assert row is not None
    return str(row[0]), str(row[1]), row[2]


GOLDEN_COLUMNS = (
    "donor_id",
    "name_prefix",
    "first_name",
    "middle_name",
    "last_name",
    "name_suffix",
    "aliases",
    "is_organization",
    "organization_name",
    "last_name_key",
    "email",
    "email_verified",
    "phone",
    "address_line1",
    "address_line2",
    "city",
    "region",
    "postal_code",
    "country_code",
    "address_validated",
    "birth_date",
    "is_deceased",
    "deceased_date",
    "do_not_contact",
    "merged_into",
    "merged_at",
    "erased_at",
    "created_at",
)


def snapshot(db: psycopg.Connection) -> dict[str, list[tuple[Any, ...]]]:
    """Return golden records, current mappings, sources, match keys, households and reviews."""
    return {
        "donors": db.execute(
            f"SELECT {', '.join(GOLDEN_COLUMNS)} FROM core.donors ORDER BY donor_id"
        ).fetchall(),
        "mappings": db.execute(
            "SELECT cluster_map_id, donor_source_id, donor_id, decision, decision_id, match_score,"
            " match_explanation, review_id, decided_by, valid_from FROM core.cluster_map WHERE valid_to IS"
            " NULL"
            " ORDER BY cluster_map_id"
        ).fetchall(),
        "sources": db.execute(
            "SELECT donor_source_id, donor_id, system, external_id, role, attributes, attributes_at,"
            " last_raw_record_id FROM core.donor_sources ORDER BY donor_source_id"
        ).fetchall(),
        "keys": db.execute("SELECT * FROM core.donor_match_keys ORDER BY donor_id, pass").fetchall(),
        "households": db.execute(
            "SELECT donor_id, household_id, role FROM core.household_members ORDER BY donor_id"
        ).fetchall(),
        "reviews": db.execute(
            "SELECT left_donor_id, right_donor_id, score, status FROM sync.review_queue ORDER BY review_id"
        ).fetchall(),
    }


def truth_of_donors(
    db: psycopg.Connection, data: Path
) -> tuple[dict[str, set[str]], dict[str, set[str]], dict[str, str]]:
    """Return donor -> true persons, person -> donors and person -> true household of a sample."""
    inverse = {v: k for k, v in OBJECTS.items()}
    person = {(r["source"], r["source_record_id"]): r["person_id"] for r in truth_rows(data, "records")}
    household = {r["person_id"]: r["household_id"] for r in truth_rows(data, "households")}
    rows = db.execute(
        f"SELECT s.donor_id::text, r.source, r.entity, r.source_id FROM staging.donors s JOIN {ALL_RAW}"
        " USING (raw_record_id) WHERE s.donor_id IS NOT NULL"
    ).fetchall()
    persons: dict[str, set[str]] = defaultdict(set)
    donors: dict[str, set[str]] = defaultdict(set)
    for donor, source, entity, source_id in rows:
        found = person.get((inverse.get((source, entity), ""), source_id))
        if found is not None:
            persons[donor].add(found)
            donors[found].add(donor)
    return persons, donors, household


def test_stage_helper_writes_rows_resolve_reads(db: psycopg.Connection) -> None:
    batch = new_batch()
    stage(db, batch, "donorbox", "d-1", **JANE)
    counts = run(db, batch)
    assert (counts.source_records, counts.new_donors) == (1, 1)
    assert db.execute("SELECT first_name FROM core.donors").fetchone() == ("Jane",)


def resolve_jane(db: psycopg.Connection) -> str:
    """Resolve a donor (Jane Okafor, one Donorbox record); return her donor id."""
    batch = new_batch()
    stage(db, batch, "donorbox", "d-1", **JANE)
    run(db, batch)
    return donor_of(db, "donorbox", "d-1")
