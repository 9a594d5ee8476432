"""Trends for the overview's charts, read from ``sync.run_metrics`` joined with ``sync.runs``.

Figures follow the issue-9 metric contract (docs/observability): ``extract/<source>`` read and
``push/<destination>`` pushed per run, ``outcome/<destination>`` success_rate,
``latency/<destination>`` gift_to_destination_p50 and _p95, ``dead_letters/<destination>`` open
and oldest_open_age, ``api/<vendor>`` quota_remaining_ratio and ``quality/''`` the scorecard.
Every point is a figure a run recorded; nothing is derived, so a figure no run has recorded yet
shows as "no data yet". The current dead-letter depth and quota come from the live tables
(``sync.dead_letters``, ``sync.api_usage``) and are added as the latest point.

A trend covers the runs of the last ``days`` days that recorded its figures, at most the latest
``runs`` of them (default 7 days, 48 runs), dry runs left out. Parts of a fanned-out task are
summed for counts of records, calls and bytes; for gauges (ratios, seconds, counts) the largest
part is taken.

Functions read in the caller's transaction and change nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg

from donor_sync.web.dashboard.charts import Bar, BarChart, LineChart, Point, Series, Unit
from donor_sync.web.dashboard.health import latest_quota

__all__ = [
    "DEFAULT_DAYS",
    "DEFAULT_RUNS",
    "MAX_DAYS",
    "MAX_RUNS",
    "RunValue",
    "TrendWindow",
    "dead_letter_trends",
    "health_charts",
    "latency_trend",
    "quota_now",
    "quota_trend",
    "run_values",
    "scorecard_trend",
    "success_rate_trend",
    "throughput_trend",
]

DEFAULT_DAYS = 7
MAX_DAYS = 90
DEFAULT_RUNS = 48
MAX_RUNS = 500
#: The scorecard's figures, in the order the chart draws them (score first).
SCORECARD = ("score", "completeness", "validity", "consent_coverage", "duplicate_rate")


@dataclass(frozen=True)
class TrendWindow:
    """Which runs a trend covers: started in the last ``days`` days, at most the latest ``runs``."""

    days: int = DEFAULT_DAYS
    runs: int = DEFAULT_RUNS
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        if not 1 <= self.days <= MAX_DAYS:
            raise ValueError(f"days must be between 1 and {MAX_DAYS}, got {self.days}")
        if not 1 <= self.runs <= MAX_RUNS:
            raise ValueError(f"runs must be between 1 and {MAX_RUNS}, got {self.runs}")

    @property
    def since(self) -> datetime:
        """Return the earliest start a covered run may have."""
        return self.now - timedelta(days=self.days)


@dataclass(frozen=True)
class RunValue:
    """One figure of one run (summed over parts for counts, the largest part for gauges)."""

    run_id: str
    dag_id: str
    started_at: datetime
    status: str
    stage: str
    scope: str
    metric: str
    value: float

    @property
    def note(self) -> str:
        """Return what a tooltip says about the run (DAG id, and its status unless success)."""
        return self.dag_id if self.status == "success" else f"{self.dag_id}, {self.status}"


_RUN_VALUES_SQL = """
WITH wanted AS (
    SELECT * FROM unnest(%(stages)s::text[], %(metrics)s::text[]) AS w(stage, metric)
), picked AS (
    SELECT r.run_id, r.dag_id, r.started_at, r.status
    FROM sync.runs r
    WHERE r.started_at >= %(since)s AND r.started_at <= %(now)s AND NOT r.dry_run
      AND EXISTS (SELECT 1 FROM sync.run_metrics m JOIN wanted w USING (stage, metric)
                  WHERE m.run_id = r.run_id)
    ORDER BY r.started_at DESC
    LIMIT %(runs)s
)
SELECT p.run_id::text, p.dag_id, p.started_at, p.status, m.stage, m.scope, m.metric,
       CASE WHEN m.unit IN ('records', 'calls', 'bytes') THEN sum(m.value) ELSE max(m.value) END
