"""Match weights refitted from review decisions: stored, active, used by resolve, audited."""

from __future__ import annotations

import json
from typing import Literal

import numpy as np
import psycopg
import pytest
from click.testing import CliRunner

from donor_sync.identity import MatchModel, fit_from_labels
from donor_sync.identity.scoring import score_levels
from donor_sync.resolve import decide, labelled_pairs
from donor_sync.resolve.match_models import load_active_model, refit_from_reviews
from tests.resolve.test_donors_support import ACTOR, JANE, donor_of, new_batch, rules, run, stage
from tests.resolve.test_review import MARCUS, review_pair

PEOPLE = [JANE, MARCUS]


def _decided_pairs(db: psycopg.Connection, decision: Literal["approve", "reject"]) -> list[int]:
    ids = []
    for n, person in enumerate(PEOPLE):
        _, _, review_id = review_pair(db, person, f"p{n}")
        decide(db, review_id, decision, actor=ACTOR, rules=rules())
        db.commit()
        ids.append(review_id)
    return ids


def test_too_few_labels_stores_nothing(db: psycopg.Connection) -> None:
    _decided_pairs(db, "reject")
    report = refit_from_reviews(db, rules(), actor=ACTOR, min_labels=5)
    assert report.labels == 2
    assert report.model_id is None
    assert report.skipped_reason is not None
    assert "at least 5" in report.skipped_reason
    assert db.execute("SELECT count(*) FROM core.match_models").fetchone() == (0,)


def test_refit_stores_an_active_model_equal_to_the_fit_and_audits_it(db: psycopg.Connection) -> None:
    _decided_pairs(db, "reject")
    report = refit_from_reviews(db, rules(), actor=ACTOR, min_labels=2)
    db.commit()
    assert report.model_id is not None
    assert (report.label_matches, report.label_non_matches) == (0, 2)
    assert report.changes, "rejecting pairs must move some level's weight"
    assert report.agreement_after is not None
    assert report.agreement_before is not None
    assert report.agreement_after >= report.agreement_before

    pairs = labelled_pairs(db, rules())
    base = MatchModel.from_rules(rules().dedup)
    stored = load_active_model(db, rules())
    expected_u = fit_from_labels(base, pairs.levels, pairs.labels, prior_strength=1000.0, fit_u=True).u
    for k in range(len(base.m)):
        np.testing.assert_allclose(stored.m[k], base.m[k])  # no approved pair: m stays the prior
        np.testing.assert_allclose(stored.u[k], expected_u[k])
    # Rejected pairs lean on u: the levels they hit weigh less, so the pairs themselves score lower.
    before = score_levels(base, pairs.levels).match_weight
    after = score_levels(stored, pairs.levels).match_weight
    assert (after < before).all()
    action, details = db.execute(
        "SELECT action, details FROM sync.audit_log WHERE object_type = 'match_model' AND object_id = %s",
        [str(report.model_id)],
    ).fetchone() or (None, None)
    assert action == "dedup.weights_refit"
    assert details["label_non_matches"] == 2
    assert "okafor" not in json.dumps(details).lower()


def test_refit_without_new_decisions_is_skipped_and_a_dry_run_stores_nothing(db: psycopg.Connection) -> None:
    _decided_pairs(db, "approve")
    dry = refit_from_reviews(db, rules(), actor=ACTOR, min_labels=2, dry_run=True)
    assert dry.model_id is None
    assert dry.skipped_reason is None
    assert dry.changes
    # Approved pairs lean on m: the levels they agree on weigh more.
    assert any(c.after > c.before for c in dry.changes)
    assert db.execute("SELECT count(*) FROM core.match_models").fetchone() == (0,)
    first = refit_from_reviews(db, rules(), actor=ACTOR, min_labels=2)
    again = refit_from_reviews(db, rules(), actor=ACTOR, min_labels=2)
    assert first.model_id is not None
    assert again.model_id is None
    assert again.skipped_reason is not None
    assert db.execute("SELECT count(*) FROM core.match_models WHERE active").fetchone() == (1,)


def test_resolve_scores_with_the_active_model(db: psycopg.Connection) -> None:
    """A stored model that says "a first-name match is strong evidence against" keeps the
    same-name pair that the rules' priors send to review apart."""
    base = MatchModel.from_rules(rules().dedup)
    comparisons = []
    for comparison, prior_m, u in zip(base.comparisons, base.m, base.u, strict=True):
        m = prior_m.copy()
        if comparison.name in {"first_name", "last_name"}:
            # Agreement levels: m tiny, so agreeing names weigh strongly against a match.
            m[1:-1] = 1e-6
            m[-1] = 1.0 - m[1:-1].sum()
        comparisons.append({"name": comparison.name, "m": m.tolist(), "u": u.tolist()})
    db.execute(
        "INSERT INTO core.match_models (rules_version, comparisons, prior, label_matches,"
        " label_non_matches, active, fitted_by) VALUES (%s, %s, %s, 0, 0, true, 'test')",
        [rules().version, json.dumps(comparisons), base.prior],
    )
    db.commit()
    first = new_batch()
    stage(db, first, "donorbox", "m-1", **JANE)
    run(db, first)
    second = new_batch()
    stage(db, second, "classy", "m-2", **{**JANE, "email": "m@other.example.com", "phone": "+16175550999"})
    counts = run(db, second)
    assert counts.review_queued == 0
    assert donor_of(db, "donorbox", "m-1") != donor_of(db, "classy", "m-2")
    assert db.execute("SELECT count(*) FROM sync.review_queue").fetchone() == (0,)


def test_cli_refit_reports_and_stores(
    db: psycopg.Connection, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from donor_sync.cli import main

    _decided_pairs(db, "reject")
    monkeypatch.setenv("DONOR_SYNC_DB_URL", db_url)
    dry = CliRunner().invoke(main, ["review", "refit", "--min-labels", "2", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "2 labelled pairs (0 approved, 2 rejected)" in dry.output
    assert "dry run: nothing stored" in dry.output
    real = CliRunner().invoke(main, ["review", "refit", "--min-labels", "2"])
    assert real.exit_code == 0, real.output
    assert "stored and active" in real.output
    assert db.execute("SELECT count(*) FROM core.match_models WHERE active").fetchone() == (1,)
