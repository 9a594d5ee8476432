"""Comparison levels of record pairs, computed vectorized.

For each comparison of the rules file, every pair gets the index of the first level it satisfies
(Null first, Else last). Values are compared through their integer codes: exactness is a code
comparison, and similarity metrics (rapidfuzz Jaro-Winkler, Levenshtein, Damerau-Levenshtein,
token set) run once per distinct ``(value, value)`` pair, since most pairs repeat (the same first
names meet again and again). ``process.cpdist`` spreads that work over every core.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from rapidfuzz import fuzz, process
from rapidfuzz.distance import DamerauLevenshtein, JaroWinkler, Levenshtein

from donor_sync.identity.nicknames import Nicknames
from donor_sync.identity.prepare import PreparedRecords
from donor_sync.identity.rules import (
    Comparison,
    DamerauLevenshteinLevel,
    DateTransposedLevel,
    ExactMatchLevel,
    InitialLevel,
    JaroWinklerLevel,
    LevenshteinLevel,
    NicknameLevel,
    NumericDifferenceLevel,
    PrefixLevel,
    SwappedLevel,
    TokenSetLevel,
)

#: rapidfuzz scorers by metric name, and whether a larger value means more similar
_METRICS: dict[str, tuple[Callable[..., Any], bool]] = {
    "jaro_winkler": (JaroWinkler.normalized_similarity, True),
    "levenshtein": (Levenshtein.distance, False),
    "damerau_levenshtein": (DamerauLevenshtein.distance, False),
    "token_set": (lambda a, b, **_: fuzz.token_set_ratio(a, b) / 100.0, True),
}


def level_label(level: Any) -> str:  # noqa: PLR0911 - one return per level type
    """Return a level's label: its own, else one derived from its type and parameters."""
    if level.label:
        return str(level.label)
    kind = level.type
    if level.column:
        return f"{level_label(level.model_copy(update={'column': None}))} on {level.column}"
    if isinstance(level, JaroWinklerLevel | TokenSetLevel):
        return f"{kind} >= {level.threshold:g}"
    if isinstance(level, LevenshteinLevel | DamerauLevenshteinLevel):
        return f"{kind} <= {level.distance}"
    if isinstance(level, PrefixLevel):
        return f"first {level.length} characters equal"
    if isinstance(level, SwappedLevel):
        return f"swapped with {level.other}"
    if isinstance(level, NumericDifferenceLevel):
        return f"within {level.max_difference:g}"
    return str(
        {
            "null": "missing",
            "exact": "exact",
            "nickname": "nickname",
            "initial": "initial",
            "date_transposed": "day and month swapped",
            "else": "different",
        }.get(kind, kind)
    )


