"""Find the gifts that enter each journey, set-based: one ``INSERT ... SELECT`` per journey.

Work tables (temporary, dropped at commit):

``_journey_rules``  one row per enabled journey: destination, entry type, priority, the consent
                    it needs, its suppression reasons and its frequency cap (from the YAML).
``_journey_cand``   one row per (gift, journey) to decide: new entries found here, and enrollments
                    still pending (re-checked by the gate before their trigger goes).

The window: gifts (and, for ``recurring_lapsed``, plans) changed since the journeys watermark,
never older than ``defaults.max_gift_age_days`` by ``gift_at``. A gift already enrolled in a
journey is not a candidate again; the enrollment insert's ``ON CONFLICT DO NOTHING`` settles
races between concurrent runs.

The donor of an entry is the gift's donor or, when that donor was merged away, its survivor;
conditions on the donor read the survivor's golden record and the gifts of every donor merged
into it. "Counted" gifts are succeeded or partially refunded, not test payments.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from donor_sync.journeys.rules import (
    CampaignEntry,
    DesignationEntry,
    Journey,
    JourneyRules,
    MajorGift,
)

RULES_TABLE = "_journey_rules"
CANDIDATES_TABLE = "_journey_cand"
COUNTED = ("succeeded", "partially_refunded")

_CREATE = f"""
DROP TABLE IF EXISTS {RULES_TABLE};
DROP TABLE IF EXISTS {CANDIDATES_TABLE};
CREATE TEMP TABLE {RULES_TABLE} (
    journey_id   text PRIMARY KEY,
    destination  text NOT NULL,
    entry_type   text NOT NULL,
    priority     integer NOT NULL,
    purpose      text NOT NULL,
    channel      text NOT NULL,
    status_in    text[] NOT NULL,
    suppressions text[] NOT NULL,
    needs_email  boolean NOT NULL,
    cap_max      integer,
    cap_days     integer,
    cap_scope    text
) ON COMMIT DROP;
CREATE TEMP TABLE {CANDIDATES_TABLE} (
    gift_key      text NOT NULL,
    journey_id    text NOT NULL,
    donor_id      uuid NOT NULL,
    destination   text NOT NULL,
    priority      integer NOT NULL,
    gift_at       timestamptz NOT NULL,
    enrollment_id bigint,
    outbox_id     bigint,
    reason        text,
    PRIMARY KEY (gift_key, journey_id)
) ON COMMIT DROP;
"""

# The gift, its survivor donor, the amount in the reporting currency, and its plan.
_BASE = """
SELECT g.gift_key, sd.donor_id, g.gift_at
FROM core.gifts g
JOIN core.donors od ON od.donor_id = g.donor_id
JOIN core.donors sd ON sd.donor_id = coalesce(od.merged_into, od.donor_id)
LEFT JOIN core.recurring_plans p ON p.recurring_plan_id = g.recurring_plan_id
WHERE g.updated_at >= {since} AND g.gift_at >= {oldest} AND NOT g.is_test
  AND NOT EXISTS (SELECT 1 FROM sync.journey_enrollments e
                  WHERE e.gift_key = g.gift_key AND e.journey_id = {journey})
  AND {entry} AND {conditions}
"""

# recurring_lapsed: plans that lapsed in the window, keyed by their latest gift.
_LAPSED = """
SELECT g.gift_key, sd.donor_id, g.gift_at
FROM core.recurring_plans p
JOIN LATERAL (SELECT g.* FROM core.gifts g WHERE g.recurring_plan_id = p.recurring_plan_id AND NOT g.is_test
              ORDER BY g.gift_at DESC, g.gift_key DESC LIMIT 1) g ON true
JOIN core.donors od ON od.donor_id = g.donor_id
JOIN core.donors sd ON sd.donor_id = coalesce(od.merged_into, od.donor_id)
WHERE p.status = 'lapsed' AND p.updated_at >= {since} AND p.updated_at >= {oldest}
  AND NOT EXISTS (SELECT 1 FROM sync.journey_enrollments e
                  WHERE e.gift_key = g.gift_key AND e.journey_id = {journey})
  AND {conditions}
