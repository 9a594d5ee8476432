"""Donor giving aggregates in core.donors, kept current by one set-based UPDATE.

:func:`refresh_aggregates` recomputes, for the donors touched (incremental, after
:func:`donor_sync.resolve.gifts.resolve_gifts`) or for every donor (nightly, since recency and
the fiscal year move with the calendar): first and last gift date, gift count, lifetime and
current fiscal-year giving, largest gift, recurring status, the recency-frequency-monetary
segment, and ``aggregates_updated_at``.

What counts (giving.yaml):

- a gift counts when its status is one of ``counted_statuses``, it is not a test payment, and its
  amount net of refunds is above zero (a fully refunded gift does not count; a partial refund
  counts for what was kept);
- **currency**: sums (lifetime, fiscal year, largest gift, and so the monetary score) are in the
  reporting currency. A gift in that currency counts at its amount; a gift in another currency
  counts only through an explicit ``amount_base`` (a conversion someone recorded, scaled by the
  share not refunded). Otherwise it is left out of the sums (no exchange rate is guessed) and
  counted in :attr:`AggregateCounts.gifts_left_out`; it still counts as a gift (gift count, first
  and last gift date, recency, frequency);
- **merges**: a merged-away donor's gifts and plans count for its survivor
  (``core.donors.merged_into``, never chained); the merged-away donor's own aggregates are reset
  to zero so giving summed over donors is never counted twice;
- **dates**: gift dates are in the organization's time zone; the fiscal year is the one holding
  ``today`` (``fiscal_year_start_month``);
- **recurring status**: ``active`` if any plan of the donor is active (paused and past-due plans
  still stand), else ``lapsed`` if any is lapsed, else ``canceled`` if it has plans (canceled or
  completed), else ``none``. Plans are re-derived first (:func:`~donor_sync.resolve.gifts.refresh_plans`),
  so a plan without payments turns lapsed as days pass;
- **RFM**: each score 1..5 from the thresholds in giving.yaml (recency in days since the last
  gift, frequency = gift count, monetary = lifetime giving); the first segment rule that matches
  names the segment; donors without a counted gift have none.

Only donors whose values change are written (so an unchanged donor keeps its ``updated_at`` and
is not sent to destinations again); ``aggregates_updated_at`` is when the aggregates last changed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from uuid import UUID

import psycopg
from psycopg import sql

from donor_sync.resolve.fiscal import GivingSettings
from donor_sync.resolve.gifts import refresh_plans

log = logging.getLogger(__name__)

SCOPE_TMP = "__donor_sync__aggregate_scope"
_WORK_MEM = "256MB"

#: core.donors columns this module owns.
AGGREGATE_COLUMNS: tuple[str, ...] = (
    "giving_currency",
    "gift_count",
    "lifetime_giving",
    "fiscal_year_giving",
    "largest_gift",
    "first_gift_date",
    "last_gift_date",
    "recurring_status",
    "rfm_segment",
)


@dataclass(frozen=True)
class AggregateCounts:
    """What one :func:`refresh_aggregates` call did (counts only).

    :ivar donors_in_scope: donors recomputed (survivors, their merged-away donors, and the ids given).
    :ivar donors_updated: donors whose aggregates changed.
    :ivar gifts_counted: gifts that count (status, not a test, something kept after refunds).
    :ivar gifts_left_out: of those, gifts in another currency without ``amount_base``: in the gift
        count and dates, not in the sums.
    :ivar donors_with_gifts_left_out: donors with at least one such gift.
    :ivar plans_updated: recurring plans whose derived status or payments changed first.
    """

    donors_in_scope: int = 0
    donors_updated: int = 0
    gifts_counted: int = 0
    gifts_left_out: int = 0
    donors_with_gifts_left_out: int = 0
    plans_updated: int = 0

    def metrics(self) -> dict[str, int]:
        """Return the counts as run metrics (name → value)."""
        return {
            "donors_in_scope": self.donors_in_scope,
            "donors_updated": self.donors_updated,
            "gifts_counted": self.gifts_counted,
            "gifts_left_out": self.gifts_left_out,
            "donors_with_gifts_left_out": self.donors_with_gifts_left_out,
            "plans_updated": self.plans_updated,
        }


def _score(value: str, thresholds: Iterable[object], *, at_most: bool) -> sql.Composed:
    """Return ``1 + (value <= t)::int + ...`` (at_most) or ``1 + (value >= t)::int + ...``."""
    op = sql.SQL("<=") if at_most else sql.SQL(">=")
    terms = [sql.SQL("({} {} {})::int").format(sql.SQL(value), op, sql.Literal(t)) for t in thresholds]
    return sql.SQL("(1 + {})").format(sql.SQL(" + ").join(terms))


def _segment_case(settings: GivingSettings) -> sql.Composed:
    """Return the CASE naming a donor's segment from columns r, f, m (first rule wins)."""
    rfm = settings.rfm
    whens = [
        sql.SQL("WHEN r BETWEEN {} AND {} AND f BETWEEN {} AND {} AND m BETWEEN {} AND {} THEN {}").format(
            sql.Literal(s.min_recency),
            sql.Literal(s.max_recency),
            sql.Literal(s.min_frequency),
            sql.Literal(s.max_frequency),
            sql.Literal(s.min_monetary),
            sql.Literal(s.max_monetary),
            sql.Literal(s.name),
        )
        for s in rfm.segments
    ]
    return sql.SQL("CASE WHEN gift_count = 0 THEN NULL {} ELSE {} END").format(
        sql.SQL(" ").join(whens), sql.Literal(rfm.default_segment)
    )


