"""Trend queries on a real Postgres seeded with runs and metrics as the issue-9 contract records
them: each chart holds exactly the recorded figures of the runs its window covers (dry runs and
old runs left out, parts summed), the live dead letters and quota are its latest point, and the
overview draws every chart or says "no data yet"."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import timedelta

import psycopg
import pytest
from fastapi.testclient import TestClient

from donor_sync.db import connect
from donor_sync.web.dashboard.charts import LineChart, Series
from donor_sync.web.dashboard.trends import (
    TrendWindow,
    dead_letter_trends,
    health_charts,
    latency_trend,
    quota_now,
    quota_trend,
    run_values,
    scorecard_trend,
    success_rate_trend,
    throughput_trend,
)
from tests.web.dashboard.conftest import HOURLY_RUNS, Seeded, Tokens, seed_runs

pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")


def _values(chart: LineChart) -> dict[str, list[float]]:
    return {s.name: [round(p.y, 6) for p in s.points] for s in chart.series}


def _series(chart: LineChart, name: str) -> Series:
    (found,) = [s for s in chart.series if s.name == name]
    return found


@pytest.fixture(scope="module")
def conn(seeded: Seeded) -> Iterator[psycopg.Connection]:
    with connect(seeded.url) as opened:
        yield opened


def test_throughput_sums_sources_and_parts_per_run_and_leaves_out_dry_and_old_runs(
    conn: psycopg.Connection, seeded: Seeded
) -> None:
    chart = throughput_trend(conn, TrendWindow(now=seeded.runs.now))
    runs = range(HOURLY_RUNS)
    assert _values(chart) == {
        "read (all sources)": [200.0 * (i + 1) + 1 for i in runs],  # stripe + donorbox
        "pushed to hubspot": [50.0 + i for i in runs],  # parts 0 and 1 summed
        "pushed to mailchimp": [60.0 + i for i in runs],
    }
    read = _series(chart, "read (all sources)")
    assert [p.x for p in read.points] == seeded.runs.hourly_starts
    assert [p.note for p in read.points][3] == "donations_hourly, failed"
    assert read.points[0].note == "donations_hourly"
    # the 10-day-old run enters with a longer window; the dry run never does
    longer = throughput_trend(conn, TrendWindow(days=11, now=seeded.runs.now))
    assert _series(longer, "read (all sources)").points[0].y == 7777.0
    assert 9999.0 not in [p.y for s in longer.series for p in s.points]


def test_a_window_covers_at_most_the_latest_runs_that_recorded_the_figures(
    conn: psycopg.Connection, seeded: Seeded
) -> None:
    chart = success_rate_trend(conn, TrendWindow(runs=3, now=seeded.runs.now))
    assert [p.x for p in _series(chart, "hubspot").points] == seeded.runs.hourly_starts[-3:]
    # the nightly runs recorded no success rate: they do not use up the window's runs
    one_day = scorecard_trend(conn, TrendWindow(days=1, runs=1, now=seeded.runs.now))
    assert [len(s.points) for s in one_day.series] == [1] * 5
    values = run_values(conn, TrendWindow(runs=2, now=seeded.runs.now), [("extract", "read")])
    assert sorted({v.started_at for v in values}) == seeded.runs.hourly_starts[-2:]


def test_success_rates_and_latencies_per_destination(conn: psycopg.Connection, seeded: Seeded) -> None:
    window = TrendWindow(now=seeded.runs.now)
    runs = range(HOURLY_RUNS)
    assert _values(success_rate_trend(conn, window)) == {
        "hubspot": [round(1.0 - 0.05 * i, 6) for i in runs],
        "mailchimp": [round(1.0 - 0.1 * i, 6) for i in runs],
    }
    latency = latency_trend(conn, window)
    assert _values(latency) == {
        "hubspot p50": [60.0 * (i + 1) for i in runs],
        "hubspot p95": [300.0 * (i + 1) for i in runs],
        "mailchimp p50": [120.0 * (i + 1) for i in runs],
        "mailchimp p95": [600.0 * (i + 1) for i in runs],
    }
    assert latency.unit == "seconds"


def test_dead_letters_end_with_the_live_depth_and_age(conn: psycopg.Connection, seeded: Seeded) -> None:
    now = seeded.runs.now
    depth, age = dead_letter_trends(conn, TrendWindow(now=now))
    runs = range(HOURLY_RUNS)
    # seed_health left open letters for hubspot and salesforce (1 day old); mailchimp has none now
    assert _values(depth) == {
        "hubspot": [float(i) for i in runs] + [1.0],
        "mailchimp": [float(i + 1) for i in runs] + [0.0],
        "salesforce": [1.0],
    }
    assert [p.x for p in _series(depth, "salesforce").points] == [now]
    (oldest,) = age.series
    assert [p.y for p in oldest.points][:-1] == [3600.0 * i for i in runs]
    live = conn.execute(
        "SELECT extract(epoch FROM %s - min(first_failed_at)) FROM sync.dead_letters WHERE status = 'open'",
        (now,),
    ).fetchone()
    assert live is not None
    assert oldest.points[-1].y == pytest.approx(float(live[0]), abs=1)
    assert oldest.points[-1].y > 86000  # the salesforce letter, a day old


def test_quota_trend_ends_with_the_latest_window_and_bars_show_the_share_used(
    conn: psycopg.Connection, seeded: Seeded
) -> None:
    now = seeded.runs.now
    chart = quota_trend(conn, TrendWindow(now=now))
    hubspot = _series(chart, "hubspot")
    assert [round(p.y, 6) for p in hubspot.points] == [round(1.0 - 0.08 * (i + 1), 6) for i in range(6)] + [
        0.48
    ]
    assert hubspot.points[-1].x == now - timedelta(minutes=65)
    assert [s.name for s in chart.series] == ["hubspot"]  # mailchimp reports no limit
    bars = quota_now(conn).bars
    assert [(b.label, round(b.value, 6)) for b in bars] == [("hubspot", 0.52)]
    assert "120,000 of 250,000 left in the daily window" in bars[0].note


def test_the_scorecard_trend_follows_the_nightly_runs(conn: psycopg.Connection, seeded: Seeded) -> None:
    chart = scorecard_trend(conn, TrendWindow(now=seeded.runs.now))
    assert _values(chart) == {
        "score": [0.90, 0.92],
        "completeness": [0.95, 0.95],
        "validity": [0.97, 0.97],
        "consent coverage": [0.80, 0.85],
        "duplicate rate (lower is better)": [0.03, 0.02],
    }
    assert [p.x for p in chart.series[0].points] == seeded.runs.nightly_starts


def test_a_window_is_bounded() -> None:
    for bad in ({"days": 0}, {"days": 91}, {"runs": 0}, {"runs": 501}):
        with pytest.raises(ValueError, match="must be between"):
            TrendWindow(**bad)  # type: ignore[arg-type]


def test_a_new_database_has_every_chart_saying_no_data_yet(
    db: psycopg.Connection, db_url: str, tokens: Tokens, make_client: Callable[..., TestClient]
) -> None:
    charts = health_charts(db, TrendWindow())
    assert len(charts) == 8
    assert not [c.chart_id for c in charts if c.has_data]
    page = make_client(db_url, bearer=tokens.valid()).get("/")
    assert page.status_code == 200
    assert page.text.count('<figure class="chart"') == 8
    assert page.text.count(">No data yet</text>") == 8
    assert "<circle" not in page.text
    # runs arrive: the charts fill in
    seed_runs(db)
    filled = make_client(db_url, bearer=tokens.valid()).get("/")
    assert filled.text.count(">No data yet</text>") == 0
    # throughput 3 series, success 2, latency 4 of 6 runs; depth 2 and age 1 of 6 runs and now;
    # quota 6 runs and the latest window; scorecard 5 figures of 2 nights
    assert filled.text.count('class="point"') == 18 + 12 + 24 + 14 + 7 + 7 + 10


def test_the_overview_draws_every_chart_over_the_period_asked(
    seeded: Seeded, tokens: Tokens, make_client: Callable[..., TestClient]
) -> None:
    client = make_client(seeded.url, bearer=tokens.valid("vic", "viewer"))
    page = client.get("/")
    assert page.status_code == 200
    ids = re.findall(r'<figure class="chart" id="chart-([a-z-]+)"', page.text)
    assert ids == [
        "throughput",
        "success-rate",
        "latency",
        "dead-letter-depth",
        "dead-letter-age",
        "quota",
        "quota-used",
        "scorecard",
    ]
    assert '<option value="7" selected>' in page.text
    freshness = re.search(r'<table id="freshness">.*?</table>', page.text, re.S)
    assert freshness
    assert "privacy_requests" in freshness.group(0)
    assert "stale" in freshness.group(0)
    # the scorecard's nightly runs are more than a day old: one day shows only the last one
    one_day = client.get("/?days=1&runs=2")
    assert one_day.status_code == 200
    scorecard = re.search(r'id="chart-scorecard".*?</figure>', one_day.text, re.S)
    assert scorecard
    assert scorecard.group(0).count('class="point"') == 5
    for bad in ("days=0", "days=91", "runs=0", "runs=501", "days=x"):
        refused = client.get(f"/?{bad}")
        assert refused.status_code == 400, bad
