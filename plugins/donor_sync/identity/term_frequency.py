"""Term-frequency adjustments: agreeing on a common value is weaker evidence than on a rare one.

For an exact level with ``term_frequency: true``, the level's u (the chance that two random
records agree on this field) is replaced by the frequency of the shared value itself, as Splink
does: the pair's weight for the field becomes ``log2(m / tf(value))`` instead of ``log2(m / u)``.
Two Smiths agree far more often by chance than two Featherstonehaughs.
"""

from __future__ import annotations

import numpy as np

from donor_sync.identity.prepare import PreparedRecords


def term_frequencies(prepared: PreparedRecords, column: str) -> np.ndarray:
    """Return each distinct value's share of the records that have a value in ``column``.

    :return: float64 array indexed by the column's value codes (:meth:`PreparedRecords.codes`).
    """
    codes, uniques = prepared.codes(column)
    counts = np.bincount(codes[codes >= 0], minlength=len(uniques)).astype(np.float64)
    total = counts.sum()
    return counts / total if total else counts


def tf_adjustment(u_level: float, frequencies: np.ndarray, minimum: float) -> np.ndarray:
    """Return the weight adjustment ``log2(u_level / tf)`` for each value frequency (floored)."""
    return np.asarray(np.log2(u_level / np.maximum(frequencies, minimum)), dtype=np.float64)
