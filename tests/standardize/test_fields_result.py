"""FieldResult and issues_where, and the contract every standardizer keeps: same rows, same labels."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from donor_sync.standardize import fields
from donor_sync.standardize.fields.result import ISSUE_COLUMNS, STRING, FieldResult, issues_where


def test_issues_where_keeps_labels_values_and_never_puts_the_value_in_the_message() -> None:
    values = pd.Series(["a@x.org", None, "bad", "worse"], index=["r1", "r2", "r3", "r4"])
    mask = pd.Series([False, True, True, pd.NA], index=values.index, dtype="boolean")
    issues = issues_where(mask, "email", "invalid_email", "error", "Email is not valid.", values)
    assert list(issues.columns) == list(ISSUE_COLUMNS)
    assert issues["row"].tolist() == ["r2", "r3"]  # NA in the mask counts as false
    assert issues["value"].tolist() == [None, "bad"]
    assert set(issues["code"]) == {"invalid_email"}
    assert set(issues["severity"]) == {"error"}


def test_issues_where_takes_one_message_per_row() -> None:
    mask = pd.Series([True, False, True], index=[10, 20, 30])
    message = pd.Series(["first reason", "unused", "second reason"], index=mask.index)
    issues = issues_where(mask, "phone", "invalid_phone", "warning", message)
    assert issues["message"].tolist() == ["first reason", "second reason"]
    assert issues["value"].tolist() == [None, None]


def test_concat_joins_columns_and_stacks_issues() -> None:
    index = pd.Index([5, 3])
    one = FieldResult(
        pd.DataFrame({"a": [1, 2]}, index=index),
        issues_where(pd.Series([True, False], index=index), "a", "x", "error", "m"),
    )
    two = FieldResult(
        pd.DataFrame({"b": [3, 4]}, index=index),
        issues_where(pd.Series([False, True], index=index), "b", "y", "warning", "m"),
    )
    both = FieldResult.concat(one, two)
    assert list(both.values.columns) == ["a", "b"]
    assert both.issues[["row", "code"]].to_numpy().tolist() == [[5, "x"], [3, "y"]]
    assert both.errors()["code"].tolist() == ["x"]


@pytest.mark.parametrize(
    ("other_index", "other_column"),
    [
        pytest.param(pd.Index([3, 5]), "b", id="different-index"),
        pytest.param(pd.Index([5, 3]), "a", id="same-column-twice"),
    ],
)
def test_concat_refuses_results_that_do_not_line_up(other_index: pd.Index, other_column: str) -> None:
    empty = issues_where(pd.Series([False, False]), "a", "x", "error", "m")
    one = FieldResult(pd.DataFrame({"a": [1, 2]}, index=pd.Index([5, 3])), empty)
    two = FieldResult(pd.DataFrame({other_column: [1, 2]}, index=other_index), empty)
    with pytest.raises(ValueError, match=r"FieldResult\.concat"):
        FieldResult.concat(one, two)


NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _text(index: pd.Index, values: list[Any]) -> pd.Series:
    return pd.Series(values, index=index, dtype=object)


#: every standardizer, called with text built from a list of values on the given index
CALLS: dict[str, Callable[[pd.Index, list[Any]], fields.FieldResult]] = {
    "clean_text": lambda ix, v: fields.clean_text(pd.DataFrame({"comment": _text(ix, v)}), {"comment": 5}),
    "standardize_names": lambda ix, v: fields.standardize_names(_text(ix, v), None, None),
    "normalize_emails": lambda ix, v: fields.normalize_emails(_text(ix, v)),
    "to_e164": lambda ix, v: fields.to_e164(_text(ix, v), None),
    "normalize_addresses": lambda ix, v: fields.normalize_addresses(
        _text(ix, v), None, _text(ix, v), None, _text(ix, v), _text(ix, v)
    ),
    "parse_amounts": lambda ix, v: fields.parse_amounts(_text(ix, v), None, _text(ix, v)),
    "parse_timestamps": lambda ix, v: fields.parse_timestamps(_text(ix, v), now=NOW),
    "extract_utm": lambda ix, v: fields.extract_utm(
        pd.DataFrame({"utm_source": _text(ix, v)}), _text(ix, v), None, fields.load_utm_config()
    ),
    "parse_flag_fields": lambda ix, v: fields.parse_flag_fields(pd.DataFrame({"deceased": _text(ix, v)})),
    "parse_consent_field": lambda ix, v: fields.parse_consent_field(_text(ix, v)),
}
SAMPLES = [
    "Jane Doe",
    "USD",
    "25.00",
    "yes",
    "https://x.example.org/?utm_source=fb",
    "+1 212 555 0100",
    "email.newsletter=opt_in",
    "",
    None,
    "=HYPERLINK(1)",
    "2019-03-14T03:27:15Z",
    "Acme Foundation",
    "US",
]


@pytest.mark.parametrize("name", sorted(CALLS))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.lists(st.sampled_from(SAMPLES) | st.text(max_size=12), min_size=1, max_size=12),
    kind=st.sampled_from(["strings", "shuffled-ints", "duplicates"]),
)
def test_every_standardizer_keeps_rows_and_labels_and_reports_only_existing_rows(
    name: str, data: list[Any], kind: str
) -> None:
    n = len(data)
    if kind == "strings":
        index = pd.Index([f"raw-{i * 7}" for i in range(n)])
    elif kind == "shuffled-ints":
        index = pd.Index(np.random.default_rng(n).permutation(n) * 10 + 3)
    else:
        index = pd.Index([i // 2 for i in range(n)])
    result = CALLS[name](index, data)
    assert result.values.index.equals(index)
    assert list(result.issues.columns) == list(ISSUE_COLUMNS)
    assert set(result.issues["row"]) <= set(index)
    assert set(result.issues["severity"]) <= {"error", "warning"}
    for message, value in zip(result.issues["message"], result.issues["value"], strict=True):
        assert isinstance(message, str)
        assert message
        if isinstance(value, str) and len(value) >= 4:
            assert value not in message
    for column in result.values.columns:
        if result.values[column].dtype == object:
            continue
        assert result.values[column].dtype in {STRING, np.dtype(bool), pd.BooleanDtype()} or str(
            result.values[column].dtype
        ).startswith(("datetime64", "Int"))
