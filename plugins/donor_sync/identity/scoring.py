"""Fellegi-Sunter scoring: m and u per comparison level, log2 match weights, kept per field.

A pair's match weight is the prior's log-odds plus, for each comparison, ``log2(m / u)`` of the
level it landed in (0 for the Null level): m is the chance a true match lands in the level, u the
chance two random records do. The probability is ``1 / (1 + 2**-weight)``. Each field's
contribution is kept, so a decision can be explained and the explanation sums to the score.

Where m and u come from:

- the rules file's priors (``m``/``u`` per level);
- :func:`estimate_u`: u from random record pairs (almost all non-matches);
- :func:`estimate_m_em`: m (and the share of matches among candidates) by expectation-
  maximisation over the candidate pairs' comparison patterns, u fixed;
- :func:`fit_from_labels`: m (and optionally u) from labelled pairs, such as the review queue's
  decisions, with the current values as a prior of configurable strength.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from donor_sync.identity.comparisons import comparison_levels, level_label
from donor_sync.identity.nicknames import Nicknames
from donor_sync.identity.prepare import PreparedRecords
from donor_sync.identity.rules import Comparison, DedupRules, ExactMatchLevel
from donor_sync.identity.term_frequency import term_frequencies, tf_adjustment

log = logging.getLogger(__name__)

_FLOOR = 1e-9


def _default_m(n: int) -> np.ndarray:
    """Return decreasing default m over ``n`` non-null levels (the closest level most likely)."""
    raw = np.array([0.5**k for k in range(n)], dtype=np.float64)
    return np.asarray(raw / raw.sum(), dtype=np.float64)


def _default_u(n: int) -> np.ndarray:
    """Return default u over ``n`` non-null levels (random pairs mostly land in Else)."""
    raw = np.array([0.01 * 0.5**k for k in range(n - 1)] + [0.0], dtype=np.float64)
    raw[-1] = max(1.0 - raw.sum(), 0.5)
    return np.asarray(raw / raw.sum(), dtype=np.float64)


def _normalized(values: np.ndarray) -> np.ndarray:
    values = np.maximum(values, _FLOOR)
    return np.asarray(values / values.sum(), dtype=np.float64)


@dataclass
class MatchModel:
    """m and u per level of each comparison (index 0, the Null level, is unused) and the prior.

    ``m[k]`` and ``u[k]`` have one entry per level of comparison ``k``; entry 0 is ignored.
    """

    comparisons: tuple[Comparison, ...]
    m: list[np.ndarray]
    u: list[np.ndarray]
    prior: float
    history: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_rules(cls, rules: DedupRules) -> MatchModel:
        """Build the model from the rules file's priors (defaults where a level has none)."""
        ms: list[np.ndarray] = []
        us: list[np.ndarray] = []
        for comparison in rules.comparisons:
            levels = comparison.levels[1:]
            dm, du = _default_m(len(levels)), _default_u(len(levels))
            m = np.array([lv.m if lv.m is not None else dm[i] for i, lv in enumerate(levels)])
            u = np.array([lv.u if lv.u is not None else du[i] for i, lv in enumerate(levels)])
            ms.append(np.r_[0.0, _normalized(m)])
            us.append(np.r_[0.0, _normalized(u)])
        prior = rules.training.prior_match_probability or 1e-6
        return cls(tuple(rules.comparisons), ms, us, prior)

    def copy(self) -> MatchModel:
        """Return an independent copy."""
        return MatchModel(
            self.comparisons,
            [m.copy() for m in self.m],
            [u.copy() for u in self.u],
            self.prior,
            [*self.history],
        )

    @property
    def prior_weight(self) -> float:
        """Return the prior's log2 odds."""
        return float(np.log2(self.prior / (1.0 - self.prior)))

    def weights(self) -> list[np.ndarray]:
        """Return ``log2(m / u)`` per level of each comparison (0 for the Null level)."""
        out = []
        for m, u in zip(self.m, self.u, strict=True):
            w = np.log2(np.maximum(m, _FLOOR) / np.maximum(u, _FLOOR))
            w[0] = 0.0
            out.append(w)
        return out

    def as_dict(self) -> dict[str, Any]:
        """Return the parameters as plain data (for reports and storage)."""
        weights = self.weights()
        return {
            "prior": self.prior,
            "comparisons": [
                {
                    "name": c.name,
                    "levels": [
                        {
                            "label": level_label(level),
                            "m": float(self.m[k][i]),
                            "u": float(self.u[k][i]),
                            "weight": float(weights[k][i]),
                        }
                        for i, level in enumerate(c.levels)
                        if i > 0
                    ],
                }
                for k, c in enumerate(self.comparisons)
            ],
        }


