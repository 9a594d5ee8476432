"""The safe transforms of a mapping file and the conversion to destination types.

Nothing here evaluates code written in YAML: each step is one of a fixed set of functions with
typed arguments (:mod:`donor_sync.delivery.mapping.model`). A step that cannot handle a value
raises :class:`TransformError` with a message that names what went wrong but never the value (it
may be a donor's PII); the renderer adds the object, field and record key.
"""

from __future__ import annotations

import datetime as dt
import uuid
import zoneinfo
from collections.abc import Callable, Mapping
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from donor_sync.delivery.mapping.model import (
    Boolean,
    Coalesce,
    Concat,
    DateFormat,
    Default,
    FieldType,
    Lookup,
    Lower,
    Picklist,
    Round,
    Scalar,
    Title,
    TransformStep,
    Trim,
    Truncate,
    Upper,
)

Step = Callable[[Any], Any]

_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})


class TransformError(ValueError):
    """A value cannot be transformed or converted; the message carries no value."""


# -- value helpers -------------------------------------------------------------------------------


def iso_datetime(moment: dt.datetime) -> str:
    """Return ``moment`` in UTC as ISO 8601 with milliseconds and ``Z`` (a naive one is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    utc = moment.astimezone(dt.UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


def text(value: Any) -> str | None:
    """Return ``value`` as text: ISO dates, UTC datetimes, plain decimals, ``true``/``false``."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.datetime):
        return iso_datetime(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID | int | float):
        return str(value)
    raise TransformError(f"cannot use a {type(value).__name__} as text")


def is_blank(value: Any) -> bool:
    """Return whether ``value`` is null or text with nothing but whitespace."""
    return value is None or (isinstance(value, str) and not value.strip())


