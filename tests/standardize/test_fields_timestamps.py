"""parse_timestamps: every accepted form to a UTC instant, and the three timestamp errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from donor_sync.standardize.fields import parse_timestamps

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _one(value: Any, **kw: Any) -> tuple[pd.Timestamp | None, set[str]]:
    kw.setdefault("now", NOW)
    result = parse_timestamps(pd.Series([value], dtype=object), **kw)
    stamp = result.values.iloc[0, 0]
    return (None if pd.isna(stamp) else stamp), set(result.issues["code"])


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


@pytest.mark.parametrize(
    ("value", "kw", "expected"),
    [
        pytest.param("2019-03-14T03:27:15.000Z", {}, (utc("2019-03-14 03:27:15"), set()), id="iso-z"),
        pytest.param("2019-03-14T03:27:15+02:00", {}, (utc("2019-03-14 01:27:15"), set()), id="iso-offset"),
        pytest.param(
            "2019-03-14 03:27:15-0500", {}, (utc("2019-03-14 08:27:15"), set()), id="iso-compact-offset"
        ),
        pytest.param(
            "2019-05-26 22:07:32",
            {"timezone": "America/New_York"},
            (utc("2019-05-27 02:07:32"), set()),
            id="naive-local",
        ),
        pytest.param("2019-05-26 22:07:32", {}, (utc("2019-05-26 22:07:32"), set()), id="naive-utc-default"),
        pytest.param(
            "2019-03-14",
            {"timezone": "America/New_York"},
            (utc("2019-03-14 16:00"), set()),
            id="date-at-local-noon",
        ),
        pytest.param(
            "2019-03-14", {"timezone": "Asia/Tokyo"}, (utc("2019-03-14 03:00"), set()), id="noon-keeps-date"
        ),
        pytest.param(1552534035, {}, (utc("2019-03-14 03:27:15"), set()), id="epoch-int"),
        pytest.param("1552534035.5", {}, (utc("2019-03-14 03:27:15.5"), set()), id="epoch-text"),
        pytest.param(
            "03/14/2019",
            {"fmt": "%m/%d/%Y", "timezone": "America/Chicago"},
            (utc("2019-03-14 17:00"), set()),
            id="fmt",
        ),
        pytest.param(
            "2019-03-14T01:00:00Z",
            {"fmt": "%m/%d/%Y"},
            (utc("2019-03-14 01:00"), set()),
            id="iso-despite-fmt",
        ),
        pytest.param(
            "2019-11-03 01:30:00",
            {"timezone": "America/New_York"},
            (utc("2019-11-03 05:30"), set()),
            id="ambiguous-first",
        ),
        pytest.param(
            "2019-03-10 02:30:00",
            {"timezone": "America/New_York"},
            (utc("2019-03-10 07:00"), set()),
            id="skipped-hour",
        ),
        pytest.param("13/14/2019", {"fmt": "%m/%d/%Y"}, (None, {"invalid_timestamp"}), id="bad-fmt-date"),
        pytest.param("garbage", {}, (None, {"invalid_timestamp"}), id="garbage"),
        pytest.param("99999999999999", {}, (None, {"invalid_timestamp"}), id="epoch-out-of-range"),
        pytest.param("", {}, (None, {"invalid_timestamp"}), id="missing-required"),
        pytest.param(None, {"required": False}, (None, set()), id="missing-optional"),
        pytest.param("2031-01-01T00:00:00Z", {}, (utc("2031-01-01"), {"future_timestamp"}), id="future"),
        pytest.param(
            (NOW + timedelta(minutes=4)).isoformat(),
            {},
            (pd.Timestamp(NOW + timedelta(minutes=4)), set()),
            id="tolerated",
        ),
        pytest.param(
            "1980-01-01T00:00:00Z", {}, (utc("1980-01-01"), {"implausible_timestamp"}), id="before-1990"
        ),
    ],
)
def test_timestamp_cases(value: Any, kw: dict[str, Any], expected: tuple[Any, set[str]]) -> None:
    assert _one(value, **kw) == expected


def test_output_is_utc_microseconds_named_by_field() -> None:
    result = parse_timestamps(pd.Series(["2019-01-01T00:00:00Z"]), now=NOW, field="refunded_at")
    assert list(result.values.columns) == ["refunded_at"]
    assert str(result.values["refunded_at"].dtype) == "datetime64[us, UTC]"


@pytest.mark.parametrize(
    ("rendered", "fmt"),
    [
        pytest.param(lambda s: s.isoformat().replace("+00:00", "Z"), None, id="iso-z"),
        pytest.param(lambda s: str(int(s.timestamp())), None, id="epoch"),
        pytest.param(lambda s: s.strftime("%Y-%m-%d %H:%M:%S"), None, id="naive-utc"),
        pytest.param(lambda s: s.strftime("%d.%m.%Y %H:%M:%S"), "%d.%m.%Y %H:%M:%S", id="fmt"),
    ],
)
@settings(max_examples=60, deadline=None)
@given(seconds=st.integers(min_value=631152000, max_value=1767225600))
def test_any_instant_rendered_then_parsed_comes_back(rendered: Any, fmt: str | None, seconds: int) -> None:
    instant = datetime.fromtimestamp(seconds, tz=UTC)
    assert _one(rendered(instant), fmt=fmt) == (pd.Timestamp(instant), set())


def test_earliest_is_configurable_for_birth_dates() -> None:
    assert _one("1954-07-02", field="birth_date", required=False) == (
        utc("1954-07-02 12:00"),
        {"implausible_timestamp"},
    )
    assert _one("1954-07-02", field="birth_date", required=False, earliest=datetime(1900, 1, 1)) == (
        utc("1954-07-02 12:00"),
        set(),
    )