"""

_COUNTED_SQL = "g.status IN ('succeeded', 'partially_refunded')"
_AMOUNT_RC = "coalesce(g.amount_base, CASE WHEN g.currency = {rc} THEN g.amount END)"
# Gifts of the survivor and of every donor merged into it, counted, before this gift.
_EARLIER = """EXISTS (SELECT 1 FROM core.gifts e JOIN core.donors ed ON ed.donor_id = e.donor_id
    WHERE (ed.donor_id = sd.donor_id OR ed.merged_into = sd.donor_id) AND NOT e.is_test
      AND e.status IN ('succeeded', 'partially_refunded')
      AND (e.gift_at, e.gift_key) < (g.gift_at, g.gift_key))"""
_PREVIOUS_AT = """(SELECT max(e.gift_at) FROM core.gifts e JOIN core.donors ed ON ed.donor_id = e.donor_id
    WHERE (ed.donor_id = sd.donor_id OR ed.merged_into = sd.donor_id) AND NOT e.is_test
      AND e.status IN ('succeeded', 'partially_refunded')
      AND (e.gift_at, e.gift_key) < (g.gift_at, g.gift_key))"""
_EARLIER_IN_PLAN = """NOT EXISTS (SELECT 1 FROM core.gifts e
    WHERE e.recurring_plan_id = g.recurring_plan_id AND NOT e.is_test
      AND e.status IN ('succeeded', 'partially_refunded')
      AND (e.gift_at, e.gift_key) < (g.gift_at, g.gift_key))"""


def _entry(journey: Journey, rc: str) -> sql.Composable:  # noqa: PLR0911 - one return per entry type
    entry = journey.entry
    amount = sql.SQL(_AMOUNT_RC).format(rc=sql.Literal(rc))
    counted = sql.SQL(_COUNTED_SQL)
    match entry.type:
        case "first_gift":
            return sql.SQL("{} AND NOT {}").format(counted, sql.SQL(_EARLIER))
        case "major_gift":
            assert isinstance(entry, MajorGift)
            return sql.SQL("{} AND {} >= {}").format(counted, amount, sql.Literal(entry.threshold))
        case "recurring_started":
            return sql.SQL(
                "{} AND g.recurring_plan_id IS NOT NULL AND (g.installment_number = 1"
                " OR (g.installment_number IS NULL AND {}))"
            ).format(counted, sql.SQL(_EARLIER_IN_PLAN))
        case "recurring_failed":
            return sql.SQL("g.status = 'failed' AND g.recurring_plan_id IS NOT NULL")
        case "designation":
            assert isinstance(entry, DesignationEntry)
            return sql.SQL("{} AND g.designation = ANY({})").format(counted, sql.Literal(entry.designations))
        case "campaign":
            assert isinstance(entry, CampaignEntry)
            return sql.SQL("{} AND g.campaign = ANY({})").format(counted, sql.Literal(entry.campaigns))
        case "tribute":
            return sql.SQL("{} AND g.tribute_type = 'in_honor'").format(counted)
        case "in_memoriam":
            return sql.SQL("{} AND g.tribute_type = 'in_memory'").format(counted)
    raise ValueError(f"journey {journey.id}: unknown entry type {entry.type!r}")  # pragma: no cover


def _conditions(journey: Journey, rc: str) -> sql.Composable:  # noqa: PLR0912 - one branch per condition
    c = journey.conditions
    amount = sql.SQL(_AMOUNT_RC).format(rc=sql.Literal(rc))
    parts: list[sql.Composable] = []

    def add(template: str, *values: Any) -> None:
        parts.append(sql.SQL(template).format(*(sql.Literal(v) for v in values)))

    if c.amount_min is not None:
        parts.append(sql.SQL("{} >= {}").format(amount, sql.Literal(c.amount_min)))
    if c.amount_max is not None:
        parts.append(sql.SQL("{} <= {}").format(amount, sql.Literal(c.amount_max)))
    if c.frequency == "one_time":
        add("g.recurring_plan_id IS NULL")
    elif c.frequency == "recurring":
        add("g.recurring_plan_id IS NOT NULL")
    if c.designations is not None:
        add("g.designation = ANY({})", c.designations)
    if c.campaigns is not None:
        add("g.campaign = ANY({})", c.campaigns)
    if c.sources is not None:
        add("g.source = ANY({})", c.sources)
    if c.lifetime_giving_min is not None:
        add("sd.lifetime_giving >= {}", c.lifetime_giving_min)
    if c.lifetime_giving_max is not None:
        add("sd.lifetime_giving <= {}", c.lifetime_giving_max)
    if c.gift_count_min is not None:
        add("sd.gift_count >= {}", c.gift_count_min)
    if c.gift_count_max is not None:
        add("sd.gift_count <= {}", c.gift_count_max)
    previous = sql.SQL(_PREVIOUS_AT)
    if c.days_since_previous_gift_min is not None:
        parts.append(
            sql.SQL("({prev} IS NULL OR g.gift_at - {prev} >= make_interval(days => {n}))").format(
                prev=previous, n=sql.Literal(c.days_since_previous_gift_min)
            )
        )
    if c.days_since_previous_gift_max is not None:
        parts.append(
            sql.SQL("g.gift_at - {prev} <= make_interval(days => {n})").format(
                prev=previous, n=sql.Literal(c.days_since_previous_gift_max)
            )
        )
    if c.countries is not None:
        add("upper(sd.country_code) = ANY({})", [code.upper() for code in c.countries])
    return sql.SQL(" AND ").join(parts) if parts else sql.SQL("true")


def create_work_tables(conn: psycopg.Connection, rules: JourneyRules) -> None:
    """Create the work tables and load the enabled journeys' settings into ``_journey_rules``."""
    conn.execute(_CREATE)
    rows = []
    for journey in rules.journeys:
        if not journey.enabled:
            continue
        consent = rules.consent_of(journey)
        cap = rules.cap_of(journey)
        rows.append(
            (
                journey.id,
                journey.destination.name,
                journey.entry.type,
                journey.priority,
                consent.purpose,
                consent.channel,
                list(consent.status_in),
                rules.suppressions_of(journey),
                journey.destination.mailchimp is not None,
                cap.max_entries if cap else None,
                cap.window_days if cap else None,
                cap.scope if cap else None,
            )
        )
    if rows:
        with conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {RULES_TABLE} VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", rows
            )