FROM picked p
JOIN sync.run_metrics m ON m.run_id = p.run_id
JOIN wanted w ON (w.stage, w.metric) = (m.stage, m.metric)
GROUP BY p.run_id, p.dag_id, p.started_at, p.status, m.stage, m.scope, m.metric, m.unit
ORDER BY p.started_at, m.stage, m.scope, m.metric
"""


def run_values(
    conn: psycopg.Connection, window: TrendWindow, wanted: Sequence[tuple[str, str]]
) -> list[RunValue]:
    """Return the ``(stage, metric)`` figures of the runs ``window`` covers that recorded any of them.

    :param wanted: the figures, e.g. ``[("extract", "read"), ("push", "pushed")]``.
    :return: oldest run first, per run by stage, scope and metric.
    """
    rows = conn.execute(
        _RUN_VALUES_SQL,
        {
            "stages": [stage for stage, _ in wanted],
            "metrics": [metric for _, metric in wanted],
            "since": window.since,
            "now": window.now,
            "runs": window.runs,
        },
    ).fetchall()
    return [RunValue(r[0], r[1], r[2], r[3], r[4], r[5], r[6], float(r[7])) for r in rows]


def _series(values: Sequence[RunValue], name_of: dict[tuple[str, str, str], str]) -> tuple[Series, ...]:
    """Group values into series named by ``name_of[(stage, scope, metric)]``, in first-seen order."""
    grouped: dict[str, list[Point]] = defaultdict(list)
    order: list[str] = []
    for v in values:
        name = name_of.get((v.stage, v.scope, v.metric))
        if name is None:
            continue
        if name not in grouped:
            order.append(name)
        grouped[name].append(Point(v.started_at, v.value, v.note))
    return tuple(Series(name, tuple(grouped[name])) for name in sorted(order))


def throughput_trend(conn: psycopg.Connection, window: TrendWindow) -> LineChart:
    """Return records read (all sources together) and pushed per destination, per run."""
    values = run_values(conn, window, [("extract", "read"), ("push", "pushed")])
    read: dict[str, list[RunValue]] = defaultdict(list)
    for v in values:
        if v.stage == "extract":
            read[v.run_id].append(v)
    series = [
        Series(
            "read (all sources)",
            tuple(Point(vs[0].started_at, sum(v.value for v in vs), vs[0].note) for vs in read.values()),
        )
    ]
    names = {(v.stage, v.scope, v.metric): f"pushed to {v.scope}" for v in values if v.stage == "push"}
    series.extend(_series(values, names))
    return LineChart(
        chart_id="throughput",
        title="Throughput per run",
        description="Records read from every source and records pushed to each destination, per run.",
        y_label="read or pushed per run",
        unit=Unit.RECORDS,
        series=tuple(s for s in series if s.points),
        empty_note="Runs record extract/read and push/pushed.",
    )


def success_rate_trend(conn: psycopg.Connection, window: TrendWindow) -> LineChart:
    """Return each destination's push success rate per run (``outcome/<destination>/success_rate``)."""
    values = run_values(conn, window, [("outcome", "success_rate")])
    names = {(v.stage, v.scope, v.metric): v.scope for v in values}
    return LineChart(
        chart_id="success-rate",
        title="Push success rate",
        description="Share of the records attempted in a run that reached each destination.",
        y_label="success rate",
        unit=Unit.RATIO,
        series=_series(values, names),
        y_max=1.0,
        empty_note="Runs that push record outcome/<destination>/success_rate.",
    )


def latency_trend(conn: psycopg.Connection, window: TrendWindow) -> LineChart:
    """Return p50 and p95 of the time from a gift to its first landing, per destination and run."""
    values = run_values(
        conn, window, [("latency", "gift_to_destination_p50"), ("latency", "gift_to_destination_p95")]
    )
    names = {(v.stage, v.scope, v.metric): f"{v.scope} {v.metric.rsplit('_', 1)[-1]}" for v in values}
    return LineChart(
        chart_id="latency",
        title="Gift to destination latency",
        description="Median (p50) and 95th percentile (p95) time from a gift at its source to its first "
        "successful push, per destination and run.",
        y_label="latency",
        unit=Unit.SECONDS,
        series=_series(values, names),
        empty_note="Runs record latency/<destination>/gift_to_destination_p50 and _p95.",
    )


def _live_dead_letters(conn: psycopg.Connection) -> dict[str, tuple[int, datetime]]:
    rows = conn.execute(
        "SELECT destination::text, count(*), min(first_failed_at) FROM sync.dead_letters"
        " WHERE status = 'open' GROUP BY 1 ORDER BY 1"
    ).fetchall()
    return {destination: (int(count), oldest) for destination, count, oldest in rows}


