"""The matching pipeline: prepare, block, compare, train, score, band, cluster, link households.

:func:`dedupe` resolves one set of records against itself (a CSV export, the whole donor base);
:func:`score_pairs` scores given or blocked pairs between two sets (new records against existing
golden records). Both are pure Python over pandas/numpy: no database, no Airflow.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from donor_sync.identity.bands import AUTO_MERGE, BANDS, band_codes, band_names
from donor_sync.identity.blocking import CandidatePairs, blocking_keys, candidate_pairs, link_candidates
from donor_sync.identity.clustering import cluster_pairs
from donor_sync.identity.comparisons import PairComparer
from donor_sync.identity.households import (
    ambiguous_at_address,
    distinct_given_names,
    household_ids,
    household_pairs,
    name_part_conflicts,
)
from donor_sync.identity.nicknames import Nicknames, load_nicknames
from donor_sync.identity.prepare import PreparedRecords, prepare
from donor_sync.identity.rules import DedupRules, load_rules
from donor_sync.identity.scoring import MatchModel, Scores, estimate_m_em, estimate_u, score_levels

log = logging.getLogger(__name__)


@dataclass
class DedupeResult:
    """Everything :func:`dedupe` found.

    - ``records``: one row per input record, in input order: ``record_id``, ``cluster_id`` (the
      record id of the cluster's first record), ``household_id`` (likewise, or missing),
      ``best_band``, ``best_probability`` and ``best_match_weight`` of its strongest link (missing
      for a record with no candidate pair).
    - ``pairs``: one row per candidate pair: ``left_id``, ``right_id``, ``left_row``, ``right_row``,
      ``match_weight``, ``match_probability``, ``band``, ``household`` (bool), ``rule`` (the
      deterministic rule that matched, or ""), ``passes`` (bit mask of blocking passes), and per
      comparison ``<name>_level`` (index into its levels) and ``<name>_weight`` (contribution).
    - ``model``: the m/u/prior used; ``prepared``: the prepared records; ``timings`` (seconds per
      stage) and ``stats`` (counts; no PII).
    """

    records: pd.DataFrame
    pairs: pd.DataFrame
    model: MatchModel
    prepared: PreparedRecords
    candidates: CandidatePairs
    timings: dict[str, float] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)

    def explain(self, pair: int, *, show_values: bool = False) -> str:
        """Return the explanation of pair row ``pair`` (see :mod:`~donor_sync.identity.explain`)."""
        from donor_sync.identity.explain import explain_pair

        return explain_pair(self, pair, show_values=show_values)


@contextmanager
def _timed(timings: dict[str, float], name: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = round(time.perf_counter() - start, 3)
        log.info("dedupe: %s took %.2f s", name, timings[name])


def train(
    rules: DedupRules,
    prepared: PreparedRecords,
    levels: np.ndarray,
    nicknames: Nicknames,
    model: MatchModel | None = None,
) -> MatchModel:
    """Return the model for these records: the priors (or ``model``), u from random pairs, m by EM.

    :param levels: the candidate pairs' level matrix (for EM).
    """
    model = model or MatchModel.from_rules(rules)
    training = rules.training
    n = len(prepared)
    if training.estimate_u and n >= training.min_records_for_u:
        sample = min(training.u_sample_pairs, max(100_000, 20 * n))
        model = estimate_u(model, prepared, nicknames, sample_pairs=sample, seed=training.seed)
    if training.em_iterations:
        model = estimate_m_em(
            model,
            levels,
            iterations=training.em_iterations,
            prior_strength=training.prior_strength,
            total_pairs=n * (n - 1) / 2,
            update_m=training.em_update_m,
        )
    if training.prior_match_probability is not None:
        model.prior = training.prior_match_probability
    return model


def _deterministic(comparer: PairComparer, rules: DedupRules) -> tuple[np.ndarray, np.ndarray]:
    """Return per pair whether a deterministic rule matched and the first rule's index (-1: none)."""
    n = len(comparer.left)
    which = np.full(n, -1, dtype=np.int16)
    for index, rule in enumerate(rules.deterministic):
        hit = np.ones(n, dtype=bool)
        for column in rule.columns:
            col = comparer.column(column)
            hit &= col.valid & (col.left == col.right)
        which[hit & (which < 0)] = index
    return which >= 0, which


def _pairs_frame(
    prepared: PreparedRecords,
    *,
    left: np.ndarray,
    right: np.ndarray,
    passes: np.ndarray,
    levels: np.ndarray,
    scores: Scores,
    bands: np.ndarray,
    household: np.ndarray,
    rule_index: np.ndarray,
    rules: DedupRules,
) -> pd.DataFrame:
    ids = prepared.record_ids
    names = np.array(["", *(r.name for r in rules.deterministic)], dtype=object)
    data: dict[str, Any] = {
        "left_id": ids[left],
        "right_id": ids[right],
        "left_row": left,
        "right_row": right,
        "match_weight": scores.match_weight,
        "match_probability": scores.match_probability,
        "band": band_names(bands),
        "household": household,
        "rule": pd.Categorical(names[rule_index + 1]),
        "passes": passes,
    }
    for k, comparison in enumerate(rules.comparisons):
        data[f"{comparison.name}_level"] = levels[:, k]
        data[f"{comparison.name}_weight"] = scores.contributions[:, k]
    return pd.DataFrame(data)


def _best_links(
    n: int, left: np.ndarray, right: np.ndarray, weight: np.ndarray, bands: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Return each record's strongest link: its weight (-inf: none) and that pair's band code."""
    best = np.full(n, -np.inf)
    band = np.full(n, -1, dtype=np.int8)
    if len(left) == 0:
        return best, band
    ends = np.concatenate([left, right])
    weights = np.concatenate([weight, weight])
    codes = np.concatenate([bands, bands])
    order = np.lexsort((-weights, ends))
    first = np.r_[True, ends[order][1:] != ends[order][:-1]]
    chosen = order[first]
    best[ends[chosen]] = weights[chosen]
    band[ends[chosen]] = codes[chosen]
    return best, band


def _records_frame(
    ids: np.ndarray, clusters: np.ndarray, households: np.ndarray, best: np.ndarray, best_band: np.ndarray
) -> pd.DataFrame:
    """Return one row per record: cluster and household ids (first member's id), strongest link."""
    n = len(ids)
    first_of_cluster = np.full(int(clusters.max()) + 1 if n else 0, -1, dtype=np.int64)
    first_of_cluster[clusters[::-1]] = np.arange(n)[::-1]
    has_household = households >= 0
    household_id = np.full(n, None, dtype=object)
    if has_household.any():
        first_of_household = np.full(int(households.max()) + 1, -1, dtype=np.int64)
        cluster_first = first_of_cluster[clusters]
        first_of_household[households[has_household][::-1]] = cluster_first[has_household][::-1]
        household_id[has_household] = ids[first_of_household[households[has_household]]]
    linked = np.isfinite(best)
    with np.errstate(over="ignore"):
        probability = np.where(linked, 1.0 / (1.0 + np.exp2(-np.clip(best, -1000, 1000))), np.nan)
    records = pd.DataFrame(
        {
            "record_id": ids,
            "cluster_id": ids[first_of_cluster[clusters]],
            "household_id": household_id,
            "best_band": pd.Categorical.from_codes(best_band, categories=list(BANDS)),
            "best_probability": probability,
            "best_match_weight": np.where(linked, best, np.nan),
        }
    )
    return records


def resolve(
    prepared: PreparedRecords,
    candidates: CandidatePairs,
    rules: DedupRules,
    *,
    nicknames: Nicknames,
    model: MatchModel | None = None,
    fit: bool = True,
    timings: dict[str, float] | None = None,
) -> DedupeResult:
    """Score, band and cluster given candidate pairs of prepared records (the part after blocking).

    :param model: start from this model (e.g. one fitted from review decisions).
    :param fit: estimate u and m on these records (``training``); False: use ``model`` as is.
    """
    timings = timings if timings is not None else {}
    left, right = candidates.left, candidates.right
    comparer = PairComparer(prepared, left, right, nicknames)
    with _timed(timings, "compare"):
        levels = np.zeros((len(left), len(rules.comparisons)), dtype=np.int8)
        for k, comparison in enumerate(rules.comparisons):
            levels[:, k] = comparer.levels(comparison)
            comparer.release()  # one column's pair views at a time: they are large
        household = household_pairs(comparer, rules.household)
        ambiguous = ambiguous_at_address(comparer, rules.household, household)
        ambiguous |= name_part_conflicts(comparer, rules.household)
        if rules.thresholds.merge_blocked_by_distinct_names:
            ambiguous |= distinct_given_names(comparer)
        deterministic, rule_index = _deterministic(comparer, rules)
        comparer.release()
    with _timed(timings, "train"):
        if fit:
            model = train(rules, prepared, levels, nicknames, model)
        elif model is None:
            model = MatchModel.from_rules(rules)
    with _timed(timings, "score"):
        scores = score_levels(model, levels, prepared, left, tf_minimum=rules.training.tf_minimum)
        names = [c.name for c in rules.comparisons]
        needed = [names.index(n) for n in rules.thresholds.merge_needs_agreement_on]
        agreement = (scores.contributions[:, needed] > 0).any(axis=1) if needed else np.ones(len(left), bool)
        agreement &= ~ambiguous
        for name, kinds in rules.thresholds.merge_blocked_by.items():
            k = names.index(name)
            for index, level in enumerate(rules.comparisons[k].levels):
                if level.type in kinds:
                    agreement &= levels[:, k] != index
        bands = band_codes(
            scores.match_probability,
            rules.thresholds,
            household=household,
            deterministic=deterministic,
            agreement=agreement,
        )
    with _timed(timings, "cluster"):
        n = len(prepared)
        merge = bands == BANDS.index(AUTO_MERGE)
        cannot = household | (scores.match_probability < rules.clustering.cannot_link_below)
        clusters = cluster_pairs(n, left, right, weight=scores.match_weight, merge=merge, cannot_link=cannot)
        households = household_ids(clusters, left, right, household)
        best, best_band = _best_links(n, left, right, scores.match_weight, bands)
    with _timed(timings, "assemble"):
        records = _records_frame(prepared.record_ids, clusters, households, best, best_band)
        pairs = _pairs_frame(
            prepared,
            left=left,
            right=right,
            passes=candidates.passes,
            levels=levels,
            scores=scores,
            bands=bands,
            household=household,
            rule_index=rule_index,
            rules=rules,
        )
    stats = {
        "records": n,
        "candidate_pairs": len(left),
        "skipped_blocks": candidates.skipped_blocks,
        "bands": {name: int((bands == i).sum()) for i, name in enumerate(BANDS)},
        "clusters": int(clusters.max()) + 1 if n else 0,
        "households": int(households.max()) + 1 if (households >= 0).any() else 0,
    }
    log.info("dedupe: %s records, %s candidate pairs, %s clusters", n, len(left), stats["clusters"])
    return DedupeResult(records, pairs, model, prepared, candidates, timings, stats)


def dedupe(
    frame: pd.DataFrame,
    rules: DedupRules | None = None,
    *,
    id_column: str = "record_id",
    model: MatchModel | None = None,
    fit: bool = True,
    nicknames: Nicknames | None = None,
) -> DedupeResult:
    """Resolve duplicate records in ``frame``.

    :param frame: records with columns named as :data:`~donor_sync.identity.columns.FIELDS`
        (any subset) and ``id_column``.
    :param rules: the dedup rules (the shipped ``include/mappings/dedup.yaml`` by default).
    :param model: start from this model instead of the rules' priors (e.g. fitted from labels).
    :param fit: estimate u (random pairs) and m (EM) on these records as ``rules.training`` says.
    :return: clusters, households, every candidate pair with its score, band and per-field
        contributions, and the model.
    """
    rules = rules or load_rules()
    nicknames = nicknames or load_nicknames()
    timings: dict[str, float] = {}
    with _timed(timings, "prepare"):
        prepared = prepare(frame, id_column=id_column, nicknames=nicknames)
    with _timed(timings, "block"):
        candidates = candidate_pairs(prepared, rules.blocking)
    result = resolve(prepared, candidates, rules, nicknames=nicknames, model=model, fit=fit, timings=timings)
    result.timings["total"] = round(sum(v for k, v in timings.items() if k != "total"), 3)
    return result


def score_pairs(
    left: pd.DataFrame,
    right: pd.DataFrame,
    rules: DedupRules | None = None,
    *,
    model: MatchModel,
    pairs: pd.DataFrame | None = None,
    id_column: str = "record_id",
    nicknames: Nicknames | None = None,
) -> pd.DataFrame:
    """Score pairs between two sets of records (new donors against existing golden records).

    :param left: the new records; ``right`` the existing ones (fields as in :func:`dedupe`).
    :param model: the trained model (``DedupeResult.model`` of a full run, or one fitted from labels).
    :param pairs: ``left_row``/``right_row`` positions to score; by default every pair sharing a
        blocking key (:func:`~donor_sync.identity.blocking.link_candidates`).
    :return: one row per pair: ``left_id``, ``right_id``, ``left_row``, ``right_row``, scores, band,
        household flag, rule and per-comparison levels and contributions, as in
        :attr:`DedupeResult.pairs` (``passes`` 0 when pairs were given).
    """
    rules = rules or load_rules()
    nicknames = nicknames or load_nicknames()
    both = pd.concat(
        [left.reset_index(drop=True), right.reset_index(drop=True)], ignore_index=True, sort=False
    )
    prepared = prepare(both, id_column=id_column, nicknames=nicknames)
    n_left = len(left)
    if pairs is None:
        keys = blocking_keys(prepared, rules.blocking)
        found = link_candidates(keys.iloc[:n_left], keys.iloc[n_left:], rules.blocking)
        left_rows = found["new_row"].to_numpy(np.int64)
        right_rows = found["existing_row"].to_numpy(np.int64)
        passes = found["passes"].to_numpy(np.int64)
    else:
        left_rows = pairs["left_row"].to_numpy(np.int64)
        right_rows = pairs["right_row"].to_numpy(np.int64)
        passes = np.zeros(len(left_rows), dtype=np.int64)
    candidates = CandidatePairs(
        left_rows, right_rows + n_left, passes, tuple(p.name for p in rules.blocking.passes), {}
    )
    result = resolve(prepared, candidates, rules, nicknames=nicknames, model=model, fit=False)
    out = result.pairs
    out["right_row"] = out["right_row"] - n_left
    return out
