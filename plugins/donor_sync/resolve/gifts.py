"""The gift side of resolve: staged gifts → core.gifts, core.gift_sources, core.recurring_plans.

:func:`resolve_gifts` takes the unresolved staging.gifts rows of the given batches (and the
pending rows earlier runs left) and, set-based in one transaction:

1. keeps the latest version of each source object (Stripe charge, Donorbox donation, CSV row):
   newest ``source_updated_at``, then newest raw record. A version older than the one already
   applied (it arrived late) changes nothing; the same raw record re-standardized with other
   values (a quarantine fix, new rules) replaces it;
2. groups the objects by cross-platform gift key, together with the objects already linked to
   those gifts (their stored versions, ``core.gift_sources.attributes``), and merges each group
   into one core gift (precedence below), so a Donorbox or Classy gift paid through Stripe is one
   gift, counted once, whichever side arrives first or changes later;
3. finds the gift's donor: the donor the source donor record resolved to, ``core.donor_sources``
   (system = the object's source, external_id = its source donor id, role source). A gift whose
   key has no resolved donor and no core gift yet stays **pending**: its staging rows keep
   ``resolved_at`` NULL and the next run picks them up;
4. upserts the recurring plans (by plan key), the gifts (by gift key, only where something
   changed) and the source objects, marks the staging rows resolved, and recomputes the touched
   plans' payment history and status (:func:`refresh_plans`).

Merge precedence (``processors`` in giving.yaml names the payment processors, e.g. Stripe):

- **payment facts** from the processor's object, else the platform's: amount and currency (one
  object's, so they stay consistent), gift time, status, fee, payment method. Refunds: the
  largest refunded amount any object reports in that currency (a refund seen on either side is a
  refund), with the status following it (succeeded → partially_refunded or refunded,
  partially_refunded → refunded when the whole amount is refunded) when only the other side knew;
  a test payment on either side makes the gift a test;
- **gift details** from the platform's object, else the processor's, field by field, first value
  present: designation, campaign, anonymity (either side), recurring plan and installment; the
  tribute (type, name, person to notify) and the UTM fields (five fields and extras) each as a
  group from one object, so they are never mixed;
- **donor**: the first object in the details order whose source donor record resolved; a gift
  already in core keeps its donor when none of its objects resolves (yet);
- within one class, the newest object first (then source, entity, id, for a stable order).

A gift's ``source`` is the platform it was first seen on (details order at creation, then kept).
Gift dates are the gift instant's date in the organization's time zone (giving.yaml).

Recurring plans (:func:`refresh_plans`) are derived from their installments in core.gifts:
``canceled`` when the latest installment was canceled (or the plan was canceled by someone else
and no successful installment came since), ``lapsed`` when no successful installment came within
one interval plus the configured grace, ``active`` otherwise. Donorbox names no interval: the
configured default applies.

Idempotent: re-running over the same staging rows changes no row (upserts update only what
differs). One transaction, not committed here (the caller commits, as with
:func:`donor_sync.resolve.donors.resolve_donors`), under a transaction-level advisory lock so two
gift resolves never interleave.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql

from donor_sync.resolve.fiscal import GivingSettings

log = logging.getLogger(__name__)

#: Arbitrary constant naming the gift resolve's advisory lock among advisory locks.
_LOCK_KEY = 0x0D0_6_1F75

SCOPE_TMP = "__donor_sync__gift_scope"
VERSIONS_TMP = "__donor_sync__gift_versions"
MEMBERS_TMP = "__donor_sync__gift_members"
MERGED_TMP = "__donor_sync__gift_merged"
PENDING_TMP = "__donor_sync__gift_pending"

#: Fields of core.gift_version (migration 0009), in order: the stored version of a source object.
VERSION_FIELDS: tuple[str, ...] = (
    "gift_key",
    "source_donor_id",
    "amount",
    "currency",
    "currency_exponent",
    "amount_minor",
    "fee_amount",
    "gift_at",
    "status",
    "refunded_amount",
    "refunded_at",
    "payment_method",
    "is_test",
    "is_anonymous",
    "is_recurring",
    "recurring_key",
    "recurring_source_id",
    "recurring_interval",
    "installment_number",
    "designation",
    "campaign",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "utm_extra",
    "tribute_type",
    "tribute_name",
    "tribute_notify",
)

#: core.gifts columns the merge computes (besides gift_key, source and recurring_plan_id).
GIFT_COLUMNS: tuple[str, ...] = (
    "donor_id",
    "amount",
    "currency",
    "currency_exponent",
    "amount_minor",
    "fee_amount",
    "gift_at",
    "gift_date",
    "status",
    "refunded_amount",
    "refunded_at",
    "payment_method",
    "is_test",
    "is_anonymous",
    "recurring_plan_id",
    "installment_number",
    "designation",
    "campaign",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "utm_extra",
    "tribute_type",
    "tribute_name",
    "tribute_notify",
)

_UTM = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "utm_extra")
_TRIBUTE = ("tribute_type", "tribute_name", "tribute_notify")


@dataclass(frozen=True)
class GiftResolveCounts:
    """What one :func:`resolve_gifts` call did (counts and ids only, no PII).

    :ivar staged_rows: unresolved staging rows considered (the batches and the earlier backlog).
    :ivar resolved_rows: of those, rows now resolved (``resolved_at`` and ``gift_id`` set).
    :ivar pending_rows: rows left pending because their gift has no resolved donor yet.
    :ivar pending_gifts: distinct gift keys among the pending rows.
    :ivar pending_without_donor_record: pending rows that name no source donor at all (a charge
        with neither customer nor billing details): they resolve only through a linked object.
    :ivar stale_versions: objects whose version in scope was not newer than the one applied.
    :ivar gifts_created: core gifts inserted.
    :ivar gifts_updated: core gifts whose merged values changed.
    :ivar sources_linked: source objects linked to a core gift for the first time.
    :ivar plans_created: recurring plans inserted.
    :ivar plans_updated: recurring plans whose derived fields changed.
    :ivar donor_ids: donors whose gifts changed (new and previous donors): pass them to
        :func:`donor_sync.resolve.aggregates.refresh_aggregates`.
    """

    staged_rows: int = 0
    resolved_rows: int = 0
    pending_rows: int = 0
    pending_gifts: int = 0
    pending_without_donor_record: int = 0
    stale_versions: int = 0
    gifts_created: int = 0
    gifts_updated: int = 0
    sources_linked: int = 0
    plans_created: int = 0
    plans_updated: int = 0
    donor_ids: frozenset[UUID] = field(default_factory=frozenset)

    def metrics(self) -> dict[str, int]:
        """Return the counts as run metrics (name → value), without the donor ids."""
        return {
            "staged_rows": self.staged_rows,
            "resolved_rows": self.resolved_rows,
            "pending_rows": self.pending_rows,
            "pending_gifts": self.pending_gifts,
            "pending_without_donor_record": self.pending_without_donor_record,
            "stale_versions": self.stale_versions,
            "gifts_created": self.gifts_created,
            "gifts_updated": self.gifts_updated,
            "sources_linked": self.sources_linked,
            "plans_created": self.plans_created,
            "plans_updated": self.plans_updated,
            "donors_touched": len(self.donor_ids),
        }


def _ident(name: str) -> sql.Identifier:
    return sql.Identifier(name)


def _drop_temp(conn: psycopg.Connection, *names: str) -> None:
    for name in names:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS pg_temp.{}").format(_ident(name)))


def _version_row(alias: str) -> sql.Composed:
    """Return ``ROW(<alias>.field, ...)::core.gift_version`` over a staging.gifts alias."""
    casts = {"currency": "::text"}
    return sql.SQL("ROW({})::core.gift_version").format(
        sql.SQL(", ").join(
            sql.SQL("{}.{}{}").format(_ident(alias), _ident(f), sql.SQL(casts.get(f, "")))
            for f in VERSION_FIELDS
        )
    )


def _first(column: str, order: str, *, where: str | None = None) -> sql.Composed:
    """Return the first non-NULL ``m.column`` of a group in ``m.order`` (an aggregate expression).

    :param where: the condition instead of "column is not NULL" (over alias ``m``).
    """
    condition = sql.SQL(where) if where else sql.SQL("m.{} IS NOT NULL").format(_ident(column))
    return sql.SQL("(array_agg(m.{c} ORDER BY m.{o}) FILTER (WHERE {w}))[1]").format(
        c=_ident(column), o=_ident(order), w=condition
    )


def resolve_gifts(
    conn: psycopg.Connection,
    batch_ids: Sequence[int],
    *,
    now: datetime,
    settings: GivingSettings,
) -> GiftResolveCounts:
    """Resolve the unresolved staged gifts of ``batch_ids`` into core (not committed: the caller commits).

    Also takes the rows earlier calls left pending (unresolved rows of any earlier batch), so a
    gift whose donor resolved since is picked up by the next run whatever its batch.

    :param batch_ids: raw batches whose staged gifts to resolve (none: nothing to do).
    :param now: the run's reference time: ``resolved_at`` of the staging rows, and the date the
        lapsed-plan rule is evaluated at.
    :param settings: the giving rules (:func:`donor_sync.resolve.fiscal.load_giving_settings`).
    :return: the counts, and the donors whose aggregates need refreshing.
    """
    if not batch_ids:
        return GiftResolveCounts()
    params: dict[str, Any] = {
        "batches": list(batch_ids),
        "max_batch": max(batch_ids),
        "now": now,
        "tz": settings.time_zone,
        "processors": list(settings.processors),
        "default_interval": settings.recurring.default_interval,
    }
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
    # Stored versions hold timestamps as JSON text: write them in one zone so a re-run compares equal.
    conn.execute("SELECT set_config('TimeZone', 'UTC', true)")
    _drop_temp(conn, SCOPE_TMP, VERSIONS_TMP, MEMBERS_TMP, MERGED_TMP, PENDING_TMP)

    # 1. The work: unresolved rows of the batches and of every earlier batch (the backlog).
    conn.execute(
        sql.SQL(
            "CREATE TEMP TABLE {scope} AS"
            " SELECT g.staging_gift_id, g.source::text AS source, g.entity, g.source_id, g.gift_key,"
            "        g.source_donor_id"
            " FROM staging.gifts g"
            " WHERE g.resolved_at IS NULL AND (g.batch_id = ANY(%(batches)s) OR g.batch_id < %(max_batch)s)"
        ).format(scope=_ident(SCOPE_TMP)),
        params,
    )
    staged_rows = _count(conn, SCOPE_TMP)
    if not staged_rows:
        _drop_temp(conn, SCOPE_TMP)
        return GiftResolveCounts()

    # 2. The latest version of each object in scope, and whether it is newer than the applied one.
    conn.execute(
        sql.SQL(
            "CREATE TEMP TABLE {versions} AS"
            " SELECT n.*, gs.gift_id AS linked_gift_id,"
            "        (gs.gift_source_id IS NULL"
            "         OR (coalesce(n.source_updated_at, '-infinity'), n.raw_record_id)"
            "            > (coalesce(gs.source_updated_at, '-infinity'), coalesce(gs.last_raw_record_id, -1))"
            "         OR (n.raw_record_id = gs.last_raw_record_id"
            "             AND n.attributes IS DISTINCT FROM gs.attributes)"
            "        ) AS fresh"
            " FROM (SELECT DISTINCT ON (g.source, g.entity, g.source_id)"
            "              g.source::text AS source, g.entity, g.source_id, g.raw_record_id,"
            "              g.source_updated_at,"
            "              to_jsonb({version}) AS attributes"
            "       FROM staging.gifts g JOIN {scope} s USING (staging_gift_id)"
            "       ORDER BY g.source, g.entity, g.source_id, g.source_updated_at DESC NULLS LAST,"
            "                g.raw_record_id DESC) n"
            " LEFT JOIN core.gift_sources gs"
            "   ON gs.source = n.source AND gs.entity = n.entity AND gs.source_id = n.source_id"
        ).format(versions=_ident(VERSIONS_TMP), version=_version_row("g"), scope=_ident(SCOPE_TMP)),
        params,
    )

    # 3. Every object of every touched gift key: the fresh versions, plus the stored versions of
    #    the other objects already linked to those gifts (and to the gifts a fresh object leaves).
    fields = sql.SQL(", ").join(sql.SQL("(v).{}").format(_ident(f)) for f in VERSION_FIELDS)
    conn.execute(
        sql.SQL(
            "CREATE TEMP TABLE {members} AS"
            " WITH fresh AS (SELECT * FROM {versions} WHERE fresh),"
            " touched AS ("
            "     SELECT attributes ->> 'gift_key' AS gift_key FROM fresh"
            "     UNION SELECT cg.gift_key FROM fresh f JOIN core.gifts cg ON cg.gift_id = f.linked_gift_id),"
            " objects AS ("
            "     SELECT f.source, f.entity, f.source_id, f.raw_record_id, f.source_updated_at, f.attributes,"
            "            true AS fresh, f.linked_gift_id"
            "     FROM fresh f"
            "     UNION ALL"
            "     SELECT gs.source::text, gs.entity, gs.source_id, gs.last_raw_record_id,"
            "            gs.source_updated_at,"
            "            gs.attributes, false, gs.gift_id"
            "     FROM touched t JOIN core.gifts cg ON cg.gift_key = t.gift_key"
            "     JOIN core.gift_sources gs ON gs.gift_id = cg.gift_id"
            "     WHERE NOT EXISTS (SELECT 1 FROM fresh f WHERE f.source = gs.source AND f.entity = gs.entity"
            "                       AND f.source_id = gs.source_id))"
            " SELECT q.*,"
            # Precedence: details (platform first), payment (processor first); newest first within.
            "   row_number() OVER (PARTITION BY gift_key ORDER BY is_processor,"
            "                      source_updated_at DESC NULLS LAST, source, entity, source_id) AS d_rank,"
            "   row_number() OVER (PARTITION BY gift_key ORDER BY is_processor DESC,"
            "                      source_updated_at DESC NULLS LAST, source, entity, source_id) AS p_rank"
            " FROM (SELECT o.source, o.entity, o.source_id, o.raw_record_id, o.source_updated_at,"
            "        o.attributes,"
            "        o.fresh, o.linked_gift_id, o.source = ANY(%(processors)s) AS is_processor,"
            "        coalesce(ds.donor_id, er.donor_id) AS resolved_donor_id, {fields}"
            "       FROM objects o"
            "       CROSS JOIN LATERAL"
            "           (SELECT jsonb_populate_record(NULL::core.gift_version, o.attributes) AS v) x"
            "       LEFT JOIN core.donor_sources ds ON ds.system = o.source AND ds.role = 'source'"
            "            AND ds.external_id = (x.v).source_donor_id"
            # An erased donor has no source rows: its staged rows still name it (privacy.erasure).
            "       LEFT JOIN LATERAL (SELECT sd.donor_id FROM staging.donors sd JOIN core.donors ed"
            "            ON ed.donor_id = sd.donor_id AND ed.erased_at IS NOT NULL"
            "            WHERE ds.donor_id IS NULL AND sd.source = o.source"
            "              AND sd.source_id = (x.v).source_donor_id LIMIT 1) er ON true) q"
        ).format(members=_ident(MEMBERS_TMP), versions=_ident(VERSIONS_TMP), fields=fields),
        params,
    )
    # 4. One merged row per gift key that has a donor (a resolved object, or the existing gift's).
    utm_present = " OR ".join([f"m.{c} IS NOT NULL" for c in _UTM[:-1]] + ["m.utm_extra <> '{}'::jsonb"])
    merged_fields = [
        sql.SQL("coalesce({}, cg.donor_id) AS donor_id").format(_first("resolved_donor_id", "d_rank")),
        sql.SQL("cg.donor_id AS previous_donor_id"),
        sql.SQL("cg.recurring_plan_id AS previous_plan_id"),
        sql.SQL("coalesce(cg.source, {}) AS source").format(_first("source", "d_rank")),
        *[
            sql.SQL("{} AS {}").format(_first(c, "p_rank", where="m.p_rank = 1"), _ident(f"p_{c}"))
            for c in ("amount", "currency", "currency_exponent", "amount_minor", "gift_at", "status")
        ],
        sql.SQL("{} AS payment_method").format(_first("payment_method", "p_rank")),
        sql.SQL("bool_or(coalesce(m.is_test, false)) AS is_test"),
        sql.SQL("bool_or(coalesce(m.is_anonymous, false)) AS is_anonymous"),
        *[sql.SQL("{} AS {}").format(_first(c, "d_rank"), _ident(c)) for c in ("designation", "campaign")],
        sql.SQL("{} AS plan_key").format(_first("recurring_key", "d_rank")),
        sql.SQL("{} AS plan_source").format(_first("source", "d_rank", where="m.recurring_key IS NOT NULL")),
        sql.SQL("{} AS plan_source_id").format(
            _first("recurring_source_id", "d_rank", where="m.recurring_key IS NOT NULL")
        ),
        sql.SQL("{} AS recurring_interval").format(_first("recurring_interval", "d_rank")),
        sql.SQL("{} AS installment_number").format(_first("installment_number", "d_rank")),
        *[sql.SQL("{} AS {}").format(_first(c, "d_rank", where=utm_present), _ident(c)) for c in _UTM],
        *[
            sql.SQL("{} AS {}").format(_first(c, "d_rank", where="m.tribute_type IS NOT NULL"), _ident(c))
            for c in _TRIBUTE
        ],
    ]
    conn.execute(
        sql.SQL(
            "CREATE TEMP TABLE {merged} AS"
            " SELECT m.gift_key, {fields}"
            " FROM {members} m LEFT JOIN core.gifts cg ON cg.gift_key = m.gift_key"
            " GROUP BY m.gift_key, cg.gift_id"
        ).format(
            merged=_ident(MERGED_TMP), fields=sql.SQL(", ").join(merged_fields), members=_ident(MEMBERS_TMP)
        )
    )
    # Refunds: the largest any object reports in the payment currency; status follows them.
    conn.execute(
        sql.SQL(
            "ALTER TABLE {t} ADD COLUMN refunded_amount numeric(19, 4), ADD COLUMN refunded_at timestamptz,"
            " ADD COLUMN fee_amount numeric(19, 4), ADD COLUMN status text;"
            " UPDATE {t} t SET refunded_amount = least(r.amount, t.p_amount), refunded_at = r.at,"
            "                  fee_amount = r.fee, status = CASE"
            "     WHEN t.p_status IN ('succeeded', 'partially_refunded') AND r.amount >= t.p_amount"
            "          AND r.amount > 0 THEN 'refunded'"
            "     WHEN t.p_status = 'succeeded' AND r.amount > 0 THEN 'partially_refunded'"
            "     ELSE t.p_status END"
            " FROM (SELECT m.gift_key,"
            "         coalesce(max(m.refunded_amount) FILTER (WHERE m.currency = t2.p_currency), 0)"
            "             AS amount,"
            "         max(m.refunded_at) FILTER (WHERE m.currency = t2.p_currency AND m.refunded_amount > 0)"
            "             AS at,"
            "         (array_agg(m.fee_amount ORDER BY m.p_rank)"
            "            FILTER (WHERE m.fee_amount IS NOT NULL AND m.currency = t2.p_currency))[1] AS fee"
            "       FROM {members} m JOIN {t} t2 USING (gift_key) GROUP BY m.gift_key) r"
            " WHERE r.gift_key = t.gift_key"
        ).format(t=_ident(MERGED_TMP), members=_ident(MEMBERS_TMP))
    )

    # Pending: rows of objects with a fresh version whose gift key got no donor (a row whose
    # object is already linked and not changed is resolved to its gift).
    conn.execute(
        sql.SQL(
            "CREATE TEMP TABLE {pending} AS"
            " SELECT s.staging_gift_id, s.gift_key, s.source_donor_id FROM {scope} s"
            " JOIN {versions} v ON v.source = s.source AND v.entity = s.entity AND v.source_id = s.source_id"
            " WHERE v.fresh AND NOT EXISTS (SELECT 1 FROM {merged} t"
            "                               WHERE t.gift_key = v.attributes ->> 'gift_key'"
            "                                 AND t.donor_id IS NOT NULL)"
        ).format(
            pending=_ident(PENDING_TMP),
            scope=_ident(SCOPE_TMP),
            versions=_ident(VERSIONS_TMP),
            merged=_ident(MERGED_TMP),
        )
    )
    pending = conn.execute(
        sql.SQL(
            "SELECT count(*), count(DISTINCT gift_key), count(*) FILTER (WHERE source_donor_id IS NULL)"
            " FROM {}"
        ).format(_ident(PENDING_TMP))
    ).fetchone()
    assert pending is not None
    conn.execute(sql.SQL("DELETE FROM {} WHERE donor_id IS NULL").format(_ident(MERGED_TMP)))

    # 5. Recurring plans first (gifts point at them), then gifts, then their source objects.
    plans_created = _insert_plans(conn, params)
    gift_rows = _upsert_gifts(conn, params)
    sources_linked = _upsert_sources(conn, params)
    resolved = conn.execute(
        sql.SQL(
            "UPDATE staging.gifts g SET resolved_at = %(now)s, gift_id = gs.gift_id"
            " FROM {scope} s JOIN core.gift_sources gs"
            "   ON gs.source = s.source AND gs.entity = s.entity AND gs.source_id = s.source_id"
            " WHERE g.staging_gift_id = s.staging_gift_id"
            "   AND NOT EXISTS (SELECT 1 FROM {pending} x WHERE x.staging_gift_id = s.staging_gift_id)"
        ).format(scope=_ident(SCOPE_TMP), pending=_ident(PENDING_TMP)),
        params,
    ).rowcount

    plan_ids = [
        r[0]
        for r in conn.execute(
            sql.SQL(
                "SELECT p.recurring_plan_id FROM {merged} t"
                " JOIN core.recurring_plans p ON p.plan_key = t.plan_key"
                " UNION SELECT previous_plan_id FROM {merged} WHERE previous_plan_id IS NOT NULL"
            ).format(merged=_ident(MERGED_TMP))
        ).fetchall()
    ]
    plans_updated = refresh_plans(conn, plan_ids, today=settings.today(now), settings=settings)
    donors = {
        r[0]
        for r in conn.execute(
            sql.SQL(
                "SELECT donor_id FROM {merged} UNION SELECT previous_donor_id FROM {merged}"
                " WHERE previous_donor_id IS NOT NULL"
                " UNION SELECT donor_id FROM core.recurring_plans WHERE recurring_plan_id = ANY(%(plans)s)"
            ).format(merged=_ident(MERGED_TMP)),
            {"plans": plan_ids},
        ).fetchall()
    }
    stale = conn.execute(
        sql.SQL("SELECT count(*) FROM {} WHERE NOT fresh").format(_ident(VERSIONS_TMP))
    ).fetchone()
    _drop_temp(conn, SCOPE_TMP, VERSIONS_TMP, MEMBERS_TMP, MERGED_TMP, PENDING_TMP)
    counts = GiftResolveCounts(
        staged_rows=staged_rows,
        resolved_rows=resolved,
        pending_rows=int(pending[0]),
        pending_gifts=int(pending[1]),
        pending_without_donor_record=int(pending[2]),
        stale_versions=int(stale[0]) if stale else 0,
        gifts_created=sum(1 for inserted in gift_rows if inserted),
        gifts_updated=sum(1 for inserted in gift_rows if not inserted),
        sources_linked=sources_linked,
        plans_created=plans_created,
        plans_updated=plans_updated,
        donor_ids=frozenset(donors),
    )
    log.info("resolved gifts: %s", counts.metrics())
    return counts


def _count(conn: psycopg.Connection, table: str) -> int:
    row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(_ident(table))).fetchone()
    return int(row[0]) if row else 0


def _insert_plans(conn: psycopg.Connection, params: dict[str, Any]) -> int:
    """Insert the plans the merged gifts name that core does not have yet; return how many.

    Seeded from each plan's latest installment in this call; :func:`refresh_plans` then derives
    the payment history and status from every installment. A plan that names its interval
    later gets it.
    """
    inserted = conn.execute(
        sql.SQL(
            "INSERT INTO core.recurring_plans AS p (plan_key, donor_id, source, source_id, amount, currency,"
            "     currency_exponent, amount_minor, interval_unit, status, started_at, designation, campaign)"
            " SELECT DISTINCT ON (t.plan_key) t.plan_key, t.donor_id, t.plan_source,"
            "        coalesce(t.plan_source_id, split_part(t.plan_key, ':', 2)), t.p_amount, t.p_currency,"
            "        t.p_currency_exponent, t.p_amount_minor,"
            "        coalesce(t.recurring_interval, %(default_interval)s),"
            "        'active', t.p_gift_at, t.designation, t.campaign"
            " FROM {merged} t WHERE t.plan_key IS NOT NULL"
            " ORDER BY t.plan_key, t.p_gift_at DESC, t.gift_key"
            " ON CONFLICT (plan_key) DO NOTHING"
        ).format(merged=_ident(MERGED_TMP)),
        params,
    ).rowcount
    conn.execute(
        sql.SQL(
            "UPDATE core.recurring_plans p SET interval_unit = n.recurring_interval"
            " FROM (SELECT DISTINCT ON (plan_key) plan_key, recurring_interval FROM {merged}"
            "       WHERE plan_key IS NOT NULL AND recurring_interval IS NOT NULL"
            "       ORDER BY plan_key, p_gift_at DESC, gift_key) n"
            " WHERE p.plan_key = n.plan_key AND p.interval_unit <> n.recurring_interval"
        ).format(merged=_ident(MERGED_TMP))
    )
    return inserted


def _upsert_gifts(conn: psycopg.Connection, params: dict[str, Any]) -> list[bool]:
    """Insert or update the merged gifts (only where a value differs); return inserted? per row written."""
    values: dict[str, sql.Composable] = {
        "amount": sql.SQL("t.p_amount"),
        "currency": sql.SQL("t.p_currency"),
        "currency_exponent": sql.SQL("t.p_currency_exponent"),
        "amount_minor": sql.SQL("t.p_amount_minor"),
        "gift_at": sql.SQL("t.p_gift_at"),
        "gift_date": sql.SQL("(t.p_gift_at AT TIME ZONE %(tz)s)::date"),
        "recurring_plan_id": sql.SQL("p.recurring_plan_id"),
        "installment_number": sql.SQL(
            "CASE WHEN p.recurring_plan_id IS NOT NULL THEN t.installment_number END"
        ),
        "utm_extra": sql.SQL("coalesce(t.utm_extra, '{}'::jsonb)"),
    }
    columns = ("gift_key", "source", *GIFT_COLUMNS)
    select = sql.SQL(", ").join(values.get(c, sql.SQL("t.{}").format(_ident(c))) for c in columns)
    updated = list(GIFT_COLUMNS)
    rows = conn.execute(
        sql.SQL(
            "INSERT INTO core.gifts AS g ({cols})"
            " SELECT {select} FROM {merged} t LEFT JOIN core.recurring_plans p ON p.plan_key = t.plan_key"
            " ON CONFLICT (gift_key) DO UPDATE SET ({upd}) = ROW({exc})"
            " WHERE ({old}) IS DISTINCT FROM ({exc})"
            " RETURNING (xmax = 0)"
        ).format(
            cols=sql.SQL(", ").join(map(_ident, columns)),
            select=select,
            merged=_ident(MERGED_TMP),
            upd=sql.SQL(", ").join(map(_ident, updated)),
            exc=sql.SQL(", ").join(sql.SQL("EXCLUDED.{}").format(_ident(c)) for c in updated),
            old=sql.SQL(", ").join(sql.SQL("g.{}").format(_ident(c)) for c in updated),
        ),
        params,
    ).fetchall()
    return [bool(r[0]) for r in rows]


def _upsert_sources(conn: psycopg.Connection, params: dict[str, Any]) -> int:
    """Link the fresh objects of merged gifts to their gift with their version; return new links."""
    rows = conn.execute(
        sql.SQL(
            "INSERT INTO core.gift_sources AS gs (gift_id, source, entity, source_id, attributes,"
            "     source_updated_at, last_raw_record_id, first_seen_at, last_seen_at)"
            " SELECT cg.gift_id, m.source, m.entity, m.source_id, m.attributes, m.source_updated_at,"
            "        m.raw_record_id, %(now)s, %(now)s"
            " FROM {members} m JOIN {merged} t USING (gift_key) JOIN core.gifts cg USING (gift_key)"
            " WHERE m.fresh"
            " ON CONFLICT (source, entity, source_id) DO UPDATE SET gift_id = EXCLUDED.gift_id,"
            "     attributes = EXCLUDED.attributes, source_updated_at = EXCLUDED.source_updated_at,"
            "     last_raw_record_id = EXCLUDED.last_raw_record_id, last_seen_at = EXCLUDED.last_seen_at"
            " RETURNING (xmax = 0)"
        ).format(members=_ident(MEMBERS_TMP), merged=_ident(MERGED_TMP)),
        params,
    ).fetchall()
    return sum(1 for r in rows if r[0])


def refresh_plans(
    conn: psycopg.Connection,
    plan_ids: Sequence[UUID] | None,
    *,
    today: date,
    settings: GivingSettings,
) -> int:
    """Recompute recurring plans from their installments in core.gifts; return how many changed.

    Derived: donor, amount, designation and campaign of the latest installment; first, last
    successful and next payment; failed installments since the last success; status (module
    docstring). Only rows whose values differ are written.

    :param plan_ids: the plans to refresh; None for every plan (the nightly sweep that turns
        plans without payments lapsed).
    :param today: the organization's date the lapse rule is evaluated at.
    """
    if plan_ids is not None and not plan_ids:
        return 0
    where = sql.SQL("p.recurring_plan_id = ANY(%(plans)s)") if plan_ids is not None else sql.SQL("true")
    step = sql.SQL(
        "CASE p.interval_unit WHEN 'day' THEN make_interval(days => p.interval_count)"
        " WHEN 'week' THEN make_interval(weeks => p.interval_count)"
        " WHEN 'month' THEN make_interval(months => p.interval_count)"
        " WHEN 'quarter' THEN make_interval(months => 3 * p.interval_count)"
        " ELSE make_interval(years => p.interval_count) END"
    )
    derived = sql.SQL(
        "SELECT p.recurring_plan_id,"
        "   l.donor_id, l.amount, l.currency, l.currency_exponent, l.amount_minor, l.designation, l.campaign,"
        "   least(p.started_at, a.first_at) AS started_at,"
        "   a.last_ok AS last_payment_at,"
        "   CASE WHEN s.status = 'canceled' THEN NULL ELSE a.last_ok + {step} END AS next_payment_at,"
        "   CASE WHEN s.status = 'canceled' THEN coalesce(CASE WHEN l.status = 'canceled' THEN l.gift_at END,"
        "                                                 p.ended_at) END AS ended_at,"
        "   a.failed_since AS failed_payment_count,"
        "   s.status"
        " FROM core.recurring_plans p"
        " JOIN LATERAL (SELECT g.donor_id, g.amount, g.currency, g.currency_exponent, g.amount_minor,"
        "                      g.designation, g.campaign, g.status, g.gift_at"
        "               FROM core.gifts g WHERE g.recurring_plan_id = p.recurring_plan_id"
        "               ORDER BY g.gift_at DESC, g.gift_id LIMIT 1) l ON true"
        " JOIN LATERAL (SELECT min(g.gift_at) AS first_at, max(g.gift_at) FILTER (WHERE g.status IN"
        "                      ('succeeded', 'partially_refunded')) AS last_ok"
        "               FROM core.gifts g WHERE g.recurring_plan_id = p.recurring_plan_id) a0 ON true"
        " CROSS JOIN LATERAL (SELECT a0.first_at, a0.last_ok, (SELECT count(*) FROM core.gifts g"
        "        WHERE g.recurring_plan_id = p.recurring_plan_id AND g.status = 'failed'"
        "          AND (a0.last_ok IS NULL OR g.gift_at > a0.last_ok))::int AS failed_since) a"
        " CROSS JOIN LATERAL (SELECT CASE"
        "     WHEN l.status = 'canceled' THEN 'canceled'"
        "     WHEN p.status = 'canceled' AND p.ended_at IS NOT NULL"
        "          AND (a.last_ok IS NULL OR a.last_ok <= p.ended_at) THEN 'canceled'"
        "     WHEN ((coalesce(a.last_ok, a.first_at) AT TIME ZONE %(tz)s) + {step})::date"
        "          + (%(grace)s::jsonb ->> p.interval_unit)::int < %(today)s THEN 'lapsed'"
        "     ELSE 'active' END AS status) s"
        " WHERE {where}"
    ).format(step=step, where=where)
    columns = (
        "donor_id",
        "amount",
        "currency",
        "currency_exponent",
        "amount_minor",
        "designation",
        "campaign",
        "started_at",
        "last_payment_at",
        "next_payment_at",
        "ended_at",
        "failed_payment_count",
        "status",
    )
    changed = conn.execute(
        sql.SQL(
            "UPDATE core.recurring_plans p SET ({cols}) = ROW({new}) FROM ({derived}) d"
            " WHERE p.recurring_plan_id = d.recurring_plan_id AND ({old}) IS DISTINCT FROM ({new})"
        ).format(
            cols=sql.SQL(", ").join(map(_ident, columns)),
            new=sql.SQL(", ").join(sql.SQL("d.{}").format(_ident(c)) for c in columns),
            old=sql.SQL(", ").join(sql.SQL("p.{}").format(_ident(c)) for c in columns),
            derived=derived,
        ),
        {
            "plans": list(plan_ids) if plan_ids is not None else None,
            "tz": settings.time_zone,
            "today": today,
            "grace": json.dumps(settings.recurring.grace_days),
        },
    ).rowcount
    return changed
