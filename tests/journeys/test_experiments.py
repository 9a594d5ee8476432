"""A/B and holdout assignment: deterministic, keyed, near its weights; recorded and sticky."""

from __future__ import annotations

import uuid
from collections import Counter

import psycopg

from donor_sync.journeys import decide, experiment_results
from donor_sync.journeys.assign import assign
from donor_sync.journeys.rules import Experiment
from tests.journeys.support import KEYS, add_donor, add_gift, decide_kwargs, journey, rules

EXPERIMENT = Experiment.model_validate(
    {
        "id": "thanks_test",
        "holdout": "0.1",
        "variants": [{"name": "a", "weight": 3}, {"name": "b", "weight": 1}],
    }
)


def test_same_donor_same_arm_and_shares_near_weights() -> None:
    ring = KEYS.ring("pseudonym")
    assert ring is not None
    donors = [str(uuid.UUID(int=n * 7919 + 1)) for n in range(10_000)]
    arms = [assign(ring, EXPERIMENT, d) for d in donors]
    assert arms == [assign(ring, EXPERIMENT, d) for d in donors]
    shares = {arm: n / len(donors) for arm, n in Counter(arms).items()}
    assert abs(shares["holdout"] - 0.10) < 0.015
    assert abs(shares["a"] - 0.675) < 0.02
    assert abs(shares["b"] - 0.225) < 0.02
    other = EXPERIMENT.model_copy(update={"id": "another_test"})
    moved = sum(assign(ring, other, d) != a for d, a in zip(donors, arms, strict=True))
    assert moved > 2000, "experiments are independent of each other"


def test_assignment_recorded_sticky_and_holdout_not_triggered(db: psycopg.Connection) -> None:
    r = rules(
        journey(
            "thanks",
            {"type": "designation", "designations": ["F"]},
            braze=True,
            experiment=EXPERIMENT.model_dump(mode="json"),
        )
    )
    donors = [add_donor(db) for _ in range(60)]
    for donor_id in donors:
        add_gift(db, donor_id, designation="F")
    decide(db, rules=r, **decide_kwargs())
    rows = db.execute(
        "SELECT donor_id::text, status, experiment_id, variant, outbox_id FROM sync.journey_enrollments"
    ).fetchall()
    ring = KEYS.ring("pseudonym")
    assert ring is not None
    assert {d: v for d, _, _, v, _ in rows} == {d: assign(ring, EXPERIMENT, d) for d in donors}
    for _, status, experiment_id, variant, outbox_id in rows:
        assert experiment_id == "thanks_test"
        assert (status, outbox_id is None) == (
            ("holdout", True) if variant == "holdout" else ("pending", False)
        )
    payloads = db.execute("SELECT payload FROM sync.outbox WHERE entity = 'journey_trigger'").fetchall()
    assert {p["properties"]["variant"] for (p,) in payloads} <= {"a", "b"}
    # Sticky: a donor already assigned keeps the arm even when the hash would now say otherwise.
    first = donors[0]
    recorded = next(v for d, _, _, v, _ in rows if d == first)
    forced = "b" if recorded != "b" else "a"
    db.execute("UPDATE sync.journey_enrollments SET variant = %s WHERE donor_id = %s", (forced, first))
    add_gift(db, first, designation="F")
    decide(db, rules=r, **decide_kwargs())
    variants = {
        v for (v,) in db.execute("SELECT variant FROM sync.journey_enrollments WHERE donor_id = %s", (first,))
    }
    assert variants == {forced}
    # Reported per arm.
    arms = {a.variant: a for a in experiment_results(db, reporting_currency="USD")}
    assert sum(a.donors for a in arms.values()) == 60
