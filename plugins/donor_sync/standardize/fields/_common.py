"""Helpers the standardizers share: text conversion and working on unique values.

Intake columns repeat a lot (a designation, a city, a currency, even a name occurs many times),
and the costly work (a parser, a validator) is per value, not per row. So each standardizer
factorizes its input, works on the unique values, and maps the results back to the rows through
the codes with numpy/pyarrow takes: the per-row work stays vectorized.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from donor_sync.standardize.fields.result import STRING

_SURROGATES = re.compile("[\ud800-\udfff]")
_WHITESPACE = "[ \t\n\r\f\v\u00a0]"
_UNSQUASHED = f"{_WHITESPACE}{_WHITESPACE}+|[\t\n\r\f\v\u00a0]"


def _replace_surrogates(value: object) -> object:
    if isinstance(value, str):
        return _SURROGATES.sub("\ufffd", value)
    return value


def to_text(values: pd.Series | None, index: pd.Index | None = None) -> pd.Series:
    """Return ``values`` as a pyarrow-backed string Series with ``pd.NA`` for missing.

    Numbers become their text (``2500`` -> ``"2500"``). Lone surrogates (bytes that were not UTF-8,
    decoded with ``surrogateescape``) cannot be stored in Arrow or Postgres: they become U+FFFD,
    which :func:`clean_text` reports as ``invalid_encoding``.

    :param values: the column, or ``None`` for a field the source does not have.
    :param index: the index of the all-missing column returned when ``values`` is ``None``.
    """
    if values is None:
        return pd.Series(pd.NA, index=index, dtype=STRING)
    if values.dtype == STRING:
        return values
    try:
        return values.astype(STRING)
    except UnicodeEncodeError:
        return values.map(_replace_surrogates).astype(STRING)


@dataclass(frozen=True)
class Encoded:
    """A column as codes into its unique non-missing values (code -1: missing)."""

    codes: np.ndarray
    uniques: pd.Series

    @classmethod
    def of(cls, values: pd.Series) -> Encoded:
        """Factorize ``values`` (missing values get code -1)."""
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        return cls(np.asarray(codes, dtype=np.int64), pd.Series(uniques, dtype=values.dtype))

    @property
    def present(self) -> np.ndarray:
        """Return a bool array: the row has a value."""
        return self.codes >= 0

    def rows(self, per_unique: np.ndarray | pd.Series) -> np.ndarray:
        """Return a bool per row from a bool per unique value (missing rows: False)."""
        flags = np.asarray(per_unique, dtype=bool)
        if not len(flags):
            return np.zeros(len(self.codes), dtype=bool)
        return np.where(self.present, flags[np.maximum(self.codes, 0)], False)

    def gather(self, per_unique: np.ndarray, fill: object = None) -> np.ndarray:
        """Return a per-row object array from a per-unique array (missing rows: ``fill``)."""
        out = np.full(len(self.codes), fill, dtype=object)
        present = self.present
        if present.any():
            out[present] = np.asarray(per_unique, dtype=object)[self.codes[present]]
        return out

    def take(self, per_unique: pd.Series, index: pd.Index) -> pd.Series:
        """Return a Series over the rows from a Series over the unique values (missing rows: NA)."""
        array = per_unique.array.take(self.codes, allow_fill=True)
        return pd.Series(array, index=index, name=per_unique.name)


@dataclass(frozen=True)
class EncodedRows:
    """Rows as codes into their unique combinations of several columns (missing is a value too)."""

    codes: np.ndarray
    uniques: pd.DataFrame

    @classmethod
    def of(cls, **columns: pd.Series) -> EncodedRows:
        """Factorize the tuples of ``columns`` (all on the same index) without building strings."""
        first_column = next(iter(columns.values()))
        combined = np.zeros(len(first_column), dtype=np.int64)
        for values in columns.values():
            codes, uniques = pd.factorize(values, use_na_sentinel=True)
            # -1 (missing) becomes 0; codes stay below n + 1, so the product fits int64
            mixed = combined * (len(uniques) + 1) + (np.asarray(codes, dtype=np.int64) + 1)
            combined = np.asarray(pd.factorize(mixed)[0], dtype=np.int64)
        count = int(combined.max()) + 1 if len(combined) else 0
        first = np.empty(count, dtype=np.int64)
        first[combined[::-1]] = np.arange(len(combined) - 1, -1, -1)  # earliest row of each code
        frame = pd.DataFrame(
            {name: values.iloc[first].reset_index(drop=True) for name, values in columns.items()}
        )
        return cls(combined, frame)

    def take(self, per_unique: pd.Series, index: pd.Index) -> pd.Series:
        """Return a Series over the rows from a Series over the unique combinations."""
        return pd.Series(per_unique.array.take(self.codes), index=index, name=per_unique.name)

    def rows(self, per_unique: np.ndarray) -> np.ndarray:
        """Return a per-row array from a per-combination array."""
        out: np.ndarray = np.asarray(per_unique)[self.codes]
        return out


def lookup_key(text: str) -> str:
    """Return the key used for alias tables: case-folded, letters and digits, single spaces.

    ``"U.S.A."`` and ``"usa"`` share the key ``"usa"``; ``"Côte d'Ivoire"`` folds to
    ``"cote divoire"`` (with a typographic apostrophe too).
    """
    folded = unicodedata.normalize("NFKD", text.casefold())
    kept = "".join(ch for ch in folded if not unicodedata.combining(ch))
    kept = re.sub(r"[.'\u2019`]", "", kept)
    return " ".join(re.sub(r"[^0-9a-z]+", " ", kept).split())


# Regex helpers. pandas' ``.str`` methods fall back to Python's ``re`` row by row whenever a pattern
# has ``\s``, ``$``, ``\d`` on non-ASCII data and more (pandas 3), which is 20-50x slower than
# pyarrow's RE2. These call RE2 directly: patterns here are RE2 (ASCII ``\s``, ``\d``, ``\b``; ``$``
# only at the very end), written for text whose whitespace is already normalized.


def arrow(values: pd.Series) -> pa.Array | pa.ChunkedArray:
    """Return the pyarrow data of a string Series without copying."""
    return pa.array(to_text(values).array)


def from_arrow(array: pa.Array | pa.ChunkedArray, index: pd.Index, name: object = None) -> pd.Series:
    """Return a string Series over ``array`` (zero-copy)."""
    if not pa.types.is_large_string(array.type):
        array = array.cast(pa.large_string())
    return pd.Series(pd.arrays.ArrowStringArray(array), index=index, name=name)


def rx_test(values: pd.Series, pattern: str) -> np.ndarray:
    """Return, per row, whether RE2 ``pattern`` matches somewhere in the value (missing: False)."""
    hit = pc.match_substring_regex(arrow(values), pattern).fill_null(False)
    return np.asarray(hit.to_numpy(zero_copy_only=False), dtype=bool)


def rx_replace(values: pd.Series, pattern: str, replacement: str) -> pd.Series:
    """Replace every match of RE2 ``pattern`` (``\\1`` refers to groups)."""
    out = pc.replace_substring_regex(arrow(values), pattern, replacement)
    return from_arrow(out, values.index, values.name)


def rx_extract(values: pd.Series, pattern: str) -> pd.DataFrame:
    """Return the named groups of RE2 ``pattern`` as string columns (missing where no match)."""
    struct = pc.extract_regex(arrow(values), pattern)
    names = [struct.type.field(i).name for i in range(struct.type.num_fields)]
    # struct_field, unlike .field(), makes a group missing where the whole pattern did not match
    return pd.DataFrame(
        {name: from_arrow(pc.struct_field(struct, name), values.index) for name in names},
        index=values.index,
    )


def squash(values: pd.Series) -> pd.Series:
    """Collapse whitespace runs to one space, strip, and make empty values missing."""
    array = arrow(values)
    # only runs of spaces and other whitespace need replacing: a single space stays (5x faster)
    if pc.any(pc.match_substring_regex(array, _UNSQUASHED)).as_py():
        array = pc.replace_substring_regex(array, _UNSQUASHED, " ")
    array = pc.utf8_trim_whitespace(array)
    array = pc.if_else(pc.equal(array, ""), pa.scalar(None, type=array.type), array)
    return from_arrow(array, values.index, values.name)
