"""Bands: what happens to a scored pair -- merge automatically, send to review, or keep apart.

Thresholds are on the match probability (``include/mappings/dedup.yaml``, ``thresholds``). A pair a
deterministic rule matched merges whatever its score. A household link (see
:mod:`~donor_sync.identity.households`) is never merged: its band is ``household`` whatever its
score or rule. A pair merges automatically only when one of the identity comparisons
(``thresholds.merge_needs_agreement_on``: names, email, phone...) counts for it: the same address
and nothing else is a household's signature, not a duplicate's. Nor does a pair whose first names
are two different known given names (Charles / Charlotte), that could be two members of one
household (at one address without a shared email, birth date, external id or, for one first
name, a phone no household link shares: see
:func:`~donor_sync.identity.households.ambiguous_at_address`), or whose generation suffixes (Jr /
Sr) or middle initials differ (:func:`~donor_sync.identity.households.name_part_conflicts`): those
go to review.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd

from donor_sync.identity.rules import Thresholds

KEEP_APART: Final = "keep_apart"
REVIEW: Final = "review"
AUTO_MERGE: Final = "auto_merge"
HOUSEHOLD: Final = "household"
#: band names by code, weakest first
BANDS: Final = (KEEP_APART, REVIEW, AUTO_MERGE, HOUSEHOLD)


def band_codes(
    probability: np.ndarray,
    thresholds: Thresholds,
    *,
    household: np.ndarray,
    deterministic: np.ndarray,
    agreement: np.ndarray | None = None,
) -> np.ndarray:
    """Return each pair's band as an index into :data:`BANDS` (int8).

    :param agreement: per pair, whether a comparison of ``merge_needs_agreement_on`` counted for
        it; a pair without is at most ``review``.
    """
    out = np.zeros(len(probability), dtype=np.int8)
    out[probability >= thresholds.review] = 1
    merge = probability >= thresholds.auto_merge
    if agreement is not None:
        merge &= agreement
    out[merge | deterministic] = 2
    out[household] = 3
    return out


def band_names(codes: np.ndarray) -> pd.Categorical:
    """Return band codes as a categorical of band names."""
    return pd.Categorical.from_codes(codes.astype(np.int8), categories=list(BANDS))