def find_new(
    conn: psycopg.Connection,
    rules: JourneyRules,
    *,
    since: datetime | None,
    now: datetime,
    reporting_currency: str,
    only: set[str] | None = None,
) -> int:
    """Add each enabled journey's new entries to ``_journey_cand``; return how many.

    :param since: start of the window (changed at or after); None: only the gift-age bound.
    :param only: journey ids to consider (None: every enabled one).
    """
    oldest = now - timedelta(days=rules.defaults.max_gift_age_days)
    start = since if since is not None and since > oldest else oldest
    total = 0
    for journey in rules.journeys:
        if not journey.enabled or (only is not None and journey.id not in only):
            continue
        template = _LAPSED if journey.entry.type == "recurring_lapsed" else _BASE
        select = sql.SQL(template).format(
            since=sql.Literal(start),
            oldest=sql.Literal(oldest),
            journey=sql.Literal(journey.id),
            entry=_entry(journey, reporting_currency)
            if journey.entry.type != "recurring_lapsed"
            else sql.SQL(""),
            conditions=_conditions(journey, reporting_currency),
        )
        statement = sql.SQL(
            "INSERT INTO {table} (gift_key, journey_id, donor_id, destination, priority, gift_at)"
            " SELECT DISTINCT ON (q.gift_key) q.gift_key, {journey}, q.donor_id, {destination}, {priority},"
            " q.gift_at FROM ({select}) q ON CONFLICT DO NOTHING"
        ).format(
            table=sql.Identifier(CANDIDATES_TABLE),
            journey=sql.Literal(journey.id),
            destination=sql.Literal(journey.destination.name),
            priority=sql.Literal(journey.priority),
            select=select,
        )
        total += conn.execute(statement).rowcount
    return total


def add_pending(conn: psycopg.Connection, *, only: set[str] | None = None) -> int:
    """Add enrollments still pending whose trigger has not gone (waiting for quiet hours, or queued
    and not yet claimed) for the gate to check again; return how many."""
    return conn.execute(
        f"""
        INSERT INTO {CANDIDATES_TABLE} (gift_key, journey_id, donor_id, destination, priority, gift_at,
                                        enrollment_id, outbox_id)
        SELECT e.gift_key, e.journey_id, coalesce(d.merged_into, d.donor_id), e.destination, r.priority,
               g.gift_at, e.enrollment_id, e.outbox_id
        FROM sync.journey_enrollments e
        JOIN {RULES_TABLE} r ON r.journey_id = e.journey_id
        JOIN core.gifts g ON g.gift_key = e.gift_key
        JOIN core.donors d ON d.donor_id = e.donor_id
        LEFT JOIN sync.outbox o ON o.outbox_id = e.outbox_id
        WHERE e.status = 'pending' AND (e.outbox_id IS NULL OR o.state = 'pending')
          AND (%(only)s::text[] IS NULL OR e.journey_id = ANY(%(only)s::text[]))
        ON CONFLICT DO NOTHING
        """,
        {"only": sorted(only) if only is not None else None},
    ).rowcount
