"""resolve_donors on the sample generator's data, judged against its truth tables."""

from __future__ import annotations

import psycopg

from tests.resolve.test_donors_support import run, truth_of_donors
from tests.standardize.test_pipeline_support import land_and_standardize, sample


def _impure(persons: dict[str, set[str]]) -> list[set[str]]:
    return [found for found in persons.values() if len(found) > 1]


def test_a_sample_batch_resolves_with_high_precision_and_households_linked_not_merged(
    db: psycopg.Connection,
) -> None:
    data = sample()
    batches, _ = land_and_standardize(db, data)
    db.commit()
    counts = run(db, *batches)
    persons, donors, household = truth_of_donors(db, data)
    assert len(donors) >= 250  # the truth covers the staged records
    impure = _impure(persons)
    assert len(impure) <= max(1, len(persons) // 200), impure  # at most 0.5% of donors mix two people
    # no donor holds two members of one true household
    for found in impure:
        assert len({household.get(p) for p in found if household.get(p)}) != 1 or len(found) == 1
    # most people end as one donor (recall of the whole pipeline, not just automatic merges)
    split = sum(1 for found in donors.values() if len(found) > 1)
    assert split <= 0.15 * len(donors)
    assert counts.household_links > 0
    linked = db.execute(
        "SELECT m1.donor_id::text, m2.donor_id::text FROM core.household_members m1"
        " JOIN core.household_members m2 ON m1.household_id = m2.household_id AND m1.donor_id < m2.donor_id"
    ).fetchall()
    same_household = sum(
        1
        for a, b in linked
        if {household.get(p) for p in persons[a] | persons[b]} - {None}
        and len({household.get(p) for p in persons[a] | persons[b]}) == 1
    )
    assert same_household >= 0.8 * len(linked)  # household links are true households
    unresolved = db.execute("SELECT count(*) FROM staging.donors WHERE resolved_at IS NULL").fetchone()
    assert unresolved == (0,)
    current = db.execute(
        "SELECT count(*) FROM core.donor_sources ds WHERE NOT EXISTS (SELECT 1 FROM core.cluster_map c"
        " WHERE c.donor_source_id = ds.donor_source_id AND c.valid_to IS NULL)"
    ).fetchone()
    assert current == (0,)  # every record has a current mapping


def test_a_second_batch_matches_the_existing_golden_records(db: psycopg.Connection) -> None:
    data = sample()
    batches, _ = land_and_standardize(db, data)
    db.commit()
    first = run(db, *batches[:4])
    second = run(db, *batches[4:])
    assert first.new_donors > 0
    assert second.deterministic + second.auto_merged >= 0.3 * second.new_records
    # every attached record joined a donor the first batches created
    attached = db.execute(
        "SELECT count(*) FROM core.cluster_map c WHERE c.decision IN ('deterministic', 'auto_merge')"
        " AND EXISTS (SELECT 1 FROM core.cluster_map f JOIN core.donor_sources ds USING (donor_source_id)"
        "   JOIN staging.donors s ON s.source = ds.system AND s.source_id = ds.external_id"
        "   WHERE f.donor_id = c.donor_id AND f.decision = 'new_donor' AND s.batch_id = ANY(%s))",
        (batches[:4],),
    ).fetchone()
    assert attached is not None
    assert attached[0] == second.deterministic + second.auto_merged
    persons, _, _ = truth_of_donors(db, data)
    assert len(_impure(persons)) <= max(1, len(persons) // 200)
