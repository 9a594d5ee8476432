"""The safe transforms and the conversion to destination types, one case at a time."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pytest

from donor_sync.delivery.mapping.model import FieldMapping
from donor_sync.delivery.mapping.transforms import TransformError, compile_step, convert

TABLES = {"colours": {"r": "Red", "g": "Green", "true": "Yes"}}
EVENING_NY = dt.datetime(2024, 3, 1, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5)))


def _apply(steps: list[Any], value: Any) -> Any:
    field = FieldMapping.model_validate({"to": "X", "from": "a", "type": "string", "transforms": steps})
    for step in field.transforms:
        value = compile_step(step, TABLES)(value)
    return value


@pytest.mark.parametrize(
    ("steps", "value", "expected"),
    [
        pytest.param(["trim"], "  Ada \n", "Ada", id="trim"),
        pytest.param(["trim"], "   ", None, id="trim-to-null"),
        pytest.param(["upper"], "ada", "ADA", id="upper"),
        pytest.param(["lower"], "ADA@EXAMPLE.ORG", "ada@example.org", id="lower"),
        pytest.param(["title"], "mary-jo o'neil", "Mary-Jo O'Neil", id="title"),
        pytest.param(["trim"], None, None, id="null-passes"),
        pytest.param(
            [{"concat": {"separator": "-"}}], ["a", None, " ", " b "], "a-b", id="concat-skips-empty"
        ),
        pytest.param(
            [{"concat": {"prefix": "Gift "}}],
            [dt.date(2024, 3, 1), "x"],
            "Gift 2024-03-01 x",
            id="concat-prefix",
        ),
        pytest.param([{"concat": {"prefix": "Gift "}}], [None, ""], None, id="concat-all-empty"),
        pytest.param(["coalesce"], [None, "  ", "x", "y"], "x", id="coalesce"),
        pytest.param(["coalesce"], [None, False], False, id="coalesce-keeps-false"),
        pytest.param([{"default": "Unknown"}], None, "Unknown", id="default-null"),
        pytest.param([{"default": "Unknown"}], "Smith", "Smith", id="default-keeps"),
        pytest.param([{"date_format": "%d/%m/%Y"}], dt.date(2024, 3, 1), "01/03/2024", id="date-format"),
        pytest.param(
            [{"date_format": {"format": "%Y-%m-%d %H:%M", "timezone": "Europe/London"}}],
            EVENING_NY,
            "2024-03-02 04:30",
            id="datetime-format-in-zone",
        ),
        pytest.param([{"date_format": "%Y"}], "2024-03-01", "2024", id="date-format-of-text"),
        pytest.param([{"round": 2}], Decimal("2.345"), Decimal("2.35"), id="round-half-up"),
        pytest.param([{"round": 0}], "2.5", Decimal("3"), id="round-text"),
        pytest.param([{"truncate": 3}], "abcdef", "abc", id="truncate"),
        pytest.param([{"lookup": {"values": {"a": "A"}}}], "a", "A", id="lookup-inline"),
        pytest.param([{"lookup": {"values": {"a": "A"}}}], "b", "b", id="lookup-keeps-a-miss"),
        pytest.param(
            [{"lookup": {"values": {"a": "A"}, "on_missing": "null"}}], "b", None, id="lookup-miss-null"
        ),
        pytest.param([{"lookup": {"values": {"a": "A"}, "fallback": "Z"}}], "b", "Z", id="lookup-fallback"),
        pytest.param(
            [{"lookup": {"table": "colours", "ignore_case": True}}], "R", "Red", id="lookup-named-ci"
        ),
        pytest.param([{"picklist": {"table": "colours"}}], True, "Yes", id="picklist-boolean-key"),
        pytest.param([{"picklist": {"values": {"1": "One"}}}], 1, "One", id="picklist-number-key"),
        pytest.param(
            [{"picklist": {"values": {"a": "A"}, "on_missing": None}}], "b", None, id="picklist-null"
        ),
        pytest.param([{"boolean": {"when_true": "Y", "when_false": "N"}}], True, "Y", id="boolean-true"),
        pytest.param([{"boolean": {"when_true": "Y", "when_false": "N"}}], "no", "N", id="boolean-text"),
        pytest.param([{"boolean": {"when_true": "Y", "when_false": "N"}}], None, None, id="boolean-null"),
        pytest.param(["trim", "upper", {"truncate": 2}], " ada ", "AD", id="in-order"),
    ],
)
def test_steps(steps: list[Any], value: Any, expected: Any) -> None:
    assert _apply(steps, value) == expected


@pytest.mark.parametrize(
    ("steps", "value", "says"),
    [
        pytest.param(
            [{"picklist": {"values": {"a": "A"}}}],
            "secret@example.org",
            "not in the picklist table",
            id="picklist-miss",
        ),
        pytest.param(
            [{"lookup": {"values": {"a": "A"}, "on_missing": "error"}}],
            "kiwi-7",
            "not in the lookup table",
            id="lookup-error",
        ),
        pytest.param(
            [{"boolean": {"when_true": 1, "when_false": 0}}], "maybe", "not a boolean", id="boolean-junk"
        ),
        pytest.param([{"round": 2}], "twelve", "not a number", id="round-junk"),
        pytest.param([{"round": 2}], True, "a boolean is not a number", id="round-boolean"),
        pytest.param([{"date_format": "%Y"}], "yesterday", "not an ISO 8601", id="date-junk"),
    ],
)
def test_step_errors_carry_no_value(steps: list[Any], value: Any, says: str) -> None:
    with pytest.raises(TransformError, match=says) as caught:
        _apply(steps, value)
    assert str(value) not in str(caught.value)


@pytest.mark.parametrize(
    ("value", "field_type", "expected"),
    [
        pytest.param(Decimal("25.5000"), "number", 25.5, id="decimal-number"),
        pytest.param(3, "number", 3, id="int-number"),
        pytest.param("12.50", "number", 12.5, id="text-number"),
        pytest.param(Decimal("2.0000"), "integer", 2, id="whole-decimal-integer"),
        pytest.param(True, "boolean", True, id="bool"),
        pytest.param("Yes", "boolean", True, id="yes-boolean"),
        pytest.param(0, "boolean", False, id="zero-boolean"),
        pytest.param(EVENING_NY, "date", "2024-03-02", id="datetime-gives-utc-date"),
        pytest.param(dt.date(2024, 3, 1), "date", "2024-03-01", id="date"),
        pytest.param("2024-03-01", "date", "2024-03-01", id="text-date"),
        pytest.param(EVENING_NY, "datetime", "2024-03-02T04:30:00.000Z", id="datetime-utc"),
        pytest.param(
            dt.datetime(2024, 3, 1, 8, 0, 0, 123456),
            "datetime",
            "2024-03-01T08:00:00.123Z",
            id="naive-as-utc",
        ),
        pytest.param(dt.date(2024, 3, 1), "datetime", "2024-03-01T00:00:00.000Z", id="date-midnight"),
        pytest.param("2024-03-01T10:00:00+02:00", "datetime", "2024-03-01T08:00:00.000Z", id="text-datetime"),
        pytest.param(uuid.UUID(int=7), "string", "00000000-0000-0000-0000-000000000007", id="uuid-text"),
        pytest.param(Decimal("25.5000"), "string", "25.5000", id="decimal-text"),
        pytest.param(False, "string", "false", id="bool-text"),
        pytest.param("", "string", None, id="empty-is-null"),
        pytest.param("Closed Won", "picklist", "Closed Won", id="picklist"),
        pytest.param(None, "number", None, id="null"),
    ],
)
def test_conversion(value: Any, field_type: Any, expected: Any) -> None:
    converted = convert(value, field_type)
    assert converted == expected
    assert type(converted) is type(expected)


@pytest.mark.parametrize(
    ("value", "field_type", "says"),
    [
        pytest.param(Decimal("2.5"), "integer", "not a whole number", id="fraction-integer"),
        pytest.param(True, "number", "a boolean is not a number", id="bool-number"),
        pytest.param("soon", "datetime", "not an ISO 8601", id="junk-datetime"),
        pytest.param(["a", "b"], "string", "need a `concat` or `coalesce`", id="list"),
        pytest.param(object(), "string", "cannot use a object as text", id="object"),
    ],
)
def test_conversion_errors(value: Any, field_type: Any, says: str) -> None:
    with pytest.raises(TransformError, match=says):
        convert(value, field_type)


def test_steps_do_not_change_their_input() -> None:
    parts = ["a", None, "b"]
    assert _apply([{"concat": {"separator": "+"}}], parts) == "a+b"
    assert parts == ["a", None, "b"]