def dead_letter_trends(conn: psycopg.Connection, window: TrendWindow) -> tuple[LineChart, LineChart]:
    """Return the open dead letters per destination and the oldest one's age, per run and now.

    The runs' figures (``dead_letters/<destination>`` open, oldest_open_age) are followed by a
    point for now from ``sync.dead_letters`` itself (0 for a destination whose letters are gone).
    """
    values = run_values(conn, window, [("dead_letters", "open"), ("dead_letters", "oldest_open_age")])
    live = _live_dead_letters(conn)
    now = window.now
    depth: dict[str, list[Point]] = defaultdict(list)
    oldest: dict[str, Point] = {}
    for v in values:
        if v.metric == "open":
            depth[v.scope].append(Point(v.started_at, v.value, v.note))
        elif v.run_id not in oldest or v.value > oldest[v.run_id].y:
            oldest[v.run_id] = Point(v.started_at, v.value, v.note)
    for destination in sorted(set(depth) | set(live)):
        depth[destination].append(Point(now, float(live.get(destination, (0, now))[0]), "now"))
    age_points = sorted(oldest.values(), key=lambda p: p.x)
    if live or age_points:
        oldest_now = min((first for _, first in live.values()), default=None)
        age = (now - oldest_now).total_seconds() if oldest_now is not None else 0.0
        age_points.append(Point(now, max(age, 0.0), "now"))
    depth_chart = LineChart(
        chart_id="dead-letter-depth",
        title="Open dead letters",
        description="Dead letters waiting for a person, per destination, after each run and now.",
        y_label="open dead letters",
        unit=Unit.COUNT,
        series=tuple(Series(d, tuple(depth[d])) for d in sorted(depth)),
        empty_note="No dead letter has been recorded.",
    )
    age_chart = LineChart(
        chart_id="dead-letter-age",
        title="Oldest open dead letter",
        description="How long the oldest open dead letter (any destination) had waited, after each run "
        "and now.",
        y_label="age",
        unit=Unit.SECONDS,
        series=(Series("oldest open", tuple(age_points)),) if age_points else (),
        empty_note="No dead letter has been recorded.",
    )
    return depth_chart, age_chart


def quota_trend(conn: psycopg.Connection, window: TrendWindow) -> LineChart:
    """Return each vendor's share of API quota left after each run, and now (``sync.api_usage``)."""
    values = run_values(conn, window, [("api", "quota_remaining_ratio")])
    points: dict[str, list[Point]] = defaultdict(list)
    for v in values:
        points[v.scope].append(Point(v.started_at, v.value, v.note))
    for quota in latest_quota(conn):
        if quota.ratio is not None and quota.observed_at >= window.since:
            points[quota.key].append(
                Point(quota.observed_at, quota.ratio, f"latest {quota.quota_window} window")
            )
    return LineChart(
        chart_id="quota",
        title="API quota left",
        description="Share of each vendor's API quota left, as the vendor reported it after each run and "
        "in its latest window.",
        y_label="quota left",
        unit=Unit.RATIO,
        series=tuple(Series(k, tuple(sorted(points[k], key=lambda p: p.x))) for k in sorted(points)),
        y_max=1.0,
        empty_note="Vendors report quota when pushes call them (api/<vendor>/quota_remaining_ratio).",
    )


def quota_now(conn: psycopg.Connection) -> BarChart:
    """Return the share of each vendor's quota used in its latest window (vendors reporting a limit)."""
    bars = []
    for quota in latest_quota(conn):
        ratio = quota.ratio
        if ratio is None:
            continue
        bars.append(
            Bar(
                quota.key,
                1.0 - ratio,
                f"{quota.remaining:,} of {quota.limit:,} left in the {quota.quota_window} window from "
                f"{quota.window_start.astimezone(UTC):%Y-%m-%d %H:%M} UTC;"
                f" {quota.calls:,} calls by donor-sync",
            )
        )
    return BarChart(
        chart_id="quota-used",
        title="API quota used (latest window)",
        description="Share of each vendor's quota used in its latest reported window.",
        y_label="quota used",
        unit=Unit.RATIO,
        bars=tuple(bars),
        y_max=1.0,
        empty_note="No vendor has reported a quota yet.",
    )


def scorecard_trend(conn: psycopg.Connection, window: TrendWindow) -> LineChart:
    """Return the data-quality scorecard per run (``quality`` score, completeness, ...; 0..1)."""
    values = run_values(conn, window, [("quality", metric) for metric in SCORECARD])
    grouped: dict[str, list[Point]] = defaultdict(list)
    for v in values:
        if v.scope == "":
            grouped[v.metric].append(Point(v.started_at, v.value, v.note))
    names = {"duplicate_rate": "duplicate rate (lower is better)", "consent_coverage": "consent coverage"}
    return LineChart(
        chart_id="scorecard",
        title="Data quality scorecard",
        description="Overall score and its parts after each scorecard run: completeness, validity, consent "
        "coverage and the duplicate rate.",
        y_label="score",
        unit=Unit.RATIO,
        series=tuple(Series(names.get(m, m), tuple(grouped[m])) for m in SCORECARD if grouped[m]),
        y_max=1.0,
        empty_note="The nightly run records quality/score and its parts.",
    )


def health_charts(conn: psycopg.Connection, window: TrendWindow) -> list[LineChart | BarChart]:
    """Return the overview's charts, in the order they are shown."""
    depth, age = dead_letter_trends(conn, window)
    return [
        throughput_trend(conn, window),
        success_rate_trend(conn, window),
        latency_trend(conn, window),
        depth,
        age,
        quota_trend(conn, window),
        quota_now(conn),
        scorecard_trend(conn, window),
    ]
