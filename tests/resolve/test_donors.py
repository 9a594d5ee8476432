"""resolve_donors: deterministic rules, matching against golden records, households, idempotency."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from tests.resolve.test_donors_support import (
    JANE,
    NOW,
    current_mapping,
    donor_of,
    new_batch,
    resolve_jane,
    run,
    snapshot,
    stage,
)


@pytest.fixture
def jane(db: psycopg.Connection) -> str:
    """A resolved donor, Jane Okafor (one Donorbox record)."""
    return resolve_jane(db)


def test_same_source_id_keeps_its_donor_and_a_newer_version_updates_the_golden_record(
    db: psycopg.Connection, jane: str
) -> None:
    batch = new_batch()
    stage(db, batch, "donorbox", "d-1", updated=NOW - timedelta(days=1), **{**JANE, "phone": "+16175550199"})
    counts = run(db, batch)
    assert (counts.known_records, counts.new_records) == (1, 0)
    assert donor_of(db, "donorbox", "d-1") == jane
    assert db.execute("SELECT phone FROM core.donors WHERE donor_id = %s", (jane,)).fetchone() == (
        "+16175550199",
    )
    # an older version arriving late changes nothing
    late = new_batch()
    stage(db, late, "donorbox", "d-1", updated=NOW - timedelta(days=90), **{**JANE, "phone": "+16175550100"})
    run(db, late)
    assert db.execute("SELECT phone FROM core.donors WHERE donor_id = %s", (jane,)).fetchone() == (
        "+16175550199",
    )
    rows = db.execute(
        "SELECT donor_id::text, resolved_at FROM staging.donors WHERE source_id = 'd-1'"
    ).fetchall()
    assert {r[0] for r in rows} == {jane}
    assert all(r[1] == NOW for r in rows)


def test_same_normalized_email_from_another_source_is_the_same_donor(
    db: psycopg.Connection, jane: str
) -> None:
    batch = new_batch()
    # another platform, the name written differently, no phone or address: only the email agrees
    stage(
        db, batch, "classy", "c-9", first_name="J", last_name="Okafor-Reyes", email="Jane.Okafor@example.org"
    )
    counts = run(db, batch)
    assert counts.deterministic == 1
    donor, decision, explanation = current_mapping(db, "classy", "c-9")
    assert (donor, decision) == (jane, "deterministic")
    assert explanation["rule"] == "same_email"
    assert "okafor" not in str(explanation).lower()  # field names and numbers only


def test_a_shared_family_email_links_a_household_instead_of_merging(
    db: psycopg.Connection, jane: str
) -> None:
    batch = new_batch()
    stage(db, batch, "stripe", "cus_T", **{**JANE, "first_name": "Tobias", "phone": None})
    counts = run(db, batch)
    tobias = donor_of(db, "stripe", "cus_T")
    assert tobias != jane
    assert counts.household_links == 2
    members = db.execute(
        "SELECT donor_id::text, household_id, role FROM core.household_members ORDER BY role"
    ).fetchall()
    assert {m[0] for m in members} == {jane, tobias}
    assert len({m[1] for m in members}) == 1
    assert db.execute("SELECT name FROM core.households").fetchone() == ("Okafor Household",)


def test_a_probable_duplicate_is_merged_automatically_with_its_explanation(
    db: psycopg.Connection, jane: str
) -> None:
    batch = new_batch()
    # new email, same name, phone and address: the engine's auto_merge band
    stage(
        db,
        batch,
        "classy",
        "c-1",
        **{**JANE, "email": "jokafor@work.example.com", "address_line1": "41 Linden Street"},
    )
    run(db, batch)
    donor, decision, explanation = current_mapping(db, "classy", "c-1")
    assert (donor, decision) == (jane, "auto_merge")
    assert explanation["band"] == "auto_merge"
    assert set(explanation["contributions"]) >= {"first_name", "last_name", "phone", "address"}
    assert all(set(v) == {"level", "weight"} for v in explanation["contributions"].values())
    score = db.execute(
        "SELECT match_score FROM core.cluster_map c JOIN core.donor_sources ds USING (donor_source_id)"
        " WHERE ds.external_id = 'c-1'"
    ).fetchone()
    assert score is not None
    assert float(score[0]) >= 0.99


def test_a_stranger_becomes_a_new_donor(db: psycopg.Connection, jane: str) -> None:
    batch = new_batch()
    stage(
        db,
        batch,
        "classy",
        "c-2",
        first_name="Marcus",
        last_name="Whitfield",
        email="mw@example.net",
        city="Denver",
        region="CO",
        postal_code="80202",
        country_code="US",
    )
    counts = run(db, batch)
    assert counts.new_donors == 1
    assert donor_of(db, "classy", "c-2") != jane
    assert current_mapping(db, "classy", "c-2")[1] == "new_donor"


def test_records_of_one_batch_are_deduplicated_among_themselves(db: psycopg.Connection) -> None:
    batch = new_batch()
    stage(db, batch, "donorbox", "d-1", **JANE)
    stage(db, batch, "event_platform", "e-1", **{**JANE, "first_name": "Janie", "email": None})
    stage(
        db,
        batch,
        "classy",
        "c-1",
        **{**JANE, "first_name": "Tobias", "email": "tobias@example.org", "phone": None},
    )
    counts = run(db, batch)
    assert counts.new_donors == 2
    jane_id = donor_of(db, "donorbox", "d-1")
    assert donor_of(db, "event_platform", "e-1") == jane_id
    assert donor_of(db, "classy", "c-1") != jane_id  # a household member, linked
    decision_ids = db.execute(
        "SELECT count(DISTINCT decision_id) FROM core.cluster_map WHERE donor_id = %s AND valid_to IS NULL",
        (jane_id,),
    ).fetchone()
    assert decision_ids == (1,)  # one decision for the cluster
    assert db.execute("SELECT aliases FROM core.donors WHERE donor_id = %s", (jane_id,)).fetchone() == (
        ["Janie"],
    )


def test_re_running_resolve_is_idempotent(db: psycopg.Connection, jane: str) -> None:
    batch = new_batch()
    stage(db, batch, "classy", "c-1", **{**JANE, "email": "jokafor@work.example.com"})
    stage(db, batch, "stripe", "cus_T", **{**JANE, "first_name": "Tobias", "phone": None})
    run(db, batch)
    before = snapshot(db)
    again = run(db, batch)
    assert again.source_records == 0
    # re-standardization marks rows unresolved again: resolving them changes nothing
    db.execute("UPDATE staging.donors SET resolved_at = NULL")
    db.commit()
    counts = run(db, batch, now=NOW + timedelta(hours=1))
    assert counts.new_records == 0
    assert counts.golden_changed == 0
    assert snapshot(db) == before


def test_every_record_gets_a_source_row_with_its_attributes(db: psycopg.Connection, jane: str) -> None:
    row = db.execute(
        "SELECT role, id_kind, attributes, attributes_at, last_raw_record_id FROM core.donor_sources"
        " WHERE external_id = 'd-1'"
    ).fetchone()
    assert row is not None
    role, kind, attributes, attributes_at, raw_id = row
    assert (role, kind) == ("source", "donor")
    assert attributes["first_name"] == "Jane"
    assert attributes["email"] == JANE["email"]
    assert "batch_id" not in attributes
    assert "raw_record_id" not in attributes
    assert attributes_at == NOW - timedelta(days=30)
    assert (
        raw_id == db.execute("SELECT raw_record_id FROM staging.donors WHERE source_id = 'd-1'").fetchone()[0]
    )  # type: ignore[index]
    keys = db.execute("SELECT count(*) FROM core.donor_match_keys WHERE donor_id = %s", (jane,)).fetchone()
    assert keys is not None
    assert keys[0] >= 5


def test_resolve_is_audited_with_counts_only(db: psycopg.Connection, jane: str) -> None:
    row = db.execute("SELECT actor, details FROM sync.audit_log WHERE action = 'donors.resolved'").fetchone()
    assert row is not None
    actor, details = row
    assert actor == "test:resolve"
    assert details["new_donors"] == 1
    assert "Jane" not in str(details)
