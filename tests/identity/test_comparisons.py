"""Comparison levels, table-driven: each case is a pair of values and the level it must land in."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from donor_sync.identity import load_nicknames, prepare
from donor_sync.identity.comparisons import PairComparer, level_label
from donor_sync.identity.rules import Comparison

FIRST = Comparison.model_validate(
    {
        "name": "first_name",
        "column": "first_name",
        "levels": [
            {"type": "null"},
            {"type": "exact"},
            {"type": "nickname"},
            {"type": "initial"},
            {"type": "swapped", "other": "last_name"},
            {"type": "damerau_levenshtein", "distance": 1},
            {"type": "jaro_winkler", "threshold": 0.88},
            {"type": "else"},
        ],
    }
)
BIRTH = Comparison.model_validate(
    {
        "name": "birth_date",
        "column": "birth_date",
        "levels": [
            {"type": "null"},
            {"type": "exact"},
            {"type": "date_transposed"},
            {"type": "levenshtein", "distance": 1},
            {"type": "prefix", "length": 4},
            {"type": "else"},
        ],
    }
)
STREET = Comparison.model_validate(
    {
        "name": "street",
        "column": "street_number",
        "levels": [{"type": "null"}, {"type": "numeric", "max_difference": 2}, {"type": "else"}],
    }
)
CITY = Comparison.model_validate(
    {
        "name": "city",
        "column": "city",
        "levels": [{"type": "null"}, {"type": "token_set", "threshold": 0.9}, {"type": "else"}],
    }
)

CASES: list[dict[str, Any]] = [
    {
        "description": "exact",
        "comparison": FIRST,
        "left": {"first_name": "Anna"},
        "right": {"first_name": "ANNA"},
        "level": "exact",
    },
    {
        "description": "missing",
        "comparison": FIRST,
        "left": {"first_name": ""},
        "right": {"first_name": "Anna"},
        "level": "missing",
    },
    {
        "description": "nickname",
        "comparison": FIRST,
        "left": {"first_name": "William"},
        "right": {"first_name": "Bill"},
        "level": "nickname",
    },
    {
        "description": "initial",
        "comparison": FIRST,
        "left": {"first_name": "J"},
        "right": {"first_name": "Jane"},
        "level": "initial",
    },
    {
        "description": "first and last swapped",
        "comparison": FIRST,
        "left": {"first_name": "Grace", "last_name": "Hopper"},
        "right": {"first_name": "Hopper", "last_name": "Grace"},
        "level": "swapped with last_name",
    },
    {
        "description": "one typo",
        "comparison": FIRST,
        "left": {"first_name": "Jennifer"},
        "right": {"first_name": "Jenifer"},
        "level": "damerau_levenshtein <= 1",
    },
    {
        "description": "transposition is one edit",
        "comparison": FIRST,
        "left": {"first_name": "Michael"},
        "right": {"first_name": "Micheal"},
        "level": "damerau_levenshtein <= 1",
    },
    {
        "description": "jaro-winkler close",
        "comparison": FIRST,
        "left": {"first_name": "Katherine"},
        "right": {"first_name": "Katharyne"},
        "level": "jaro_winkler >= 0.88",
    },
    {
        "description": "different names",
        "comparison": FIRST,
        "left": {"first_name": "Robert"},
        "right": {"first_name": "Mary"},
        "level": "different",
    },
    {
        "description": "same date",
        "comparison": BIRTH,
        "left": {"birth_date": "1980-04-09"},
        "right": {"birth_date": "19800409"},
        "level": "exact",
    },
    {
        "description": "US vs ISO month/day swap",
        "comparison": BIRTH,
        "left": {"birth_date": "1980-04-09"},
        "right": {"birth_date": "1980-09-04"},
        "level": "day and month swapped",
    },
    {
        "description": "one digit off",
        "comparison": BIRTH,
        "left": {"birth_date": "19800409"},
        "right": {"birth_date": "19800419"},
        "level": "levenshtein <= 1",
    },
    {
        "description": "same year only",
        "comparison": BIRTH,
        "left": {"birth_date": "19800409"},
        "right": {"birth_date": "19801122"},
        "level": "first 4 characters equal",
    },
    {
        "description": "different dates",
        "comparison": BIRTH,
        "left": {"birth_date": "19800409"},
        "right": {"birth_date": "19621122"},
        "level": "different",
    },
    {
        "description": "numbers close",
        "comparison": STREET,
        "left": {"street": "12 Elm St"},
        "right": {"street": "14 Elm St"},
        "level": "within 2",
    },
    {
        "description": "numbers far",
        "comparison": STREET,
        "left": {"street": "12 Elm St"},
        "right": {"street": "40 Elm St"},
        "level": "different",
    },
    {
        "description": "token order ignored",
        "comparison": CITY,
        "left": {"city": "Salt Lake City"},
        "right": {"city": "City Salt Lake"},
        "level": "token_set >= 0.9",
    },
]


@pytest.mark.parametrize("case", [pytest.param(c, id=c["description"]) for c in CASES])
def test_comparison_level(case: dict[str, Any]) -> None:
    frame = pd.DataFrame([case["left"], case["right"]]).fillna("")
    prepared = prepare(frame)
    comparer = PairComparer(prepared, np.array([0]), np.array([1]), load_nicknames())
    comparison: Comparison = case["comparison"]
    level = comparison.levels[int(comparer.levels(comparison)[0])]
    assert level_label(level) == case["level"]


def test_levels_are_symmetric_and_inputs_unchanged() -> None:
    frame = pd.DataFrame({"first_name": ["William", "Bill", "Jon", "John"]})
    before = frame.copy()
    prepared = prepare(frame)
    nicknames = load_nicknames()
    ab = PairComparer(prepared, np.array([0, 2]), np.array([1, 3]), nicknames).levels(FIRST)
    ba = PairComparer(prepared, np.array([1, 3]), np.array([0, 2]), nicknames).levels(FIRST)
    assert ab.tolist() == ba.tolist()
    pd.testing.assert_frame_equal(frame, before)


@pytest.mark.parametrize(
    ("levels", "says"),
    [
        pytest.param([{"type": "exact"}, {"type": "else"}], "first level must be a null level", id="no-null"),
        pytest.param([{"type": "null"}, {"type": "exact"}], "last level must be an else level", id="no-else"),
        pytest.param(
            [{"type": "null"}, {"type": "else"}, {"type": "exact"}, {"type": "else"}],
            "only be first and last",
            id="else-in-middle",
        ),
    ],
)
def test_comparison_validates_level_order(levels: list[dict[str, Any]], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        Comparison.model_validate({"name": "x", "column": "first_name", "levels": levels})
