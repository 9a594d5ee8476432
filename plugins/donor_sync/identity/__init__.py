"""Identity resolution: accurate, explainable, fast fuzzy dedup of donor records.

The public API (pure Python over pandas/numpy; no Airflow, no database):

- :func:`load_rules` -- the dedup rules (``include/mappings/dedup.yaml``) as validated models;
- :func:`prepare` -- normalize input records into the prepared columns;
- :func:`blocking_keys` -- each record's key per blocking pass (store them as indexed columns);
- :func:`candidate_pairs` / :func:`link_candidates` -- pairs sharing a key (within one set / new
  against existing);
- :func:`dedupe` -- the whole pipeline on one set of records -> :class:`DedupeResult`;
- :func:`score_pairs` -- score pairs between new and existing records with a trained model;
- :class:`MatchModel`, :func:`fit_from_labels` -- the m/u model and fitting it from labelled pairs
  (the review queue's decisions);
- :func:`explain_pair` -- a pair's explanation, each field's contribution summing to the score.

Modules: rules, columns, prepare, nicknames, blocking, comparisons, term_frequency, scoring,
bands, clustering, households, explain, engine (the pipeline).
"""

from __future__ import annotations

from donor_sync.identity.bands import AUTO_MERGE, BANDS, HOUSEHOLD, KEEP_APART, REVIEW
from donor_sync.identity.blocking import (
    CandidatePairs,
    blocking_keys,
    candidate_pairs,
    key_column,
    link_candidates,
)
from donor_sync.identity.columns import FIELDS, PREPARED_COLUMNS
from donor_sync.identity.comparisons import comparison_levels
from donor_sync.identity.engine import DedupeResult, dedupe, resolve, score_pairs, train
from donor_sync.identity.explain import explain_pair
from donor_sync.identity.nicknames import Nicknames, load_nicknames
from donor_sync.identity.prepare import PreparedRecords, prepare
from donor_sync.identity.rules import DedupRules, default_rules_path, load_rules
from donor_sync.identity.scoring import MatchModel, Scores, fit_from_labels, score_levels

__all__ = [
    "AUTO_MERGE",
    "BANDS",
    "FIELDS",
    "HOUSEHOLD",
    "KEEP_APART",
    "PREPARED_COLUMNS",
    "REVIEW",
    "CandidatePairs",
    "DedupRules",
    "DedupeResult",
    "MatchModel",
    "Nicknames",
    "PreparedRecords",
    "Scores",
    "blocking_keys",
    "candidate_pairs",
    "comparison_levels",
    "dedupe",
    "default_rules_path",
    "explain_pair",
    "fit_from_labels",
    "key_column",
    "link_candidates",
    "load_nicknames",
    "load_rules",
    "prepare",
    "resolve",
    "score_levels",
    "score_pairs",
    "train",
]
