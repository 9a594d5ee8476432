"""The data quality scorecard of real runs: Donorbox donations landed, standardized and resolved by the
run's own stages, scored, and checked against figures computed here from the rows themselves."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg
import pytest

from donor_sync.observability.metrics import collect_run_health
from donor_sync.observability.quality import (
    compute_scorecard,
    load_quality_settings,
    record_scorecard,
    scorecard_trend,
    weighted_score,
)
from donor_sync.observability.quality.settings import QualitySettings
from donor_sync.resolve.fiscal import load_giving_settings
from donor_sync.resolve.run import resolve_run
from donor_sync.sources.extract import parse_iso
from donor_sync.sources.raw_landing import RawRecord, finish_batch, land_records, open_batch
from donor_sync.standardize.run import standardize_run
from tests.observability.test_metrics_support import figures, finish_run, start_run
from tests.resolve.test_donors_support import rules as resolve_rules
from tests.standardize.test_pipeline_support import NOW, donation
from tests.standardize.test_pipeline_support import rules as standardize_rules

JANE = {"first_name": "Jane", "last_name": "Okafor", "email": "jane.okafor@example.org",
        "phone": "+16175550142", "address": "41 Linden St", "city": "Somerville", "state": "MA",
        "zip_code": "02143", "country": "US"}  # fmt: skip
MARCUS = {"first_name": "Marcus", "last_name": "Bell", "email": "marcus.bell@example.net", "phone": None,
          "address": None, "city": None, "state": None, "zip_code": None, "country": None}  # fmt: skip


def _run_stages(db: psycopg.Connection, run_id: UUID, donations: list[dict[str, Any]]) -> int:
    """Land ``donations`` as the run's Donorbox batch, then standardize and resolve as the run's tasks do."""
    batch = open_batch(db, source="donorbox", stream="donations", channel="api", run_id=run_id)
    records = [RawRecord("donation", str(p["id"]), p, parse_iso(p["donation_date"])) for p in donations]
    read, loaded = land_records(db, batch_id=batch, source="donorbox", channel="api", records=records)
    finish_batch(db, batch, read=read, loaded=loaded, cursor=None)
    standardize_run(db, run_id, settings=standardize_rules(), now=NOW)
    resolve_run(db, run_id, rules=resolve_rules(), giving=load_giving_settings(), now=NOW)
    return batch


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


ADDRESS = ("address_line1", "city", "postal_code", "country_code")
#: What each field the shipped file names means, for the expected figures (not the SQL under test).
DONOR_PRESENT = {
    "email": lambda d: d["email"] is not None,
    "name": lambda d: (not _blank(d["organization_name"])) if d["is_organization"]
    else not _blank(d["first_name"]) and not _blank(d["last_name"]),
    "postal_address": lambda d: not any(_blank(d[c]) for c in ADDRESS),
    "phone": lambda d: d["phone"] is not None,
    "address_validated": lambda d: bool(d["address_validated"]),
}  # fmt: skip
GIFT_PRESENT = {name: (lambda g, name=name: not _blank(g[name]))
                for name in ("designation", "campaign", "payment_method", "utm_source")}  # fmt: skip


def _dicts(db: psycopg.Connection, query: str, params: Any) -> list[dict[str, Any]]:
    cur = db.execute(query, params)
    assert cur.description is not None
    names = [c.name for c in cur.description]
    rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    db.commit()
    return rows


def _expected(db: psycopg.Connection, batches: list[int], settings: QualitySettings) -> dict[str, Any]:
    """Compute the scorecard's figures from the batches' rows, in Python."""
    staged = _dicts(
        db,
        "SELECT d.disposition, s.donor_id, g.gift_id FROM staging.dispositions d"
        " LEFT JOIN staging.donors s USING (raw_record_id) LEFT JOIN staging.gifts g USING (raw_record_id)"
        " WHERE d.batch_id = ANY(%s)",
        (batches,),
    )
    staged_rows = [r for r in staged if r["disposition"] == "staged"]
    quarantined = sum(1 for r in staged if r["disposition"] == "quarantined")
    donors = _dicts(
        db,
        "SELECT * FROM core.donors WHERE donor_id IN"
        " (SELECT coalesce(merged_into, donor_id) FROM core.donors WHERE donor_id = ANY(%s))"
        " AND erased_at IS NULL",
        ([r["donor_id"] for r in staged_rows if r["donor_id"]],),
    )
    gifts = _dicts(
        db,
        "SELECT * FROM core.gifts WHERE gift_id = ANY(%s)",
        ([r["gift_id"] for r in staged_rows if r["gift_id"]],),
    )
    consent = {
        str(r["donor_id"])
        for r in _dicts(
            db,
            "SELECT donor_id FROM core.consent_state"
            " WHERE purpose = %s AND channel = %s AND status = ANY(%s)",
            (settings.consent.purpose, settings.consent.channel, list(settings.consent.explicit)),
        )
    }
    d_fields, g_fields = settings.completeness.donors, settings.completeness.gifts
    donor_points = sum(
        rule.weight for d in donors for name, rule in d_fields.items() if DONOR_PRESENT[name](d)
    )
    gift_points = sum(rule.weight for g in gifts for name, rule in g_fields.items() if GIFT_PRESENT[name](g))
    donor_full = sum(r.weight for r in d_fields.values()) * len(donors)
    gift_full = sum(r.weight for r in g_fields.values()) * len(gifts)
    staged_donors = sum(1 for r in staged_rows if r["donor_id"])
    # Records that did not become a donor of their own: all of them but one per new golden record.
    created = _dicts(
        db,
        "SELECT count(DISTINCT c.donor_id) AS n FROM staging.dispositions x"
        " JOIN staging.donors s USING (raw_record_id)"
        " JOIN core.donor_sources ds ON (ds.system, ds.external_id) = (s.source, s.source_id)"
        " JOIN core.cluster_map c ON c.donor_source_id = ds.donor_source_id AND c.valid_to IS NULL"
        " WHERE x.batch_id = ANY(%s) AND x.disposition = 'staged' AND c.decision = 'new_donor'",
        (batches,),
    )[0]["n"]
    joined = staged_donors - created
    return {
        "donors": donors,
        "gifts": gifts,
        "completeness": float((donor_points + gift_points) / (donor_full + gift_full)),
        "donor_completeness": float(donor_points / donor_full),
        "gift_completeness": float(gift_points / gift_full),
        "validity": len(staged_rows) / (len(staged_rows) + quarantined),
        "duplicate_rate": joined / staged_donors,
        "consent_coverage": sum(1 for d in donors if str(d["donor_id"]) in consent) / len(donors),
    }


def test_the_scorecard_of_a_run_matches_its_rows(db: psycopg.Connection) -> None:
    settings = load_quality_settings()
    run = start_run(db, "quality-a")
    donations = [
        donation(101, donor={**JANE, "id": 501}, join_mailing_list=True),
        donation(102, donor={**MARCUS, "id": 502}, designation=None),
        donation(103, donor={**JANE, "id": 503}),  # Jane again, another Donorbox donor id: a duplicate
        donation(104, donor={**MARCUS, "id": 504, "email": "not an email"}),  # quarantined
    ]
    batch = _run_stages(db, run, donations)
    finish_run(db, run)

    card = compute_scorecard(db, run, settings=settings)
    want = _expected(db, [batch], settings)
    assert card.donors == len(want["donors"]) == 2
    assert card.gifts == len(want["gifts"]) == 3
    assert card.validity == pytest.approx(want["validity"]) == 3 / 4
    assert card.duplicate_rate == pytest.approx(want["duplicate_rate"]) == 1 / 3
    assert card.completeness == pytest.approx(want["completeness"])
    assert card.completeness_by_entity["donors"] == pytest.approx(want["donor_completeness"])
    assert card.completeness_by_entity["gifts"] == pytest.approx(want["gift_completeness"])
    assert 0 < card.completeness < 1, "Marcus has no address or phone"
    assert card.consent_coverage == pytest.approx(want["consent_coverage"])
    assert card.consent_coverage == pytest.approx(1 / 2), "Jane joined the mailing list; Marcus chose nothing"
    parts = {"completeness": card.completeness, "validity": card.validity,
             "duplicate_rate": card.duplicate_rate, "consent_coverage": card.consent_coverage}  # fmt: skip
    weights = {k: float(settings.score.of(k)) for k in parts}
    expected_score = sum(
        weights[k] * ((1 - v) if k == "duplicate_rate" else v) for k, v in parts.items() if v is not None
    ) / sum(weights.values())
    assert card.score == pytest.approx(expected_score)

    # Recorded as stage quality with the run's other health figures, and read back the same.
    snapshot = collect_run_health(db, run)
    assert snapshot.quality == card
    recorded = figures(db, run, "quality")
    assert float(recorded[("quality", "", "score")]) == pytest.approx(card.score)
    assert recorded[("quality", "", "donors_scored")] == 2
    assert float(recorded[("quality", "donors", "completeness")]) == pytest.approx(want["donor_completeness"])


def test_a_later_run_does_not_change_an_earlier_runs_scorecard(db: psycopg.Connection) -> None:
    settings = load_quality_settings()
    first = start_run(db, "quality-1")
    first_batch = _run_stages(db, first, [donation(201, donor={**JANE, "id": 601}, join_mailing_list=True)])
    finish_run(db, first)
    before = record_scorecard(db, first, settings=settings)

    second = start_run(db, "quality-2")
    second_batch = _run_stages(
        db,
        second,
        [donation(202, donor={**MARCUS, "id": 602}), donation(203, donor={**JANE, "id": 603})],
    )
    finish_run(db, second)
    assert record_scorecard(db, first, settings=settings) == before
    assert before.donors == 1
    assert before.duplicate_rate == 0.0
    later = compute_scorecard(db, second, settings=settings)
    want = _expected(db, [second_batch], settings)
    assert later.donors == 2  # Marcus, and Jane's golden record her new Donorbox id joined
    assert later.duplicate_rate == pytest.approx(want["duplicate_rate"]) == 1 / 2
    assert later.completeness == pytest.approx(want["completeness"])
    assert first_batch != second_batch


def test_a_run_that_staged_nothing_has_no_scorecard(db: psycopg.Connection) -> None:
    run = start_run(db, "nothing")
    card = compute_scorecard(db, run)
    assert card.empty
    assert card.score is None
    assert collect_run_health(db, run).quality is None
    assert figures(db, run, "quality") == {}


@pytest.mark.parametrize(
    ("components", "expected"),
    [
        pytest.param({"completeness": 1.0, "validity": 1.0, "duplicate_rate": 0.0, "consent_coverage": 1.0},
                     1.0, id="perfect"),
        pytest.param({"completeness": 0.5, "validity": 1.0, "duplicate_rate": 0.5, "consent_coverage": 0.0},
                     (0.35 * 0.5 + 0.35 * 1.0 + 0.1 * 0.5 + 0.2 * 0.0) / 1.0, id="duplicates-count-against"),
        pytest.param({"completeness": 0.8, "validity": 0.6, "duplicate_rate": None, "consent_coverage": None},
                     (0.35 * 0.8 + 0.35 * 0.6) / 0.7, id="missing-figures-leave-the-mean"),
        pytest.param(dict.fromkeys(("completeness", "validity", "duplicate_rate", "consent_coverage")),
                     None, id="nothing-to-score"),
    ],
)  # fmt: skip
def test_the_score_is_the_weighted_mean_of_the_figures_it_has(
    components: dict[str, float | None], expected: float | None
) -> None:
    got = weighted_score(components, load_quality_settings())
    assert got == (pytest.approx(expected) if expected is not None else None)


# -- the trend ------------------------------------------------------------------------------------------


def _record(
    db: psycopg.Connection, name: str, score: float | None, *, dag_id: str = "donations_hourly"
) -> UUID:
    from donor_sync.observability.metrics.record import OWNED_QUALITY, Figure, write_figures

    run = start_run(db, name, dag_id=dag_id)
    if score is not None:
        rows = [
            Figure("quality", "", "score", score, "ratio"),
            Figure("quality", "", "validity", 0.9, "ratio"),
        ]
        write_figures(db, run, rows, owned=OWNED_QUALITY)
    finish_run(db, run)
    return run


def test_the_trend_lists_the_latest_scorecards_oldest_first(db: psycopg.Connection) -> None:
    runs = [_record(db, f"r{i}", 0.5 + i / 10) for i in range(4)]
    _record(db, "no-scorecard", None)
    nightly = _record(db, "nightly", 0.95, dag_id="donors_nightly")

    every = scorecard_trend(db)
    assert [p.run_id for p in every] == [*runs, nightly]
    assert [p.score for p in every] == pytest.approx([0.5, 0.6, 0.7, 0.8, 0.95])
    assert every[0].validity == pytest.approx(0.9)
    assert every[0].completeness is None
    assert every[0].dag_id == "donations_hourly"
    assert every[0].status == "success"
    assert [p.started_at for p in every] == sorted(p.started_at for p in every)

    hourly = scorecard_trend(db, dag_id="donations_hourly", limit=2)
    assert [p.run_id for p in hourly] == runs[2:]
    assert scorecard_trend(db, dag_id="privacy_requests") == []
    with pytest.raises(ValueError, match="limit"):
        scorecard_trend(db, limit=0)
    assert figures(db, runs[0], "quality")[("quality", "", "score")] == Decimal("0.5")
