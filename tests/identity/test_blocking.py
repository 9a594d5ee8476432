"""Blocking: recall on a labelled fixture, the block-size cap, pass masks, incremental lookups."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from donor_sync.identity import blocking_keys, candidate_pairs, link_candidates, load_rules, prepare
from donor_sync.identity.blocking import pairs_within_blocks
from donor_sync.identity.rules import Blocking


def _true_pairs(frame: pd.DataFrame) -> set[tuple[int, int]]:
    out = set()
    for _, rows in frame.groupby("person").groups.items():
        out |= {tuple(sorted(p)) for p in itertools.combinations(rows.tolist(), 2)}  # type: ignore[misc]
    return out


def test_blocking_recall_on_labelled_fixture(donors: pd.DataFrame) -> None:
    prepared = prepare(donors)
    pairs = candidate_pairs(prepared, load_rules().blocking)
    found = set(zip(pairs.left.tolist(), pairs.right.tolist(), strict=True))
    truth = _true_pairs(donors)
    assert truth <= found  # every true pair is a candidate
    assert all(a < b for a, b in found)
    assert len(found) == len(set(found))


def test_pairs_within_blocks_is_all_pairs_and_respects_the_cap() -> None:
    codes = np.array([0, 1, 0, 2, 0, 1, -1, 2, 2, 2])
    left, right, skipped = pairs_within_blocks(codes, cap=3)
    got = set(zip(left.tolist(), right.tolist(), strict=True))
    assert got == {(0, 2), (0, 4), (2, 4), (1, 5)}  # block 2 has 4 members: over the cap
    assert skipped == 1


def test_pass_mask_names_every_pass_that_found_a_pair() -> None:
    frame = pd.DataFrame(
        {"first_name": ["Ann", "Ann"], "last_name": ["Lee", "Lee"], "email": ["a@x.org", "a@x.org"]}
    )
    blocking = Blocking.model_validate(
        {
            "passes": [
                {"name": "email", "columns": ["email"]},
                {"name": "names", "columns": ["first_name", "last_name"]},
            ]
        }
    )
    pairs = candidate_pairs(prepare(frame), blocking)
    assert len(pairs) == 1
    assert pairs.pass_labels(0) == ["email", "names"]


def test_keys_per_record_and_link_candidates_match_the_batch_pairs(donors: pd.DataFrame) -> None:
    rules = load_rules()
    prepared = prepare(donors)
    keys = blocking_keys(prepared, rules.blocking)
    assert list(keys.columns) == ["record_id", *(f"bk_{p.name}" for p in rules.blocking.passes)]
    assert keys["bk_email"].isna().sum() == (donors["email"] == "").sum()
    # new = the last three records, existing = the rest: the lookup finds the batch's cross pairs
    new, existing = keys.iloc[6:], keys.iloc[:6]
    found = link_candidates(new, existing, rules.blocking)
    batch = candidate_pairs(prepared, rules.blocking)
    expected = {
        (b - 6, a) for a, b in zip(batch.left.tolist(), batch.right.tolist(), strict=True) if a < 6 <= b
    }
    assert set(zip(found["new_row"].tolist(), found["existing_row"].tolist(), strict=True)) == expected
