"""The data quality scorecard of one run: completeness, validity, duplicate rate, consent coverage.

The scorecard covers the records the run touched: the donors and gifts it staged (the staged
dispositions of its batches) and the golden donors and core gifts they resolved to.

- **completeness**: the weighted share of the fields named in ``include/mappings/quality.yaml``
  present on those golden donors and core gifts, pooled over both (see
  :class:`~donor_sync.observability.quality.settings.Completeness`); per entity as scopes
  ``donors`` and ``gifts``;
- **validity**: staged / (staged + quarantined), from the run's own ``standardize`` figures;
- **duplicate_rate**: the run's ``resolve`` figure ``merged`` (new records that joined an existing
  or another new donor) over the donor records it staged; lower is better;
- **consent_coverage**: the share of those golden donors with an explicit consent state (by default
  opt-in or opt-out for marketing email);
- **score**: the weighted mean of completeness, validity, 1 - duplicate_rate and consent coverage,
  over the figures the run has.

A run that staged nothing has no scorecard. Cost follows the run: its batches are found by run id
(and the batches it standardized within its window), their records through the dispositions'
batch index, and everything else by primary key.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from uuid import UUID

import psycopg
from psycopg import sql

from donor_sync.observability.quality.settings import (
    COMPONENTS,
    DONOR_FIELDS,
    GIFT_FIELDS,
    FieldRule,
    QualitySettings,
    load_quality_settings,
)

#: Stage of the scorecard's figures in ``sync.run_metrics``.
STAGE = "quality"
#: The figures recorded with scope '' (ratios), then the record counts.
RATIO_METRICS: tuple[str, ...] = (*COMPONENTS, "score")
COUNT_METRICS: tuple[str, ...] = ("donors_scored", "gifts_scored")
#: Entities whose completeness is also recorded on its own (scope = entity).
ENTITIES: tuple[str, ...] = ("donors", "gifts")


@dataclass(frozen=True)
class Scorecard:
    """A run's scorecard; a figure is None when the run has nothing to measure it on.

    :ivar donors: golden donors scored (the live survivors the run's staged donors resolved to).
    :ivar gifts: core gifts scored.
    :ivar completeness_by_entity: ``{"donors": ratio, "gifts": ratio}`` for entities with records.
    """

    run_id: UUID
    completeness: float | None
    validity: float | None
    duplicate_rate: float | None
    consent_coverage: float | None
    score: float | None
    donors: int = 0
    gifts: int = 0
    completeness_by_entity: dict[str, float] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        """Whether the run had nothing to score."""
        return all(getattr(self, name) is None for name in RATIO_METRICS)

    def figure(self, name: str) -> float | None:
        """Return one of :data:`RATIO_METRICS` by name."""
        value: float | None = getattr(self, name)
        return value


def _bounds(conn: psycopg.Connection, run_id: UUID) -> tuple[datetime, datetime]:
    """Return the instants a run covers: ``started_at`` .. ``finished_at`` (now while it runs)."""
    row = conn.execute(
        "SELECT started_at, coalesce(finished_at, now()) FROM sync.runs WHERE run_id = %s", (run_id,)
    ).fetchone()
    if row is None:
        raise LookupError(f"no run {run_id} in sync.runs")
    return row[0], row[1]


def run_batches(conn: psycopg.Connection, run_id: UUID, *, start: datetime, end: datetime) -> list[int]:
    """Return the standardized batches of a run: its own, and those it standardized in its window.

    The second kind is what the standardize stage adopts (batches a failed run left loaded); the
    window's end keeps batches standardized by later runs out.
    """
    rows = conn.execute(
        "SELECT batch_id FROM raw.batches WHERE run_id = %(run)s AND status = 'standardized'"
        " UNION SELECT batch_id FROM raw.batches WHERE status = 'standardized'"
        " AND finished_at BETWEEN %(start)s AND %(end)s ORDER BY 1",
        {"run": run_id, "start": start, "end": end},
    ).fetchall()
    return [int(r[0]) for r in rows]


def _weighted_sum(
    fields: Iterable[tuple[str, FieldRule]], catalogue: dict[str, tuple[str, str]]
) -> sql.Composable:
    """Return SQL summing each present field's weight for one record (0 when no field is named)."""
    terms = [
        sql.SQL("(CASE WHEN {} THEN {} ELSE 0 END)").format(
            sql.SQL(catalogue[name][0]), sql.Literal(rule.weight)
        )
        for name, rule in fields
    ]
    return sql.SQL(" + ").join(terms) if terms else sql.SQL("0")


def _entity_figures(
    conn: psycopg.Connection,
    query: sql.Composed,
    params: dict[str, object],
) -> tuple[int, Decimal, int]:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return int(row[0]), Decimal(row[1] or 0), int(row[2] or 0)


_DONORS = """
WITH staged AS (
    SELECT s.donor_id FROM staging.dispositions x
    JOIN staging.donors s ON s.raw_record_id = x.raw_record_id
    WHERE x.batch_id = ANY(%(batches)s) AND x.disposition = 'staged'
), golden AS (
    SELECT DISTINCT coalesce(d0.merged_into, d0.donor_id) AS donor_id
    FROM staged JOIN core.donors d0 ON d0.donor_id = staged.donor_id
)
SELECT count(*), sum({present}),
       count(*) FILTER (WHERE EXISTS (
           SELECT 1 FROM core.consent_state c
           WHERE c.donor_id = d.donor_id AND c.purpose = %(purpose)s AND c.channel = %(channel)s
             AND c.status = ANY(%(explicit)s)))
FROM golden JOIN core.donors d ON d.donor_id = golden.donor_id
WHERE d.erased_at IS NULL
"""

_GIFTS = """
WITH staged AS (
    SELECT DISTINCT s.gift_id FROM staging.dispositions x
    JOIN staging.gifts s ON s.raw_record_id = x.raw_record_id
    WHERE x.batch_id = ANY(%(batches)s) AND x.disposition = 'staged' AND s.gift_id IS NOT NULL
)
SELECT count(*), sum({present}), 0
FROM staged JOIN core.gifts g ON g.gift_id = staged.gift_id
"""

_STAGED_DONORS = """
SELECT count(*) FROM staging.dispositions x JOIN staging.donors s ON s.raw_record_id = x.raw_record_id
WHERE x.batch_id = ANY(%(batches)s) AND x.disposition = 'staged'
"""


def _metric_sums(
    conn: psycopg.Connection, run_id: UUID, wanted: Sequence[tuple[str, str]]
) -> dict[str, Decimal]:
    """Return ``{metric: total}`` over scopes and parts of the run's ``(stage, metric)`` figures."""
    rows = conn.execute(
        "SELECT m.stage || '/' || m.metric, sum(m.value) FROM sync.run_metrics m"
        " JOIN unnest(%(stages)s::text[], %(metrics)s::text[]) AS w(stage, metric)"
        "   ON (w.stage, w.metric) = (m.stage, m.metric)"
        " WHERE m.run_id = %(run)s GROUP BY 1",
        {"run": run_id, "stages": [s for s, _ in wanted], "metrics": [m for _, m in wanted]},
    ).fetchall()
    return {str(name): Decimal(total) for name, total in rows}


def _ratio(numerator: Decimal | int, denominator: Decimal | int) -> float | None:
    return None if not denominator else min(1.0, max(0.0, float(Decimal(numerator) / Decimal(denominator))))


def weighted_score(components: dict[str, float | None], settings: QualitySettings) -> float | None:
    """Return the weighted mean of the components the run has (1 - duplicate_rate for duplicates)."""
    total = Decimal(0)
    weights = Decimal(0)
    for name in COMPONENTS:
        value = components.get(name)
        weight = settings.score.of(name)
        if value is None or weight == 0:
            continue
        good = 1 - value if name == "duplicate_rate" else value
        total += weight * Decimal(str(good))
        weights += weight
    return None if weights == 0 else float(total / weights)


def compute_scorecard(
    conn: psycopg.Connection, run_id: UUID, *, settings: QualitySettings | None = None
) -> Scorecard:
    """Compute a run's scorecard (nothing is written).

    :raises LookupError: when the run does not exist.
    """
    settings = settings or load_quality_settings()
    start, end = _bounds(conn, run_id)
    batches = run_batches(conn, run_id, start=start, end=end)
    consent = settings.consent
    params: dict[str, object] = {
        "batches": batches,
        "purpose": consent.purpose,
        "channel": consent.channel,
        "explicit": list(consent.explicit),
    }
    donor_fields = settings.completeness.donors
    gift_fields = settings.completeness.gifts
    donors, donor_points, donors_explicit = _entity_figures(
        conn, sql.SQL(_DONORS).format(present=_weighted_sum(donor_fields.items(), DONOR_FIELDS)), params
    )
    gifts, gift_points, _ = (
        _entity_figures(
            conn, sql.SQL(_GIFTS).format(present=_weighted_sum(gift_fields.items(), GIFT_FIELDS)), params
        )
        if gift_fields
        else (0, Decimal(0), 0)
    )
    staged_row = conn.execute(_STAGED_DONORS, params).fetchone()
    staged_donors = int(staged_row[0]) if staged_row else 0
    conn.commit()

    donor_full = sum((r.weight for r in donor_fields.values()), Decimal(0))
    gift_full = sum((r.weight for r in gift_fields.values()), Decimal(0))
    by_entity: dict[str, float] = {}
    if donors:
        by_entity["donors"] = float(donor_points / (donors * donor_full))
    if gifts and gift_full:
        by_entity["gifts"] = float(gift_points / (gifts * gift_full))
    possible = donors * donor_full + gifts * gift_full
    completeness = float((donor_points + gift_points) / possible) if possible else None

    sums = _metric_sums(
        conn, run_id, [("standardize", "staged"), ("standardize", "quarantined"), ("resolve", "merged")]
    )
    conn.commit()
    staged = sums.get("standardize/staged", Decimal(0))
    quarantined = sums.get("standardize/quarantined", Decimal(0))
    validity = _ratio(staged, staged + quarantined)
    merged = sums.get("resolve/merged")
    duplicate_rate = _ratio(merged, staged_donors) if merged is not None else None
    consent_coverage = _ratio(donors_explicit, donors)
    components: dict[str, float | None] = {
        "completeness": completeness,
        "validity": validity,
        "duplicate_rate": duplicate_rate,
        "consent_coverage": consent_coverage,
    }
    return Scorecard(
        run_id=run_id,
        completeness=completeness,
        validity=validity,
        duplicate_rate=duplicate_rate,
        consent_coverage=consent_coverage,
        score=weighted_score(components, settings),
        donors=donors,
        gifts=gifts,
        completeness_by_entity=by_entity,
    )


def scorecard_figures(card: Scorecard) -> list[tuple[str, str, float | int, str]]:
    """Return the scorecard as ``(scope, metric, value, unit)`` rows of stage ``quality``.

    An empty scorecard has no rows; a figure the run has no data for is left out.
    """
    if card.empty:
        return []
    rows: list[tuple[str, str, float | int, str]] = []
    for name in RATIO_METRICS:
        value = card.figure(name)
        if value is not None:
            rows.append(("", name, value, "ratio"))
    rows += [("", "donors_scored", card.donors, "records"), ("", "gifts_scored", card.gifts, "records")]
    rows += [
        (entity, "completeness", value, "ratio")
        for entity, value in sorted(card.completeness_by_entity.items())
    ]
    return rows


def record_scorecard(
    conn: psycopg.Connection,
    run_id: UUID,
    *,
    settings: QualitySettings | None = None,
    task_id: str | None = None,
) -> Scorecard:
    """Compute a run's scorecard and record it as stage ``quality`` (replacing what it recorded before).

    :func:`donor_sync.observability.metrics.collect_run_health` records it with the other health
    figures; this records it alone (e.g. after a nightly dedup pass).
    """
    from donor_sync.observability.metrics.record import OWNED_QUALITY, Figure, write_figures

    card = compute_scorecard(conn, run_id, settings=settings)
    figures = [
        Figure(STAGE, scope, metric, value, unit) for scope, metric, value, unit in scorecard_figures(card)
    ]
    write_figures(conn, run_id, figures, owned=OWNED_QUALITY, task_id=task_id)
    return card
