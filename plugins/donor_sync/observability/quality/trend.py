"""The scorecard's trend: the latest runs' scorecards, oldest first (the dashboard, the drop alert)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import psycopg

from donor_sync.observability.quality.scorecard import RATIO_METRICS, STAGE


@dataclass(frozen=True)
class ScorecardPoint:
    """One run's scorecard as recorded; a figure is None when the run had nothing to measure it on."""

    run_id: UUID
    dag_id: str
    status: str
    started_at: datetime
    completeness: float | None
    validity: float | None
    duplicate_rate: float | None
    consent_coverage: float | None
    score: float | None


_TREND = """
WITH recent AS (
    SELECT r.run_id, r.dag_id, r.status, r.started_at
    FROM sync.runs r
    WHERE (%(dag)s::text IS NULL OR r.dag_id = %(dag)s::text)
      AND EXISTS (SELECT 1 FROM sync.run_metrics m
                  WHERE m.run_id = r.run_id AND m.stage = %(stage)s AND m.scope = ''
                    AND m.metric = ANY(%(metrics)s))
    ORDER BY r.started_at DESC, r.run_id DESC
    LIMIT %(limit)s
)
SELECT recent.run_id, recent.dag_id, recent.status, recent.started_at, m.metric, m.value
FROM recent
LEFT JOIN sync.run_metrics m
       ON m.run_id = recent.run_id AND m.stage = %(stage)s AND m.scope = '' AND m.part = ''
      AND m.metric = ANY(%(metrics)s)
ORDER BY recent.started_at, recent.run_id
"""


def scorecard_trend(
    conn: psycopg.Connection, *, dag_id: str | None = None, limit: int = 30
) -> list[ScorecardPoint]:
    """Return the scorecards of the latest ``limit`` runs that recorded one, oldest first.

    :param dag_id: only this DAG's runs (None: every DAG's).
    :param limit: how many runs, at most (1..10,000).
    """
    if not 1 <= limit <= 10_000:
        raise ValueError(f"limit must be between 1 and 10000, got {limit}")
    rows = conn.execute(
        _TREND, {"dag": dag_id, "stage": STAGE, "metrics": list(RATIO_METRICS), "limit": limit}
    ).fetchall()
    conn.commit()
    runs: dict[UUID, tuple[str, str, datetime]] = {}
    figures: dict[UUID, dict[str, float]] = {}
    for run_id, dag, status, started_at, metric, value in rows:
        key = UUID(str(run_id))
        runs.setdefault(key, (str(dag), str(status), started_at))
        if metric is not None:
            figures.setdefault(key, {})[str(metric)] = float(value)
    points = []
    for key, (dag, status, started_at) in runs.items():
        got = figures.get(key, {})
        points.append(
            ScorecardPoint(
                run_id=key,
                dag_id=dag,
                status=status,
                started_at=started_at,
                completeness=got.get("completeness"),
                validity=got.get("validity"),
                duplicate_rate=got.get("duplicate_rate"),
                consent_coverage=got.get("consent_coverage"),
                score=got.get("score"),
            )
        )
    return points