def refresh_aggregates(
    conn: psycopg.Connection,
    donor_ids: Iterable[UUID] | None,
    *,
    today: date,
    settings: GivingSettings,
) -> AggregateCounts:
    """Recompute the giving aggregates of ``donor_ids`` (None: every donor); the caller commits.

    A merged-away donor given is refreshed through its survivor (and reset itself); a survivor
    takes in every donor merged into it.

    :param donor_ids: donors whose gifts changed (``GiftResolveCounts.donor_ids``), or None for
        the nightly pass over every donor.
    :param today: the organization's date (``settings.today(now)``): fiscal year and recency.
    """
    full = donor_ids is None
    ids = [] if donor_ids is None else sorted(set(donor_ids))
    if not full and not ids:
        return AggregateCounts()
    # For this transaction only: room for the per-donor hash aggregate of every gift (4 MB, the
    # default, spills it to disk), and no JIT compilation (seconds of it for no gain here).
    conn.execute("SELECT set_config('work_mem', %s, true), set_config('jit', 'off', true)", (_WORK_MEM,))
    conn.execute(sql.SQL("DROP TABLE IF EXISTS pg_temp.{}").format(sql.Identifier(SCOPE_TMP)))
    members: sql.Composable
    donors: sql.Composable
    if full:
        members = sql.SQL(
            "SELECT d.donor_id, coalesce(d.merged_into, d.donor_id) AS owner FROM core.donors d"
        )
        donors = sql.SQL("core.donors")
        plans_updated = refresh_plans(conn, None, today=today, settings=settings)
    else:
        # The survivors of the given donors, everyone merged into them, and the given donors.
        conn.execute(
            sql.SQL(
                "CREATE TEMP TABLE {scope} AS"
                " WITH given AS (SELECT d.donor_id, coalesce(d.merged_into, d.donor_id) AS owner"
                "                FROM core.donors d WHERE d.donor_id = ANY(%(ids)s))"
                " SELECT donor_id, owner FROM given"
                " UNION SELECT owner, owner FROM given"
                " UNION SELECT d.donor_id, d.merged_into FROM core.donors d"
                "       WHERE d.merged_into IN (SELECT owner FROM given)"
            ).format(scope=sql.Identifier(SCOPE_TMP)),
            {"ids": ids},
        )
        conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(SCOPE_TMP)))
        members = sql.SQL("SELECT donor_id, owner FROM {}").format(sql.Identifier(SCOPE_TMP))
        donors = sql.SQL("(SELECT d.* FROM core.donors d JOIN {} s USING (donor_id))").format(
            sql.Identifier(SCOPE_TMP)
        )
        plan_ids = [
            r[0]
            for r in conn.execute(
                sql.SQL(
                    "SELECT p.recurring_plan_id FROM core.recurring_plans p JOIN {} s USING (donor_id)"
                ).format(sql.Identifier(SCOPE_TMP))
            ).fetchall()
        ]
        plans_updated = refresh_plans(conn, plan_ids, today=today, settings=settings)

    fy_start, fy_next = settings.fiscal_year(today)
    rfm = settings.rfm
    recency = _score("(%(today)s::date - last_gift_date)", rfm.recency_days, at_most=True)
    frequency = _score("gift_count", rfm.frequency_gifts, at_most=False)
    monetary = _score("lifetime_giving", rfm.monetary, at_most=False)
    query = sql.SQL(
        "WITH members AS ({members}),"
        " counted AS ("
        "   SELECT m.owner, g.gift_date,"
        "          CASE WHEN g.currency = %(rc)s THEN g.amount - g.refunded_amount"
        "               WHEN g.amount_base IS NOT NULL"
        "               THEN round(g.amount_base * (g.amount - g.refunded_amount) / g.amount, 4) END AS net"
        "   FROM members m JOIN core.gifts g ON g.donor_id = m.donor_id"
        "   WHERE g.status = ANY(%(statuses)s) AND NOT g.is_test AND g.amount > g.refunded_amount),"
        " per_owner AS ("
        "   SELECT owner, count(*)::int AS gift_count, min(gift_date) AS first_gift_date,"
        "          max(gift_date) AS last_gift_date, coalesce(sum(net), 0) AS lifetime_giving,"
        "          coalesce(sum(net) FILTER (WHERE gift_date >= %(fy_start)s AND gift_date < %(fy_next)s), 0)"
        "              AS fiscal_year_giving,"
        "          max(net) AS largest_gift, count(*) FILTER (WHERE net IS NULL)::int AS left_out"
        "   FROM counted GROUP BY owner),"
        " plans AS ("
        "   SELECT m.owner, CASE WHEN bool_or(p.status IN ('active', 'past_due', 'paused')) THEN 'active'"
        "                        WHEN bool_or(p.status = 'lapsed') THEN 'lapsed'"
        "                        ELSE 'canceled' END AS status"
        "   FROM members m JOIN core.recurring_plans p ON p.donor_id = m.donor_id GROUP BY m.owner),"
        " base AS ("
        "   SELECT d.donor_id, %(rc)s::text AS giving_currency, coalesce(a.gift_count, 0) AS gift_count,"
        "          coalesce(a.lifetime_giving, 0) AS lifetime_giving,"
        "          coalesce(a.fiscal_year_giving, 0) AS fiscal_year_giving, a.largest_gift,"
        "          a.first_gift_date, a.last_gift_date, coalesce(pl.status, 'none') AS recurring_status,"
        "          coalesce(a.left_out, 0) AS left_out"
        "   FROM {donors} d LEFT JOIN per_owner a ON a.owner = d.donor_id"
        "   LEFT JOIN plans pl ON pl.owner = d.donor_id),"
        " scored AS ("
        "   SELECT b.*, {recency} AS r, {frequency} AS f, {monetary} AS m FROM base b),"
        " target AS (SELECT s.*, {segment} AS rfm_segment FROM scored s),"
        " updated AS ("
        "   UPDATE core.donors d SET ({cols}) = ROW({new}), aggregates_updated_at = now()"
        "   FROM target t WHERE d.donor_id = t.donor_id AND ({old}) IS DISTINCT FROM ({new})"
        "   RETURNING 1)"
        " SELECT (SELECT count(*) FROM target), (SELECT count(*) FROM updated),"
        "        (SELECT coalesce(sum(gift_count), 0) FROM target),"
        "        (SELECT coalesce(sum(left_out), 0) FROM target),"
        "        (SELECT count(*) FROM target WHERE left_out > 0)"
    ).format(
        members=members,
        donors=donors,
        recency=recency,
        frequency=frequency,
        monetary=monetary,
        segment=_segment_case(settings),
        cols=sql.SQL(", ").join(map(sql.Identifier, AGGREGATE_COLUMNS)),
        new=sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in AGGREGATE_COLUMNS),
        old=sql.SQL(", ").join(sql.SQL("d.{}").format(sql.Identifier(c)) for c in AGGREGATE_COLUMNS),
    )
    row = conn.execute(
        query,
        {
            "rc": settings.reporting_currency,
            "statuses": list(settings.counted_statuses),
            "fy_start": fy_start,
            "fy_next": fy_next,
            "today": today,
        },
    ).fetchone()
    assert row is not None
    if not full:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS pg_temp.{}").format(sql.Identifier(SCOPE_TMP)))
    counts = AggregateCounts(
        donors_in_scope=int(row[0]),
        donors_updated=int(row[1]),
        gifts_counted=int(row[2]),
        gifts_left_out=int(row[3]),
        donors_with_gifts_left_out=int(row[4]),
        plans_updated=plans_updated,
    )
    log.info("refreshed donor aggregates (%s): %s", "all" if full else "incremental", counts.metrics())
    return counts
