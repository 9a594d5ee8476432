"""Timestamps from any source into UTC instants (``datetime64[us, UTC]``), vectorized.

Accepted, per value:

- ISO 8601 with ``Z`` or an offset (``2019-03-14T03:27:15.000Z``, ``...+02:00``): that instant;
- ISO 8601 without an offset (``2019-05-26 22:07:32``): wall-clock time in ``timezone``;
- epoch seconds, as a number or its text (``1552534035``, ``1552534035.5``): that instant;
- the format's own ``fmt`` (``%m/%d/%Y``), tried first when given: in ``timezone`` unless the
  format has ``%z``.

A date without a time of day (``2019-03-14``, or a ``fmt`` without hours) is taken at **12:00
local time**, not midnight: noon converts to the same UTC date for every offset from -12 to +11
hours, so a cheque deposited on the 14th stays a gift of the 14th in UTC reports; midnight would
move it to the 13th in every zone east of UTC. Ambiguous wall-clock times (the hour repeated when
daylight saving time ends) take the first occurrence; times skipped by the spring change move
forward to the first valid instant.

Problems: ``invalid_timestamp`` (not readable, or missing when ``required``), ``future_timestamp``
(later than ``now + future_tolerance``), ``implausible_timestamp`` (before ``earliest``, by default
1990-01-01 UTC): all errors. Unreadable values are missing in ``values``; future and implausible
ones are kept (the rules decide whether to drop them).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Final

import numpy as np
import pandas as pd

from donor_sync.standardize.fields._common import rx_test, squash, to_text
from donor_sync.standardize.fields.result import FieldResult, concat_issues, issues_where

UTC_US: Final = "datetime64[us, UTC]"
#: nothing before this is a plausible gift, refund or profile time for this project
EARLIEST: Final = datetime(1990, 1, 1, tzinfo=UTC)
_EPOCH: Final = r"^-?\d+(?:\.\d+)?$"
_OFFSET: Final = r"(?i)[t ]\d{2}(?::?\d{2}(?::?\d{2}(?:[.,]\d+)?)?)?\s*(?:z|[+-]\d{2}(?::?\d{2})?)$"
_DATE_ONLY: Final = r"^\d{4}-\d{2}-\d{2}$"
_TIME_DIRECTIVES: Final = re.compile(r"%[-#]?[HIMSfpXcTRrs]")
_NOON: Final = pd.Timedelta(hours=12)


def _localize(naive: pd.Series, timezone: str) -> pd.Series:
    first = np.ones(len(naive), dtype=bool)
    local = naive.dt.tz_localize(timezone, ambiguous=first, nonexistent="shift_forward")
    return local.dt.tz_convert("UTC").astype(UTC_US)


def _with_format(text: pd.Series, fmt: str, timezone: str) -> pd.Series:
    parsed = pd.to_datetime(text, format=fmt, errors="coerce", utc="%z" in fmt)
    if not _TIME_DIRECTIVES.search(fmt):
        parsed = parsed + _NOON
    if "%z" in fmt:
        return parsed.astype(UTC_US)
    return _localize(parsed, timezone)


def _iso(text: pd.Series, timezone: str) -> pd.Series:
    out = pd.Series(pd.NaT, index=text.index, dtype=UTC_US)
    aware = rx_test(text, _OFFSET)
    if aware.any():
        out[aware] = pd.to_datetime(text[aware], format="ISO8601", utc=True, errors="coerce").astype(UTC_US)
    naive = ~aware & text.notna().to_numpy(dtype=bool)
    if naive.any():
        subset = text[naive]
        parsed = pd.to_datetime(subset, format="ISO8601", errors="coerce")
        date_only = rx_test(subset, _DATE_ONLY)
        parsed = parsed.where(~date_only, parsed + _NOON)
        out[naive] = _localize(parsed, timezone)
    return out


def _epoch(text: pd.Series) -> pd.Series:
    seconds = pd.to_numeric(text, errors="coerce").astype("float64")
    # Beyond pandas' range (year 2262) is unreadable, not a far-future gift.
    seconds = seconds.where(seconds.abs() < 9.2e9)
    return pd.to_datetime(seconds, unit="s", utc=True, errors="coerce").astype(UTC_US)


def parse_timestamps(
    values: pd.Series,
    *,
    fmt: str | None = None,
    timezone: str = "UTC",
    now: datetime,
    future_tolerance: timedelta = timedelta(minutes=5),
    field: str = "gift_at",
    required: bool = True,
    earliest: datetime = EARLIEST,
) -> FieldResult:
    """Parse ``values`` into one UTC column named ``field`` (see the module docstring).

    :param values: timestamps as received (text or epoch numbers).
    :param fmt: the format's ``strftime`` pattern, tried before the ISO and epoch forms.
    :param timezone: IANA zone of values without an offset.
    :param now: the run's reference time (naive means UTC); later than ``now + future_tolerance``
        is ``future_timestamp``.
    :param field: output column and issue field.
    :param required: a missing value is ``invalid_timestamp`` (``gift_at``); ``False`` lets it be
        missing (``refunded_at``).
    :param earliest: anything before it is ``implausible_timestamp`` (default 1990-01-01 UTC, for
        gifts; pass e.g. 1900-01-01 for birth dates).
    """
    text = squash(to_text(values))
    out = pd.Series(pd.NaT, index=text.index, dtype=UTC_US, name=field)
    pending = text.notna().to_numpy(dtype=bool).copy()
    if fmt and pending.any():
        parsed = _with_format(text[pending], fmt, timezone)
        out[pending] = parsed
        pending &= out.isna().to_numpy(dtype=bool)
    epoch = pending & rx_test(text, _EPOCH)
    if epoch.any():
        out[epoch] = _epoch(text[epoch])
    iso = pending & ~epoch
    if iso.any():
        out[iso] = _iso(text[iso], timezone)
    reference = pd.Timestamp(now)
    reference = reference.tz_localize("UTC") if reference.tzinfo is None else reference.tz_convert(UTC)
    present = text.notna()
    invalid = out.isna() & (present | required)
    future = out > reference + pd.Timedelta(future_tolerance)
    floor = pd.Timestamp(earliest)
    too_old = out < (floor.tz_localize("UTC") if floor.tzinfo is None else floor.tz_convert(UTC))
    expected = "ISO 8601 (with Z or an offset, or local time), epoch seconds" + (
        f", or the format {fmt}" if fmt else ""
    )
    issues = [
        issues_where(
            invalid & present,
            field,
            "invalid_timestamp",
            "error",
            f"Timestamp is not readable; expected {expected}.",
            text,
        ),
        issues_where(invalid & ~present, field, "invalid_timestamp", "error", "Timestamp is missing."),
        issues_where(
            future,
            field,
            "future_timestamp",
            "error",
            f"Timestamp is in the future (more than {future_tolerance} after the run started).",
            text,
        ),
        issues_where(
            too_old,
            field,
            "implausible_timestamp",
            "error",
            f"Timestamp is before {floor.date().isoformat()}, too early to be plausible here.",
            text,
        ),
    ]
    return FieldResult(out.to_frame(), concat_issues(issues))
