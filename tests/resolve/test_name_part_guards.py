"""Resolve keeps the merge guards on name parts: a Jr and a Sr, or two middle initials, at one
address are not merged automatically, on the incremental (fast) path too."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.resolve.test_donors_support import JANE, donor_of, new_batch, run, stage

# One name, address, phone and birth date, two emails (one email would merge them by the
# deterministic rule before any score): without the guards the pair merges automatically.
FATHER: dict[str, Any] = {**JANE, "first_name": "Robert", "birth_date": "1961-04-09"}


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"name_suffix": "Sr"}, {"name_suffix": "Jr"}),
        ({"middle_name": "Adebayo"}, {"middle_name": "Chinedu"}),
    ],
    ids=["generation", "middle_initial"],
)
def test_name_part_conflicts_go_to_review_not_merge(
    db: psycopg.Connection, first: dict[str, Any], second: dict[str, Any]
) -> None:
    one = new_batch()
    stage(db, one, "donorbox", "g-1", **FATHER, **first)
    run(db, one)
    two = new_batch()
    stage(db, two, "classy", "g-2", **{**FATHER, "email": "robert.o@example.net"}, **second)
    counts = run(db, two)
    assert donor_of(db, "donorbox", "g-1") != donor_of(db, "classy", "g-2")
    assert counts.review_queued == 1


def test_the_same_name_parts_still_merge(db: psycopg.Connection) -> None:
    one = new_batch()
    stage(db, one, "donorbox", "s-1", **FATHER, name_suffix="Jr", middle_name="Adebayo")
    run(db, one)
    two = new_batch()
    stage(
        db,
        two,
        "classy",
        "s-2",
        **{**FATHER, "email": "robert.o@example.net"},
        name_suffix="Jr.",
        middle_name="A",
    )
    run(db, two)
    assert donor_of(db, "donorbox", "s-1") == donor_of(db, "classy", "s-2")
