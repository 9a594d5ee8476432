"""Write a run's health figures to ``sync.run_metrics`` in one transaction, replacing its earlier ones.

The rows are the ones :func:`donor_sync.observability.runs.record_metric` writes (same key, same
upsert), but all of them commit together, and rows an earlier collection of the same run wrote
that no longer apply (a breaker since removed, a journey with no entry now) are deleted in the same
transaction. Collecting a run twice over the same state therefore leaves exactly the same rows,
and a reader never sees half a collection. Only the ``(stage, metric)`` pairs listed in
:data:`OWNED` are touched: the figures the stages record themselves (``journeys`` entries per
status, ``consent`` donors_expired...) are left alone. Floats are stored exactly as Python prints
them, so a snapshot read back equals the figures computed.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable
from decimal import Decimal
from typing import NamedTuple
from uuid import UUID

import psycopg

#: The units sync.run_metrics accepts.
UNITS = frozenset({"records", "calls", "seconds", "bytes", "ratio", "count"})


class Figure(NamedTuple):
    """One figure of a run: ``sync.run_metrics`` (stage, scope, metric, value, unit), part ''."""

    stage: str
    scope: str
    metric: str
    value: int | float | Decimal
    unit: str


#: (stage, metric) pairs of the data quality scorecard.
OWNED_QUALITY: frozenset[tuple[str, str]] = frozenset(
    ("quality", m)
    for m in ("completeness", "validity", "duplicate_rate", "consent_coverage", "score", "donors_scored",
              "gifts_scored")
)  # fmt: skip

#: Every (stage, metric) pair the health collection writes (metric contract of issue 9).
OWNED: frozenset[tuple[str, str]] = OWNED_QUALITY | frozenset(
    [
        *(("latency", m) for m in ("gift_to_destination_p50", "gift_to_destination_p95",
                                    "gift_to_destination_max", "gifts_landed")),
        *(("api", m) for m in ("calls", "quota_limit", "quota_remaining", "quota_remaining_ratio")),
        ("breaker", "state"),
        *(("consent", m) for m in ("donors_opted_in", "donors_opted_out", "donors_no_consent",
                                    "events_recorded")),
        ("suppressions", "active"),
        ("journeys", "entered"),
        ("journeys", "suppressed"),
        *(("webhooks", m) for m in ("received", "accepted", "rejected", "pending", "success_rate")),
        *(("events", m) for m in ("delivered", "failed", "success_rate")),
        *(("dead_letters", m) for m in ("open", "oldest_open_age", "new")),
        ("outcome", "success_rate"),
    ]
)  # fmt: skip

_UPSERT = """
INSERT INTO sync.run_metrics (run_id, stage, scope, part, metric, value, unit, task_id)
VALUES (%s, %s, %s, '', %s, %s, %s, %s)
ON CONFLICT (run_id, stage, scope, part, metric)
DO UPDATE SET value = EXCLUDED.value, unit = EXCLUDED.unit, task_id = EXCLUDED.task_id, recorded_at = now()
"""

_DELETE_STALE = """
DELETE FROM sync.run_metrics m
USING unnest(%(stages)s::text[], %(metrics)s::text[]) AS o(stage, metric)
WHERE m.run_id = %(run)s AND m.part = '' AND (m.stage, m.metric) = (o.stage, o.metric)
  AND (m.stage, m.scope, m.metric) NOT IN (
      SELECT * FROM unnest(%(kstages)s::text[], %(kscopes)s::text[], %(kmetrics)s::text[]))
"""


def _exact(value: int | float | Decimal) -> int | Decimal:
    """Return ``value`` as numeric keeps it: a float by its shortest repr, so it reads back equal.

    (A float sent as float8 would be cut to 15 significant digits by the cast to numeric.)
    """
    return Decimal(repr(value)) if isinstance(value, float) else value


def write_figures(
    conn: psycopg.Connection,
    run_id: UUID,
    figures: Iterable[Figure],
    *,
    owned: Collection[tuple[str, str]] = OWNED,
    task_id: str | None = None,
) -> int:
    """Record ``figures`` for ``run_id`` and delete its other rows of the ``owned`` pairs; commit.

    :param owned: the (stage, metric) pairs this collection is the only writer of.
    :return: how many figures were written.
    :raises ValueError: a figure outside ``owned`` or with a unit sync.run_metrics refuses.
    """
    rows = list(figures)
    for f in rows:
        if (f.stage, f.metric) not in owned:
            raise ValueError(f"{f.stage}/{f.metric} is not a figure this collection owns")
        if f.unit not in UNITS:
            raise ValueError(f"{f.stage}/{f.metric}: unit {f.unit!r} is not one of {sorted(UNITS)}")
        if isinstance(f.value, float) and not math.isfinite(f.value):
            raise ValueError(f"{f.stage}/{f.metric}: {f.value} is not a number sync.run_metrics keeps")
    pairs = sorted(owned)
    try:
        conn.execute(
            _DELETE_STALE,
            {
                "run": run_id,
                "stages": [s for s, _ in pairs],
                "metrics": [m for _, m in pairs],
                "kstages": [f.stage for f in rows],
                "kscopes": [f.scope for f in rows],
                "kmetrics": [f.metric for f in rows],
            },
        )
        if rows:
            with conn.cursor() as cur:
                cur.executemany(
                    _UPSERT,
                    [(run_id, f.stage, f.scope, f.metric, _exact(f.value), f.unit, task_id) for f in rows],
                )
    except BaseException:
        conn.rollback()
        raise
    conn.commit()
    return len(rows)
