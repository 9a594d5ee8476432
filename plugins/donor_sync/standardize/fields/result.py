"""What every field standardizer returns: typed values plus the issues it found, in long format.

A standardizer never raises on bad input and never drops a row: each input row has one output row
(same index label), and every problem is one issue row that names the input row, the field, a
stable code and a message. The message says what is wrong and what form is expected; it never
contains the value, which travels apart in ``value`` so that the quarantine can keep it while logs
and metrics can carry the message alone.

Severity is only the standardizer's opinion. The validation rules (``include/mappings``) decide per
code whether a record is quarantined, the value dropped and flagged, or only flagged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import pandas as pd

Severity = Literal["error", "warning"]

#: The issue columns, in order.
ISSUE_COLUMNS: Final[tuple[str, ...]] = ("row", "field", "code", "severity", "message", "value")

#: pandas string dtype used for every text output: pyarrow-backed, ``pd.NA`` for missing.
STRING: Final = pd.StringDtype("pyarrow")


def empty_issues() -> pd.DataFrame:
    """Return an issues frame without rows (the columns and dtypes of :func:`issues_where`)."""
    return pd.DataFrame(
        {
            "row": pd.Series([], dtype=object),
            "field": pd.Series([], dtype=STRING),
            "code": pd.Series([], dtype=STRING),
            "severity": pd.Series([], dtype=STRING),
            "message": pd.Series([], dtype=STRING),
            "value": pd.Series([], dtype=object),
        }
    )


def _as_bool_array(mask: pd.Series) -> np.ndarray:
    """Return ``mask`` as a numpy bool array, missing values counting as False."""
    source = mask if mask.dtype == bool else mask.fillna(False)
    out: np.ndarray = np.asarray(source.to_numpy(dtype=bool), dtype=bool)
    return out


def _text_or_none(values: pd.Series) -> np.ndarray:
    """Return ``values`` as an object array of ``str`` or ``None`` (never ``pd.NA``)."""
    out = values.astype(STRING).to_numpy(dtype=object, na_value=None)
    return np.asarray(out, dtype=object)


def issues_where(  # noqa: PLR0917 - the positional contract the pipeline calls
    mask: pd.Series,
    field: str,
    code: str,
    severity: Severity,
    message: str | pd.Series,
    values: pd.Series | None = None,
) -> pd.DataFrame:
    """Return one issue per row where ``mask`` is true (missing counts as false), without a row loop.

    :param mask: boolean Series over the input rows; its index labels become ``row``.
    :param field: the output or intake field the issue is about.
    :param code: stable snake_case code the validation rules key on (``invalid_email``).
    :param severity: ``error`` or ``warning``: the standardizer's opinion only.
    :param message: what is wrong and the expected form, without the value; a Series aligned with
        ``mask`` gives one message per row (e.g. the validator's reason).
    :param values: the input values, aligned with ``mask``; the offending ones are kept as text in
        ``value`` (``None`` where missing). ``None`` leaves ``value`` empty.
    :return: a frame with the columns of :data:`ISSUE_COLUMNS` and a fresh RangeIndex.
    """
    hit = _as_bool_array(mask)
    count = int(hit.sum())
    if count == 0:
        return empty_issues()
    rows = mask.index[hit]
    if isinstance(message, pd.Series):
        messages = pd.Series(message.to_numpy()[hit], dtype=STRING)
    else:
        messages = pd.Series([message] * count, dtype=STRING)
    if values is None:
        found = np.full(count, None, dtype=object)
    else:
        found = _text_or_none(values.iloc[np.flatnonzero(hit)])
    return pd.DataFrame(
        {
            "row": pd.Series(np.asarray(rows, dtype=object), dtype=object),
            "field": pd.Series([field] * count, dtype=STRING),
            "code": pd.Series([code] * count, dtype=STRING),
            "severity": pd.Series([severity] * count, dtype=STRING),
            "message": messages,
            "value": pd.Series(found, dtype=object),
        }
    )


def concat_issues(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Stack issue frames (empty ones skipped, so they never change the dtypes)."""
    kept = [frame for frame in frames if len(frame)]
    if not kept:
        return empty_issues()
    if len(kept) == 1:
        return kept[0].reset_index(drop=True)
    return pd.concat(kept, ignore_index=True)


@dataclass(frozen=True)
class FieldResult:
    """Typed output columns of one standardizer and the issues found on the way.

    ``values`` has the input's index (any labels, kept in order); ``issues`` is long format with
    the columns of :data:`ISSUE_COLUMNS`: ``row`` (input index label), ``field``, ``code``,
    ``severity`` (``error`` | ``warning``), ``message`` (never the value) and ``value`` (the offending
    input as text, or ``None``).

    ``values`` holds only what the staging column can hold: where a value is invalid (an email that
    does not parse, an amount that is not a number) the column is missing and the input is in the
    issue's ``value``; where a value is only suspicious (too long, formula-like, mojibake repaired)
    it is kept and the rules decide.
    """

    values: pd.DataFrame
    issues: pd.DataFrame

    @classmethod
    def concat(cls, *results: FieldResult) -> FieldResult:
        """Join results over the same rows: value columns side by side, issues stacked.

        :raises ValueError: when the results do not share one index or repeat a column.
        """
        if not results:
            return cls(pd.DataFrame(), empty_issues())
        index = results[0].values.index
        for result in results[1:]:
            if not result.values.index.equals(index):
                raise ValueError("FieldResult.concat needs results over the same index")
        values = pd.concat([result.values for result in results], axis=1)
        if values.columns.has_duplicates:
            duplicated = sorted(set(values.columns[values.columns.duplicated()]))
            raise ValueError(f"FieldResult.concat got the same column twice: {duplicated}")
        return cls(values, concat_issues([result.issues for result in results]))

    def errors(self) -> pd.DataFrame:
        """Return the issues of severity ``error``."""
        return self.issues[self.issues["severity"] == "error"]
