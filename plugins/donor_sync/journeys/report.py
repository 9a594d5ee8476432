"""What journeys did: enrollments by journey, status and variant; experiment results.

Experiment results compare the arms (holdout included) by what donors did after entering: the
share who gave again (a counted gift after the enrollment, within ``days``), and that giving in
the reporting currency. Ids and counts only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import psycopg


@dataclass(frozen=True)
class StatusRow:
    """Enrollments of one journey in one status, variant and reason."""

    journey_id: str
    destination: str
    status: str
    reason_code: str | None
    experiment_id: str | None
    variant: str | None
    enrollments: int


@dataclass(frozen=True)
class ArmResult:
    """One arm of an experiment."""

    experiment_id: str
    variant: str
    donors: int
    enrollments: int
    triggered: int
    gave_again: int
    giving_after: Decimal

    @property
    def conversion(self) -> float:
        """Share of the arm's donors who gave again in the window."""
        return self.gave_again / self.donors if self.donors else 0.0


def status_rows(conn: psycopg.Connection, *, since: datetime | None = None) -> list[StatusRow]:
    """Return enrollment counts by journey, destination, status, reason and arm (decided since ``since``)."""
    rows = conn.execute(
        "SELECT journey_id, destination, status, reason_code, experiment_id, variant, count(*)"
        " FROM sync.journey_enrollments WHERE (%(since)s::timestamptz IS NULL OR decided_at >= %(since)s)"
        " GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 3, 4 NULLS FIRST, 5, 6",
        {"since": since},
    ).fetchall()
    return [StatusRow(*row) for row in rows]


_ARMS = """
WITH e AS (
    SELECT e.experiment_id, e.variant, e.status, e.decided_at,
           coalesce(d.merged_into, d.donor_id) AS donor_id
    FROM sync.journey_enrollments e JOIN core.donors d ON d.donor_id = e.donor_id
    WHERE e.experiment_id IS NOT NULL AND (%(experiment)s::text IS NULL OR e.experiment_id = %(experiment)s)
),
firsts AS (
    SELECT experiment_id, variant, donor_id, min(decided_at) AS entered_at FROM e GROUP BY 1, 2, 3
),
after AS (
    SELECT f.experiment_id, f.variant, f.donor_id,
           count(g.gift_key) AS gifts,
           coalesce(sum(coalesce(g.amount_base, CASE WHEN g.currency = %(rc)s THEN g.amount END)), 0)
               AS amount
    FROM firsts f
    LEFT JOIN core.donors gd ON gd.donor_id = f.donor_id OR gd.merged_into = f.donor_id
    LEFT JOIN core.gifts g ON g.donor_id = gd.donor_id AND NOT g.is_test
         AND g.status IN ('succeeded', 'partially_refunded')
         AND g.gift_at > f.entered_at AND g.gift_at <= f.entered_at + make_interval(days => %(days)s)
    GROUP BY 1, 2, 3
)
SELECT a.experiment_id, a.variant, count(*) AS donors,
       (SELECT count(*) FROM e WHERE (e.experiment_id, e.variant) = (a.experiment_id, a.variant)),
       (SELECT count(*) FROM e WHERE (e.experiment_id, e.variant) = (a.experiment_id, a.variant)
                                  AND e.status = 'triggered'),
       count(*) FILTER (WHERE a.gifts > 0), sum(a.amount)
FROM after a GROUP BY 1, 2 ORDER BY 1, 2
"""


def experiment_results(
    conn: psycopg.Connection, *, reporting_currency: str, days: int = 90, experiment_id: str | None = None
) -> list[ArmResult]:
    """Return each experiment arm's donors, entries, triggers and giving within ``days`` of entry."""
    rows = conn.execute(
        _ARMS, {"experiment": experiment_id, "rc": reporting_currency, "days": days}
    ).fetchall()
    return [
        ArmResult(x, v, int(n), int(en), int(t), int(g), Decimal(a or 0)) for x, v, n, en, t, g, a in rows
    ]
