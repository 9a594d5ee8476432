"""Match weights refitted from the review queue's decisions, stored in ``core.match_models``.

Every decided review is a labelled pair: approving it says the two records are one donor,
rejecting it says they are two. :func:`refit_from_reviews` fits each comparison level's m from
the approved pairs and its u from the rejected ones, on top of the rules file's priors
(``identity.fit_from_labels``: the priors weigh as pseudo-pairs, so a handful of decisions nudges
the weights and hundreds move them). u gets a much stronger prior than m: rejected review pairs
are the hard cases, not a random sample of non-matches, so they may only lean on u. It reports
how well the old and the new weights agree with the labels (an approved pair should score a
match probability of at least one half, a rejected pair below), and stores the model, active for
the rules version it was fitted on. Resolve scores with :func:`load_active_model`.

Always fitted from the file's priors plus every label, never from the previous fitted model, so
refitting twice on the same decisions gives the same weights (no drift).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg

from donor_sync.identity import MatchModel, fit_from_labels
from donor_sync.identity.scoring import score_levels
from donor_sync.resolve.donors import ResolveRules
from donor_sync.resolve.review import LabelledPairs, labelled_pairs

log = logging.getLogger(__name__)

#: Fewer decisions than this and a refit is skipped (the priors are as good a guess).
DEFAULT_MIN_LABELS = 20


@dataclass(frozen=True)
class WeightChange:
    """One comparison level's match weight (log2 m/u) before and after a refit."""

    comparison: str
    level: int
    before: float
    after: float


@dataclass(frozen=True)
class RefitReport:
    """What a refit found and did (counts and weights only: safe to log and print)."""

    rules_version: str
    label_matches: int
    label_non_matches: int
    agreement_before: float | None
    agreement_after: float | None
    changes: list[WeightChange]
    model_id: int | None  # None: not stored (dry run, or too few labels)
    skipped_reason: str | None = None

    @property
    def labels(self) -> int:
        return self.label_matches + self.label_non_matches


def _agreement(model: MatchModel, pairs: LabelledPairs) -> float | None:
    """Share of labels the model's scores agree with: approved pairs at a match probability of
    at least one half, rejected pairs below.

    The bands are not used: the household and contact-conflict guards send pairs to review
    whatever their score, so a band says little about the weights.
    """
    if not len(pairs):
        return None
    probability = score_levels(model, pairs.levels).match_probability
    return float(((probability >= 0.5) == pairs.labels).mean())


def _changes(before: MatchModel, after: MatchModel) -> list[WeightChange]:
    old, new = before.weights(), after.weights()
    out: list[WeightChange] = []
    for k, comparison in enumerate(before.comparisons):
        for level in range(1, len(old[k])):
            if not np.isclose(old[k][level], new[k][level], atol=1e-3):
                out.append(WeightChange(comparison.name, level, float(old[k][level]), float(new[k][level])))
    return out


def _serialize(model: MatchModel) -> list[dict[str, Any]]:
    return [
        {"name": c.name, "m": [float(x) for x in m], "u": [float(x) for x in u]}
        for c, m, u in zip(model.comparisons, model.m, model.u, strict=True)
    ]


def load_active_model(conn: psycopg.Connection, rules: ResolveRules) -> MatchModel:
    """Return the active fitted model of ``rules``' version, else the rules file's priors.

    A stored model whose comparisons or level counts no longer match the rules is ignored (the
    rules changed under the same version only if someone edited the table by hand).
    """
    base = MatchModel.from_rules(rules.dedup)
    row = conn.execute(
        "SELECT model_id, comparisons, prior FROM core.match_models WHERE rules_version = %s AND active",
        [rules.version],
    ).fetchone()
    if row is None:
        return base
    model_id, stored, prior = row
    shapes = [(c.name, len(m)) for c, m in zip(base.comparisons, base.m, strict=True)]
    if [(c["name"], len(c["m"])) for c in stored] != shapes:
        log.warning("match model %s does not fit the dedup rules; using the rules' priors", model_id)
        return base
    return MatchModel(
        base.comparisons,
        [np.asarray(c["m"], dtype=np.float64) for c in stored],
        [np.asarray(c["u"], dtype=np.float64) for c in stored],
        float(prior),
        [{"step": "stored", "model_id": int(model_id)}],
    )


def refit_from_reviews(
    conn: psycopg.Connection,
    rules: ResolveRules,
    *,
    actor: str,
    min_labels: int = DEFAULT_MIN_LABELS,
    prior_strength: float = 50.0,
    u_prior_strength: float = 1000.0,
    dry_run: bool = False,
) -> RefitReport:
    """Fit m from every decided review, store the model and make it active (unless ``dry_run``).

    Skipped (nothing stored) with fewer than ``min_labels`` decisions, or when no decision is
    newer than the active model's. Audited as ``dedup.weights_refit``. Does not commit.
    """
    pairs = labelled_pairs(conn, rules)
    matches, non_matches = int(pairs.labels.sum()), int((~pairs.labels).sum())
    base = MatchModel.from_rules(rules.dedup)
    current = load_active_model(conn, rules)

    def report(model: MatchModel | None, model_id: int | None, reason: str | None) -> RefitReport:
        return RefitReport(
            rules.version,
            matches,
            non_matches,
            _agreement(current, pairs),
            _agreement(model, pairs) if model is not None else None,
            _changes(current, model) if model is not None else [],
            model_id,
            reason,
        )

    if len(pairs) < min_labels:
        return report(None, None, f"{len(pairs)} decided reviews; at least {min_labels} needed")
    last_review = int(pairs.review_ids.max())
    newest = conn.execute(
        "SELECT last_review_id FROM core.match_models WHERE rules_version = %s AND active",
        [rules.version],
    ).fetchone()
    if newest is not None and newest[0] is not None and newest[0] >= last_review and not dry_run:
        return report(None, None, "no review decided since the active model was fitted")
    fitted = fit_from_labels(base, pairs.levels, pairs.labels, prior_strength=prior_strength)
    fitted.u = fit_from_labels(
        base, pairs.levels, pairs.labels, prior_strength=u_prior_strength, fit_u=True
    ).u
    result = report(fitted, None, None)
    if dry_run:
        return result
    conn.execute(
        "UPDATE core.match_models SET active = false WHERE rules_version = %s AND active", [rules.version]
    )
    row = conn.execute(
        "INSERT INTO core.match_models (rules_version, comparisons, prior, label_matches,"
        " label_non_matches, last_review_id, agreement_before, agreement_after, active, fitted_by)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, true, %s) RETURNING model_id",
        [
            rules.version,
            json.dumps(_serialize(fitted)),
            fitted.prior,
            matches,
            non_matches,
            last_review,
            result.agreement_before,
            result.agreement_after,
            actor,
        ],
    ).fetchone()
    assert row is not None
    model_id = int(row[0])
    conn.execute(
        "INSERT INTO sync.audit_log (actor, action, object_type, object_id, details)"
        " VALUES (%s, 'dedup.weights_refit', 'match_model', %s, %s)",
        [
            actor,
            str(model_id),
            json.dumps(
                {
                    "rules_version": rules.version,
                    "label_matches": matches,
                    "label_non_matches": non_matches,
                    "agreement_before": result.agreement_before,
                    "agreement_after": result.agreement_after,
                    "levels_changed": len(result.changes),
                }
            ),
        ],
    )
    return RefitReport(**{**result.__dict__, "model_id": model_id})