def as_bool(value: Any) -> bool:
    """Return ``value`` as a boolean (booleans, 0/1, and yes/no/true/false text)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | Decimal) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise TransformError("not a boolean")


def as_decimal(value: Any) -> Decimal:
    """Return ``value`` as a Decimal (numbers and numeric text; never booleans)."""
    if isinstance(value, bool):
        raise TransformError("a boolean is not a number")
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int | float | str):
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            raise TransformError("not a number") from None
        if not number.is_finite():
            raise TransformError("not a finite number")
        return number
    raise TransformError(f"a {type(value).__name__} is not a number")


def as_date(value: Any) -> dt.date:
    """Return ``value`` as a date (a datetime gives its UTC date; ISO text is parsed)."""
    if isinstance(value, dt.datetime):
        return as_datetime(value).astimezone(dt.UTC).date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            return as_datetime(value).astimezone(dt.UTC).date()
    raise TransformError(f"a {type(value).__name__} is not a date")


def as_datetime(value: Any) -> dt.datetime:
    """Return ``value`` as an aware datetime (naive ones and dates are taken as UTC)."""
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    if isinstance(value, str):
        try:
            return as_datetime(dt.datetime.fromisoformat(value.strip()))
        except ValueError:
            raise TransformError("not an ISO 8601 date or datetime") from None
    raise TransformError(f"a {type(value).__name__} is not a datetime")


# -- conversion to the destination type ------------------------------------------------------------


def _to_text(value: Any) -> str | None:
    out = text(value)
    return out if out else None


def _to_number(value: Any) -> int | float:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return float(as_decimal(value))


def _to_integer(value: Any) -> int:
    number = as_decimal(value)
    if number != number.to_integral_value():
        raise TransformError("not a whole number (round it first)")
    return int(number)


CONVERTERS: Mapping[str, Callable[[Any], Any]] = {
    "string": _to_text,
    "picklist": _to_text,
    "boolean": as_bool,
    "number": _to_number,
    "integer": _to_integer,
    "date": lambda v: as_date(v).isoformat(),
    "datetime": lambda v: iso_datetime(as_datetime(v)),
}


def convert(value: Any, field_type: FieldType) -> Any:
    """Convert a transformed value to the JSON form of ``field_type`` (None stays None).

    Decimals become numbers (floats), dates ISO dates, datetimes ISO 8601 UTC, UUIDs text.
    """
    if value is None:
        return None
    if isinstance(value, list):
        raise TransformError("several values need a `concat` or `coalesce` step first")
    return CONVERTERS[field_type](value)


# -- the steps -------------------------------------------------------------------------------------


def _on_text(func: Callable[[str], str]) -> Step:
    def step(value: Any) -> Any:
        out = text(value)
        return None if out is None else func(out)

    return step


def _trim(value: Any) -> Any:
    out = text(value)
    return (out.strip() or None) if out is not None else None


def _concat(step: Concat) -> Step:
    args = step.concat

    def concat(value: Any) -> Any:
        parts = value if isinstance(value, list) else [value]
        texts = [t.strip() for t in (text(p) for p in parts) if t is not None and t.strip()]
        return f"{args.prefix}{args.separator.join(texts)}{args.suffix}" if texts else None

    return concat


def _coalesce(value: Any) -> Any:
    parts = value if isinstance(value, list) else [value]
    return next((p for p in parts if not is_blank(p)), None)


def _date_format(step: DateFormat) -> Step:
    fmt = step.date_format.format
    zone = zoneinfo.ZoneInfo(step.date_format.timezone)

    def date_format(value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, dt.datetime) or (isinstance(value, str) and "T" in value):
            return as_datetime(value).astimezone(zone).strftime(fmt)
        return as_date(value).strftime(fmt)

    return date_format


def _round(digits: int) -> Step:
    quantum = Decimal(1).scaleb(-digits)

    def round_(value: Any) -> Any:
        return None if value is None else as_decimal(value).quantize(quantum, rounding=ROUND_HALF_UP)

    return round_


def _table_lookup(
    table: Mapping[str, Any],
    *,
    ignore_case: bool,
    fallback: Any,
    on_missing: str,
    what: str,
) -> Step:
    index = {(k.casefold() if ignore_case else k): v for k, v in table.items()}

    def lookup(value: Any) -> Any:
        if value is None:
            return None
        key = text(value) or ""
        found = index.get(key.casefold() if ignore_case else key, _MISSING)
        if found is not _MISSING:
            return found
        if fallback is not None:
            return fallback
        if on_missing == "null":
            return None
        if on_missing == "error":
            raise TransformError(f"value not in the {what} table and no fallback")
        return value

    return lookup


_MISSING = object()


def _boolean(when_true: Scalar, when_false: Scalar) -> Step:
    def boolean(value: Any) -> Any:
        return None if value is None else (when_true if as_bool(value) else when_false)

    return boolean


def _table_step(step: Lookup | Picklist, tables: Mapping[str, Mapping[str, Any]]) -> Step:
    args = step.lookup if isinstance(step, Lookup) else step.picklist
    table = args.values if args.values is not None else tables[args.table or ""]
    return _table_lookup(
        table, ignore_case=args.ignore_case, fallback=args.fallback, on_missing=args.on_missing, what=step.op
    )


def _default(default: Scalar) -> Step:
    return lambda value: default if is_blank(value) else value


def _truncate(limit: int) -> Step:
    return lambda value: None if value is None else (text(value) or "")[:limit] or None


Tables = Mapping[str, Mapping[str, Any]]

_BUILDERS: Mapping[type, Callable[[Any, Tables], Step]] = {
    Trim: lambda step, tables: _trim,
    Upper: lambda step, tables: _on_text(str.upper),
    Lower: lambda step, tables: _on_text(str.lower),
    Title: lambda step, tables: _on_text(str.title),
    Concat: lambda step, tables: _concat(step),
    Coalesce: lambda step, tables: _coalesce,
    Default: lambda step, tables: _default(step.default),
    DateFormat: lambda step, tables: _date_format(step),
    Round: lambda step, tables: _round(step.round),
    Truncate: lambda step, tables: _truncate(step.truncate),
    Lookup: _table_step,
    Picklist: _table_step,
    Boolean: lambda step, tables: _boolean(step.boolean.when_true, step.boolean.when_false),
}


def compile_step(step: TransformStep, tables: Tables) -> Step:
    """Return the function of one transform step (named tables resolved from ``tables``)."""
    return _BUILDERS[type(step)](step, tables)


def step_outputs(step: TransformStep, tables: Tables) -> list[Any]:
    """Return the constants a step can produce by itself (table values, fallbacks, defaults)."""
    if isinstance(step, Default):
        return [step.default]
    if isinstance(step, Boolean):
        return [step.boolean.when_true, step.boolean.when_false]
    if isinstance(step, Lookup | Picklist):
        args = step.lookup if isinstance(step, Lookup) else step.picklist
        table = args.values if args.values is not None else tables.get(args.table or "", {})
        return [v for v in [*table.values(), args.fallback] if v is not None]
    return []