def _level_counts(
    levels: np.ndarray, comparisons: Sequence[Comparison], weights: np.ndarray | None = None
) -> list[np.ndarray]:
    out = []
    for k, comparison in enumerate(comparisons):
        out.append(
            np.bincount(levels[:, k], weights=weights, minlength=len(comparison.levels)).astype(np.float64)
        )
    return out


def random_pairs(n: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Return ``size`` random pairs of distinct rows out of ``n`` (left < right)."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, n, size, dtype=np.int64)
    b = rng.integers(0, n - 1, size, dtype=np.int64)
    b = np.where(b >= a, b + 1, b)
    return np.minimum(a, b), np.maximum(a, b)


def estimate_u(
    model: MatchModel, prepared: PreparedRecords, nicknames: Nicknames, *, sample_pairs: int, seed: int
) -> MatchModel:
    """Return the model with u estimated from random record pairs.

    A level never seen among the random pairs keeps the smaller of its prior and half a pair's
    share (agreement on an email address is rarer than the sample can show).
    """
    n = len(prepared)
    if n < 2:
        return model
    left, right = random_pairs(n, min(sample_pairs, n * (n - 1) // 2 if n < 2000 else sample_pairs), seed)
    levels = comparison_levels(prepared, left, right, model.comparisons, nicknames)
    counts = _level_counts(levels, model.comparisons)
    out = model.copy()
    for k, count in enumerate(counts):
        seen = count[1:].sum()
        if seen == 0:
            continue
        share = count[1:] / seen
        prior_u = model.u[k][1:]
        share = np.where(count[1:] > 0, share, np.minimum(prior_u, 0.5 / seen))
        out.u[k] = np.r_[0.0, _normalized(share)]
    out.history.append({"step": "estimate_u", "pairs": len(left)})
    return out


def pattern_counts(levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the distinct rows of a level matrix and how many pairs have each."""
    if levels.shape[1] == 0:
        return np.zeros((1, 0), dtype=np.int8), np.array([len(levels)], dtype=np.float64)
    key = np.zeros(len(levels), dtype=np.int64)
    for k in range(levels.shape[1]):
        key = key * 16 + levels[:, k].astype(np.int64)
    codes, uniques = pd.factorize(key)
    counts = np.bincount(codes).astype(np.float64)
    uniques = np.asarray(uniques, dtype=np.int64)
    patterns = np.zeros((len(uniques), levels.shape[1]), dtype=np.int8)
    rest = uniques.copy()
    for k in range(levels.shape[1] - 1, -1, -1):
        patterns[:, k] = rest % 16
        rest //= 16
    return patterns, counts


def _log_likelihoods(model: MatchModel, patterns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lm = np.zeros(len(patterns))
    lu = np.zeros(len(patterns))
    for k in range(patterns.shape[1]):
        m = np.log(np.maximum(model.m[k], _FLOOR))
        u = np.log(np.maximum(model.u[k], _FLOOR))
        m[0] = u[0] = 0.0
        lm += m[patterns[:, k]]
        lu += u[patterns[:, k]]
    return lm, lu


def estimate_m_em(
    model: MatchModel,
    levels: np.ndarray,
    *,
    iterations: int,
    prior_strength: float,
    total_pairs: float,
    update_m: bool = True,
) -> MatchModel:
    """Return the model with m and the prior re-estimated by EM over candidate pairs (u fixed).

    With ``update_m`` off only the share of matches (hence the prior) is estimated: candidate
    pairs share a blocking key, so their non-matches agree on more fields than random pairs do,
    and letting m drift towards them ("same neighbourhood") inflates the prior.

    :param levels: the candidate pairs' level matrix.
    :param prior_strength: pseudo-count of the current m values.
    :param total_pairs: number of all record pairs (to turn the share of matches among candidates
        into the prior of a random pair).
    """
    out = model.copy()
    if len(levels) == 0 or iterations == 0:
        return out
    patterns, counts = pattern_counts(levels)
    share = 0.01
    for _ in range(iterations):
        lm, lu = _log_likelihoods(out, patterns)
        logit = np.log(share) - np.log1p(-share) + lm - lu
        gamma = 1.0 / (1.0 + np.exp(-np.clip(logit, -700, 700)))
        weighted = counts * gamma
        share = float(np.clip(weighted.sum() / counts.sum(), 1e-9, 1 - 1e-9))
        for k in range(patterns.shape[1] if update_m else 0):
            got = np.bincount(patterns[:, k], weights=weighted, minlength=len(out.m[k]))[1:]
            prior = model.m[k][1:] * prior_strength
            out.m[k] = np.r_[0.0, _normalized(got + prior)]
    out.prior = float(np.clip(share * len(levels) / max(total_pairs, 1.0), 1e-12, 0.5))
    out.history.append({"step": "em", "iterations": iterations, "candidate_match_share": share})
    return out


def fit_from_labels(
    model: MatchModel,
    levels: np.ndarray,
    labels: np.ndarray,
    *,
    prior_strength: float = 50.0,
    fit_u: bool = False,
) -> MatchModel:
    """Return the model with m fitted from labelled pairs (True: same donor), the current m a prior.

    The review queue's decisions are such labels: approving a pair is a match, rejecting it a
    non-match. With ``fit_u``, u is fitted from the non-matches the same way (only sensible when
    they are a random sample, which review decisions are not).

    :param levels: the labelled pairs' level matrix (:func:`comparison_levels`).
    :param labels: one bool per pair.
    """
    labels = np.asarray(labels, dtype=bool)
    out = model.copy()
    for k in range(levels.shape[1]):
        positives = np.bincount(levels[labels, k], minlength=len(model.m[k]))[1:].astype(np.float64)
        out.m[k] = np.r_[0.0, _normalized(positives + model.m[k][1:] * prior_strength)]
        if fit_u:
            negatives = np.bincount(levels[~labels, k], minlength=len(model.u[k]))[1:].astype(np.float64)
            out.u[k] = np.r_[0.0, _normalized(negatives + model.u[k][1:] * prior_strength)]
    out.history.append({"step": "labels", "matches": int(labels.sum()), "non_matches": int((~labels).sum())})
    return out


@dataclass(frozen=True)
class Scores:
    """Per-pair scores: each comparison's contribution (log2) and the total match weight."""

    contributions: np.ndarray
    match_weight: np.ndarray
    prior_weight: float

    @property
    def match_probability(self) -> np.ndarray:
        """Return ``1 / (1 + 2**-weight)``."""
        return np.asarray(1.0 / (1.0 + np.exp2(-np.clip(self.match_weight, -1000, 1000))), dtype=np.float64)


def score_levels(
    model: MatchModel,
    levels: np.ndarray,
    prepared: PreparedRecords | None = None,
    left: np.ndarray | None = None,
    *,
    tf_minimum: float = 1e-5,
) -> Scores:
    """Return the contributions and match weights of pairs with the given level matrix.

    :param prepared: with ``left``, enables term-frequency adjustments on exact levels that ask
        for them (the shared value's frequency replaces the level's u).
    :param left: the pairs' left row indices (an exact level's value is the left one's).
    """
    weights = model.weights()
    contributions = np.zeros(levels.shape, dtype=np.float32)
    for k, comparison in enumerate(model.comparisons):
        contributions[:, k] = weights[k][levels[:, k]]
        if prepared is None or left is None:
            continue
        for index, level in enumerate(comparison.levels):
            if not (isinstance(level, ExactMatchLevel) and level.term_frequency):
                continue
            hit = levels[:, k] == index
            if not hit.any():
                continue
            column = level.column or comparison.column
            codes, _ = prepared.codes(column)
            frequencies = term_frequencies(prepared, column)
            adjust = tf_adjustment(float(model.u[k][index]), frequencies, tf_minimum)
            contributions[hit, k] += adjust[codes[left[hit]]].astype(np.float32)
    total = model.prior_weight + contributions.sum(axis=1, dtype=np.float64)
    return Scores(contributions, total, model.prior_weight)
