"""Households, clustering without chaining, explanations and weight fitting."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from donor_sync.identity import (
    AUTO_MERGE,
    HOUSEHOLD,
    REVIEW,
    MatchModel,
    comparison_levels,
    dedupe,
    fit_from_labels,
    load_nicknames,
    load_rules,
    prepare,
    score_pairs,
)
from donor_sync.identity.clustering import cluster_pairs, connected_components
from donor_sync.identity.explain import contributions


def test_duplicates_merge_and_household_is_linked_never_merged(donors: pd.DataFrame) -> None:
    result = dedupe(donors)
    records = result.records.set_index("record_id")
    cluster = records["cluster_id"]
    assert cluster["r1"] == cluster["r2"]  # Robert / Bob Smithers: one email
    assert cluster["r5"] == cluster["r6"]
    assert cluster["r7"] == cluster["r8"]  # Jonathan / Jon: one phone, no one else's
    assert cluster["r4"] != cluster["r1"]  # Mary Smithers: same address and phone, another person
    assert cluster["r9"] not in set(cluster.drop("r9"))
    pairs = result.pairs
    # Robert Smithers twice at one address with the phone Mary shares (the household's) and no
    # email: that looks the same for one donor as for two namesakes of the household -> review
    r3 = pairs[(pairs["left_id"] == "r1") & (pairs["right_id"] == "r3")].iloc[0]
    assert r3["band"] == REVIEW
    assert cluster["r3"] != cluster["r1"]
    mary = pairs[(pairs["left_id"] == "r1") & (pairs["right_id"] == "r4")].iloc[0]
    assert mary["band"] == HOUSEHOLD
    assert records.loc["r4", "household_id"] == records.loc["r1", "household_id"] is not None
    assert pd.isna(records.loc["r9", "household_id"])


def test_household_wins_over_a_high_score_and_a_shared_mailbox() -> None:
    frame = pd.DataFrame(
        {
            "record_id": ["a", "b"],
            "first_name": ["Daniel", "Danielle"],
            "last_name": ["Okoro", "Okoro"],
            "email": ["okoro.family@example.org"] * 2,
            "phone": ["617-555-0110"] * 2,
            "street": ["5 Birch Rd", "5 Birch Road"],
            "city": ["Quincy", "Quincy"],
            "postal_code": ["02169", "02169"],
            "country": ["US", "US"],
        }
    )
    result = dedupe(frame)
    assert result.pairs["band"].tolist() == [HOUSEHOLD]
    assert result.records["cluster_id"].nunique() == 2


def test_no_chaining_through_a_weak_link() -> None:
    # a-b and b-c merge, but a and c were compared and are clearly different: they stay apart
    left, right = np.array([0, 1, 0]), np.array([1, 2, 2])
    weight = np.array([20.0, 15.0, -30.0])
    merge = np.array([True, True, False])
    cannot = np.array([False, False, True])
    labels = cluster_pairs(3, left, right, weight=weight, merge=merge, cannot_link=cannot)
    assert labels[0] == labels[1]  # the strongest link is taken first
    assert labels[2] != labels[0]
    # without the cannot-link, plain connected components would chain all three
    assert len(set(connected_components(3, left[merge], right[merge]).tolist())) == 1
    free = cluster_pairs(3, left, right, weight=weight, merge=merge, cannot_link=np.zeros(3, dtype=bool))
    assert len(set(free.tolist())) == 1


def test_explanation_sums_to_the_score(donors: pd.DataFrame) -> None:
    result = dedupe(donors)
    for i in range(len(result.pairs)):
        parts = contributions(result, i)
        assert sum(p.weight for p in parts) == pytest.approx(result.pairs["match_weight"].iat[i], abs=1e-3)
    text = result.explain(0)
    assert "total" in text
    assert "prior" in text
    assert "smithers" not in text.lower()  # no values unless asked for
    assert "smithers" in result.explain(0, show_values=True).lower()


def test_fitting_from_labels_moves_weights_the_right_way(donors: pd.DataFrame) -> None:
    rules = load_rules()
    prepared = prepare(donors)
    # labelled pairs: many true matches whose first names differ entirely (the review queue said so)
    left = np.array([0, 0, 0, 1, 4])
    right = np.array([3, 8, 4, 3, 8])
    labels = np.array([True, True, True, True, False])
    levels = comparison_levels(prepared, left, right, rules.comparisons, load_nicknames())
    model = MatchModel.from_rules(rules)
    fitted = fit_from_labels(model, levels, labels, prior_strength=1.0)
    k = [c.name for c in rules.comparisons].index("first_name")
    else_level = len(rules.comparisons[k].levels) - 1
    assert fitted.weights()[k][else_level] > model.weights()[k][else_level]
    assert fitted.history[-1] == {"step": "labels", "matches": 4, "non_matches": 1}


def test_score_pairs_matches_a_new_donor_against_existing_ones(donors: pd.DataFrame) -> None:
    result = dedupe(donors)
    new = pd.DataFrame(
        [
            {
                "record_id": "n1",
                "first_name": "Bobby",
                "last_name": "Smithers",
                "email": "rob.smithers@example.org",
                "country": "US",
            }
        ]
    )
    scored = score_pairs(new, donors, model=result.model)
    assert set(scored["left_id"]) == {"n1"}
    best = scored.sort_values("match_weight", ascending=False).iloc[0]
    assert best["right_id"] in {"r1", "r2"}
    assert best["band"] == AUTO_MERGE