@dataclass
class _Column:
    """A column's codes on both sides of the pairs, and the distinct value pairs among them."""

    left: np.ndarray
    right: np.ndarray
    uniques: np.ndarray
    valid: np.ndarray
    _pairs: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    _metrics: dict[str, np.ndarray] = field(default_factory=dict)

    def distinct_pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return ``(a, b, inverse)``: distinct unordered code pairs over valid pairs, and each valid
        pair's index into them."""
        if self._pairs is None:
            lo = np.minimum(self.left[self.valid], self.right[self.valid]).astype(np.int64)
            hi = np.maximum(self.left[self.valid], self.right[self.valid]).astype(np.int64)
            inverse, keys = pd.factorize(lo * (len(self.uniques) + 1) + hi)
            inverse = inverse.astype(np.int32)
            del lo, hi
            keys = np.asarray(keys, dtype=np.int64)
            self._pairs = (keys // (len(self.uniques) + 1), keys % (len(self.uniques) + 1), inverse)
        return self._pairs

    def on_pairs(self, fn: Callable[[list[str], list[str]], Sequence[Any] | np.ndarray]) -> np.ndarray:
        """Evaluate ``fn`` once per distinct value pair and return its result for every pair.

        Pairs where either side is missing get 0 / False (the Null level has caught them).
        """
        a, b, inverse = self.distinct_pairs()
        values = np.asarray(fn(self.uniques[a].tolist(), self.uniques[b].tolist()))
        out = np.zeros(len(self.left), dtype=values.dtype if len(values) else np.float32)
        out[self.valid] = values[inverse] if len(values) else out[self.valid]
        return out

    def metric(self, name: str) -> np.ndarray:
        """Return a rapidfuzz metric for every pair (cached per metric)."""
        hit = self._metrics.get(name)
        if hit is None:
            scorer = _METRICS[name][0]

            def run(a: list[str], b: list[str]) -> np.ndarray:
                if not a:
                    return np.zeros(0, dtype=np.float32)
                return np.asarray(process.cpdist(a, b, scorer=scorer, workers=-1), dtype=np.float32)

            hit = self.on_pairs(run)
            self._metrics[name] = hit
        return hit


class PairComparer:
    """Compute comparison levels for aligned pair arrays over one set of prepared records."""

    def __init__(
        self, prepared: PreparedRecords, left: np.ndarray, right: np.ndarray, nicknames: Nicknames
    ) -> None:
        """Remember the records and the pairs (row indices) to compare."""
        self.prepared = prepared
        self.left = left
        self.right = right
        self.nicknames = nicknames
        self._columns: dict[str, _Column] = {}

    def column(self, name: str) -> _Column:
        """Return the pair view of a prepared column."""
        hit = self._columns.get(name)
        if hit is None:
            codes, uniques = self.prepared.codes(name)
            cl, cr = codes[self.left], codes[self.right]
            hit = _Column(cl, cr, uniques, (cl >= 0) & (cr >= 0))
            self._columns[name] = hit
        return hit

    def release(self) -> None:
        """Drop the cached pair views (codes, distinct value pairs, metrics) to free memory."""
        self._columns.clear()

    def value_codes(self, name: str) -> np.ndarray:
        """Return the left side's value code of a column for every pair (for term frequencies)."""
        return self.column(name).left

    def _level_mask(self, comparison: Comparison, level: Any) -> np.ndarray:  # noqa: PLR0911
        col = self.column(level.column or comparison.column)
        if isinstance(level, ExactMatchLevel):
            return np.asarray(col.valid & (col.left == col.right), dtype=bool)
        if isinstance(level, NicknameLevel):
            return col.on_pairs(self.nicknames.equivalent_many).astype(bool)
        if isinstance(level, InitialLevel):
            return col.on_pairs(_initials).astype(bool)
        if isinstance(level, SwappedLevel):
            mine, other, _ = self.prepared.joint_codes(comparison.column, level.other)
            mine_l, mine_r = mine[self.left], mine[self.right]
            other_l, other_r = other[self.left], other[self.right]
            present = (mine_l >= 0) & (mine_r >= 0) & (other_l >= 0) & (other_r >= 0)
            return np.asarray(
                present & (mine_l == other_r) & (other_l == mine_r) & (mine_l != mine_r), dtype=bool
            )
        if isinstance(level, JaroWinklerLevel | TokenSetLevel):
            return col.valid & (col.metric(level.type) >= level.threshold - 1e-9)
        if isinstance(level, LevenshteinLevel | DamerauLevenshteinLevel):
            return col.valid & (col.metric(level.type) <= level.distance)
        if isinstance(level, PrefixLevel):
            prefixes = pd.Series(col.uniques, dtype=object).str.slice(0, level.length)
            codes = np.asarray(pd.factorize(prefixes)[0])
            both = col.valid & (col.left >= 0)
            out = np.zeros(len(col.left), dtype=bool)
            out[both] = codes[col.left[both]] == codes[col.right[both]]
            return out
        if isinstance(level, DateTransposedLevel):
            return col.on_pairs(_transposed).astype(bool)
        if isinstance(level, NumericDifferenceLevel):
            numbers = pd.to_numeric(pd.Series(col.uniques, dtype=object), errors="coerce").to_numpy(float)
            out = np.zeros(len(col.left), dtype=bool)
            v = col.valid
            out[v] = np.abs(numbers[col.left[v]] - numbers[col.right[v]]) <= level.max_difference
            return out
        raise ValueError(f"no mask for level type {level.type!r}")  # pragma: no cover

    def levels(self, comparison: Comparison) -> np.ndarray:
        """Return the level index (int8) of every pair for one comparison."""
        col = self.column(comparison.column)
        out = np.full(len(self.left), len(comparison.levels) - 1, dtype=np.int8)
        undecided = col.valid.copy()
        out[~col.valid] = 0
        for index, level in enumerate(comparison.levels[1:-1], start=1):
            if not undecided.any():
                break
            hit = self._level_mask(comparison, level) & undecided
            out[hit] = index
            undecided &= ~hit
        return out


def _initials(a: list[str], b: list[str]) -> list[bool]:
    return [
        x != y and ((len(x) == 1 and y.startswith(x)) or (len(y) == 1 and x.startswith(y)))
        for x, y in zip(a, b, strict=True)
    ]


def _transposed(a: list[str], b: list[str]) -> list[bool]:
    return [
        len(x) == 8 and len(y) == 8 and x != y and x[:4] == y[:4] and x[4:6] == y[6:8] and x[6:8] == y[4:6]
        for x, y in zip(a, b, strict=True)
    ]


def comparison_levels(
    prepared: PreparedRecords,
    left: np.ndarray,
    right: np.ndarray,
    comparisons: Sequence[Comparison],
    nicknames: Nicknames,
) -> np.ndarray:
    """Return a ``(pairs, comparisons)`` int8 matrix of level indices.

    :param left: row indices of the pairs' left records.
    :param right: row indices of the pairs' right records.
    """
    comparer = PairComparer(prepared, left, right, nicknames)
    out = np.zeros((len(left), len(comparisons)), dtype=np.int8)
    for k, comparison in enumerate(comparisons):
        out[:, k] = comparer.levels(comparison)
        comparer.release()
    return out
