"""The golden records' stored blocking keys, candidate lookup, the fast path, and match_record."""

from __future__ import annotations

import pandas as pd
import psycopg

from donor_sync.identity import PREPARED_COLUMNS, prepare
from donor_sync.identity.columns import NAME_PART_COLUMNS
from donor_sync.resolve import match_store
from donor_sync.resolve.donors import match_record
from tests.resolve.test_donors_support import JANE, new_batch, resolve_jane, rules, run, stage
from tests.standardize.test_pipeline_support import land_and_standardize, sample

_STAGED = (
    "SELECT source || ':' || source_id AS donor_id, first_name, middle_name, last_name, name_suffix,"
    " is_organization,"
    " organization_name,"
    " email, phone, address_line1, address_line2, city, region, postal_code, country_code, birth_date::text"
    " FROM staging.donors"
)


def test_the_fast_path_prepares_staged_records_exactly_as_the_engine(db: psycopg.Connection) -> None:
    land_and_standardize(db, sample())
    cur = db.execute(_STAGED)
    staged = pd.DataFrame(cur.fetchall(), columns=[c.name for c in cur.description or []])
    frame = match_store.identity_frame(staged)
    frame = frame[frame["full_name"].isna()].reset_index(drop=True)  # organizations take the engine's path
    assert len(frame) > 500
    assert match_store.standardized_fast_path(frame)
    engine = prepare(frame, nicknames=rules().nicknames).frame
    fast = match_store.prepare_standardized(frame, nicknames=rules().nicknames).frame
    assert fast["middle_initial"].notna().any(), "the sample has middle names"
    for column in (*PREPARED_COLUMNS, *NAME_PART_COLUMNS):
        same = (engine[column] == fast[column]).fillna(False) | (engine[column].isna() & fast[column].isna())
        assert same.all(), (column, int((~same).sum()))
    small = match_store.long_keys(
        match_store.prepare_standardized(frame.iloc[:50], nicknames=rules().nicknames), rules().dedup
    )
    large = match_store.long_keys(prepare(frame, nicknames=rules().nicknames), rules().dedup)
    large = large[large["row"] < 50].reset_index(drop=True)
    key = ["pass", "row"]
    assert (
        small.sort_values(key)
        .reset_index(drop=True)[["row", "pass", "key"]]
        .astype(str)
        .equals(large.sort_values(key).reset_index(drop=True)[["row", "pass", "key"]].astype(str))
    )


def test_a_block_over_the_cap_gives_no_candidates(db: psycopg.Connection) -> None:
    batch = new_batch()
    for i in range(3):  # three Okafors in Somerville, each with their own email and phone
        stage(
            db,
            batch,
            "donorbox",
            f"d-{i}",
            **{
                **JANE,
                "first_name": ["Ada", "Bea", "Cy"][i],
                "email": f"o{i}@example.org",
                "phone": f"+1617555010{i}",
                "address_line1": f"{i + 1} Elm St",
            },
        )
    run(db, batch)
    dedup = rules().dedup
    capped = dedup.model_copy(update={"blocking": dedup.blocking.model_copy(update={"max_block_size": 2})})
    probe = match_store.identity_frame(
        pd.DataFrame([{**JANE, "donor_id": "probe", "email": "o1@example.org"}])
    )
    keys = match_store.long_keys(prepare(probe, nicknames=rules().nicknames), capped)
    found = match_store.fetch_candidates(db, keys, capped)
    names = [p.name for p in dedup.blocking.passes]
    # only the email pass finds someone: the surname block holds three donors, over the cap of two
    assert len(found) == 1
    assert int(found["passes"].iat[0]) == 1 << names.index("email")
    uncapped = match_store.fetch_candidates(db, keys, dedup)
    assert len(uncapped) == 3


def test_match_record_finds_the_golden_record_of_a_new_version(db: psycopg.Connection) -> None:
    jane = resolve_jane(db)
    scored = match_record(db, {**JANE, "first_name": "Janie", "email": "jane@new.example.org"}, rules=rules())
    assert scored["donor_id"].iat[0] == jane
    assert str(scored["band"].iat[0]) == "auto_merge"
    stranger = match_record(db, {"first_name": "Zed", "last_name": "Quill", "city": "Nome"}, rules=rules())
    assert stranger.empty


def test_merged_away_and_refreshed_donors_keep_keys_current(db: psycopg.Connection) -> None:
    jane = resolve_jane(db)
    before = set(db.execute("SELECT pass, key_hash FROM core.donor_match_keys").fetchall())
    db.execute('UPDATE core.donor_sources SET attributes = attributes || \'{"email": "new@example.org"}\'')
    from donor_sync.resolve import recompute_golden

    recompute_golden(db, [jane], rules().survivorship)
    match_store.refresh_match_keys(db, [jane], rules().dedup, nicknames=rules().nicknames)
    after = set(db.execute("SELECT pass, key_hash FROM core.donor_match_keys").fetchall())
    email_pass = [p.name for p in rules().dedup.blocking.passes].index("email")
    assert before - after == {k for k in before if k[0] == email_pass}
    assert len(after) == len(before)
    assert match_store.stored_version(db) == match_store.blocking_version(rules().dedup)


def test_organizations_match_by_their_name_on_both_paths() -> None:
    org = {"donor_id": "o", "is_organization": True, "organization_name": "Acme Foundation", "city": "Reno"}
    person = {"donor_id": "p", "is_organization": False, "first_name": "Ann", "organization_name": "Acme"}
    few = match_store.identity_frame(pd.DataFrame([org, person]))
    many = match_store.identity_frame(pd.DataFrame([org, person] * 300))  # the vectorized path
    for frame in (few, many.iloc[:2].reset_index(drop=True)):
        assert frame["full_name"].tolist()[:1] == ["Acme Foundation"]
        assert pd.isna(frame["full_name"].iat[1])
        assert frame["state"].isna().all()
        assert frame["city"].iat[0] == "Reno"
