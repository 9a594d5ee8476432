"""Read core rows for the mapping engine: the keys of ``SOURCE_FIELDS[kind]``, exactly.

Which rows a run reads is decided first, set-based, into a temp table of keys
(``__donor_sync__outbox_keys``: kind, key, changed_at, live); the rows are then read from it in
batches through a server-side cursor, so memory stays flat whatever the base size.

* live rows: donors not merged away and not erased; gifts that are not test payments, of a live
  donor; recurring plans of a live donor; households with a live member. A gift or plan belongs
  to its donor's survivor (``coalesce(merged_into, donor_id)``: merges never re-point gifts),
  and its ``household_id`` is the survivor's household.
* a key that is considered but not live has left core (merged away, erased, now a test payment):
  mirror and withdrawal act on it (:mod:`donor_sync.delivery.outbox.modes`).
* incremental: rows whose own ``updated_at`` or what they read changed after the destination's
  watermark of the kind (``sync.watermarks``: source = destination, stream = ``outbox_<kind>``),
  re-reading the watermark's overlap: a donor's household link or household row, a gift's or
  plan's owner (a merge decided or undone) or the owner's household link, and the consent state
  and suppressions of a donor or of a gift's or plan's owner (the privacy gate reads them). A
  household link or consent state that is deleted, or a consent that expires, leaves no
  timestamp: the nightly full run picks it up.

Values keep their database types (uuids as text, numerics as Decimal, dates and datetimes).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row

from donor_sync.delivery.contracts import SOURCE_FIELDS
from donor_sync.delivery.outbox.scope import Scope, ScopeKind

KEYS_TABLE = "__donor_sync__outbox_keys"
BATCH_ROWS = 5_000


def stream_of(kind: str) -> str:
    """Return the ``sync.watermarks`` stream of a kind's outbox computation."""
    return f"outbox_{kind}"


def _select_list(kind: str, alias: str, overrides: Mapping[str, str]) -> str:
    return ", ".join(f"{overrides.get(f, f'{alias}.{f}')} AS {f}" for f in SOURCE_FIELDS[kind])


# -- donors ----------------------------------------------------------------------------------------

_DONOR_KEYS = """
SELECT d.donor_id::text, greatest(d.updated_at, hm.linked_at, h.updated_at),
       d.merged_into IS NULL AND d.erased_at IS NULL
FROM core.donors d
LEFT JOIN core.household_members hm ON hm.donor_id = d.donor_id
LEFT JOIN core.households h ON h.household_id = hm.household_id
"""
# Donors whose consent state or suppressions changed since %(t)s (the privacy gate and the
# compiled consent fields read them); a suppression of a merged-away donor counts for its survivor.
_CONSENT_CHANGED = """
    SELECT donor_id FROM core.consent_state WHERE updated_at > %(t)s
    UNION SELECT coalesce(sd.merged_into, sd.donor_id) FROM core.suppressions s
          JOIN core.donors sd ON sd.donor_id = s.donor_id
          WHERE s.created_at > %(t)s OR s.lifted_at > %(t)s
"""
_DONOR_CHANGED = f"""
WHERE d.donor_id IN (
    SELECT donor_id FROM core.donors WHERE updated_at > %(t)s
    UNION SELECT donor_id FROM core.household_members WHERE linked_at > %(t)s
    UNION SELECT m.donor_id FROM core.household_members m
          JOIN core.households hh ON hh.household_id = m.household_id WHERE hh.updated_at > %(t)s
    UNION {_CONSENT_CHANGED})
"""
_DONOR_IDS = """
WHERE d.donor_id = ANY(%(donors)s::uuid[]) OR d.donor_id = ANY(%(keys)s::uuid[])
"""
# Compiled consent (issue 7). A merged-away donor's suppressions count for its survivor (its
# consent events already do, through core.consent_state).
_SUPPRESSED = """EXISTS (SELECT 1 FROM core.suppressions s
    WHERE s.lifted_at IS NULL AND s.destination = '*'
    AND s.donor_id IN (SELECT x.donor_id FROM core.donors x
                       WHERE x.donor_id = d.donor_id OR x.merged_into = d.donor_id)
    AND s.channel IN ({channels}) AND s.reason_code IN ({reasons}))"""
_ANY_CHANNEL = "'email', 'sms', 'phone', 'mail', 'all'"
# The latest live state of marketing or fundraising on the channel (or on every channel) is an opt-out.
_OPTED_OUT = """EXISTS (SELECT 1 FROM core.consent_state cs WHERE cs.donor_id = d.donor_id
    AND cs.purpose IN ('marketing', 'fundraising') AND cs.channel IN ('{channel}', 'all')
    AND cs.status = 'opt_out' AND (cs.expires_at IS NULL OR cs.expires_at > now())
    AND NOT EXISTS (SELECT 1 FROM core.consent_state c2 WHERE c2.donor_id = cs.donor_id
        AND c2.purpose = cs.purpose AND c2.channel IN ('{channel}', 'all') AND c2.status <> 'opt_out'
        AND c2.effective_at > cs.effective_at AND (c2.expires_at IS NULL OR c2.expires_at > now())))"""


def _opt_out(channel: str) -> str:
    reasons = "'do_not_contact', 'do_not_solicit'" + (", 'complained'" if channel == "email" else "")
    suppressed = _SUPPRESSED.format(channels=f"'{channel}', 'all'", reasons=reasons)
    return f"({_OPTED_OUT.format(channel=channel)} OR {suppressed})"


# Email consent per purpose (HubSpot subscription statuses): the live email row of each purpose
# (ec), whether the donor ever chose on email (eh: `lapsed` when no choice holds now), and whether
# a suppression stops email (eb: an opt-in is then `suppressed`).
_EMAIL_PURPOSES = ("marketing", "fundraising", "profiling", "sharing")
_BASIS = (
    "coalesce(cs.lawful_basis, CASE cs.status WHEN 'opt_in' THEN 'consent'"
    " WHEN 'soft_opt_in' THEN 'legitimate_interests' END)"
)
_EMAIL_CONSENT_JOINS = (
    "LEFT JOIN LATERAL (SELECT "
    + ", ".join(
        f"max(cs.status::text) FILTER (WHERE cs.purpose = '{p}') AS {p}_status, "
        f"max({_BASIS}) FILTER (WHERE cs.purpose = '{p}') AS {p}_basis"
        for p in _EMAIL_PURPOSES
    )
    + """ FROM core.consent_state cs WHERE cs.donor_id = d.donor_id AND cs.channel = 'email'
    AND (cs.expires_at IS NULL OR cs.expires_at > now())) ec ON true
LEFT JOIN LATERAL (SELECT array_agg(DISTINCT e.purpose::text) AS purposes FROM core.consent_events e
    WHERE e.channel IN ('email', 'all') AND e.donor_id IN (SELECT x.donor_id FROM core.donors x
          WHERE x.donor_id = d.donor_id OR x.merged_into = d.donor_id)) eh ON true
LEFT JOIN LATERAL (SELECT (d.is_deceased OR d.do_not_contact OR """
    + _SUPPRESSED.format(
        channels="'email', 'all'", reasons="'deceased', 'do_not_contact', 'do_not_solicit', 'complained'"
    )
    + ") AS blocked) eb ON true"
)


def _email_status(purpose: str) -> str:
    return (
        f"CASE WHEN ec.{purpose}_status IN ('opt_in', 'soft_opt_in') AND eb.blocked THEN 'suppressed'"
        f" ELSE coalesce(ec.{purpose}_status, CASE WHEN '{purpose}' = ANY(eh.purposes) THEN 'lapsed' END) END"
    )


# Marketing consent on SMS (Braze's SMS subscription group): the live sms row, `suppressed` when
# a suppression stops sms, `lapsed` when a choice was made once but none holds now.
_SMS_MARKETING_STATUS = (
    "(SELECT CASE WHEN s.status IN ('opt_in', 'soft_opt_in') AND (d.is_deceased OR d.do_not_contact OR "
    + _SUPPRESSED.format(channels="'sms', 'all'", reasons="'deceased', 'do_not_contact', 'do_not_solicit'")
    + """) THEN 'suppressed' ELSE coalesce(s.status, CASE WHEN EXISTS (SELECT 1 FROM core.consent_events e
        WHERE e.purpose = 'marketing' AND e.channel IN ('sms', 'all') AND e.donor_id IN (SELECT x.donor_id
        FROM core.donors x WHERE x.donor_id = d.donor_id OR x.merged_into = d.donor_id))
        THEN 'lapsed' END) END
    FROM (SELECT (SELECT cs.status::text FROM core.consent_state cs WHERE cs.donor_id = d.donor_id
        AND cs.purpose = 'marketing' AND cs.channel = 'sms'
        AND (cs.expires_at IS NULL OR cs.expires_at > now())) AS status) s)"""
)

_DONOR_SELECT = _select_list(
    "donor",
    "d",
    {
        "donor_id": "d.donor_id::text",
        "household_id": "hm.household_id::text",
        "household_name": "h.name",
        "household_role": "hm.role",
        "is_deceased": "(d.is_deceased OR "
        + _SUPPRESSED.format(channels=_ANY_CHANNEL, reasons="'deceased'")
        + ")",
        "do_not_contact": "(d.do_not_contact OR "
        + _SUPPRESSED.format(channels="'all'", reasons="'do_not_contact'")
        + ")",
        **{f"{c}_opt_out": _opt_out(c) for c in ("email", "phone", "sms", "mail")},
        **{f"consent_{p}_email_status": _email_status(p) for p in _EMAIL_PURPOSES},
        **{f"consent_{p}_email_basis": f"ec.{p}_basis" for p in _EMAIL_PURPOSES},
        "consent_marketing_sms_status": _SMS_MARKETING_STATUS,
    },
)
_DONOR_ROWS = f"""
SELECT {_DONOR_SELECT}
FROM {KEYS_TABLE} k
JOIN core.donors d ON d.donor_id = k.key::uuid
LEFT JOIN core.household_members hm ON hm.donor_id = d.donor_id
LEFT JOIN core.households h ON h.household_id = hm.household_id
{_EMAIL_CONSENT_JOINS}
WHERE k.kind = 'donor' AND k.live
ORDER BY k.key
"""

# -- households ------------------------------------------------------------------------------------

_HOUSEHOLD_KEYS = """
SELECT h.household_id::text, greatest(h.updated_at, max(hm.linked_at), max(d.updated_at)),
       coalesce(bool_or(d.merged_into IS NULL AND d.erased_at IS NULL), false)
FROM core.households h
LEFT JOIN core.household_members hm ON hm.household_id = h.household_id
LEFT JOIN core.donors d ON d.donor_id = hm.donor_id
{where}
GROUP BY h.household_id
"""
_HOUSEHOLD_CHANGED = """
WHERE h.household_id IN (
    SELECT household_id FROM core.households WHERE updated_at > %(t)s
    UNION SELECT household_id FROM core.household_members WHERE linked_at > %(t)s
    UNION SELECT m.household_id FROM core.household_members m
          JOIN core.donors dd ON dd.donor_id = m.donor_id WHERE dd.updated_at > %(t)s)
"""
_HOUSEHOLD_IDS = """
WHERE h.household_id = ANY(%(keys)s::uuid[])
   OR h.household_id IN (SELECT household_id FROM core.household_members
                         WHERE donor_id = ANY(%(donors)s::uuid[]))
"""
_LIVE_MEMBERS = """
FROM core.household_members m JOIN core.donors dd ON dd.donor_id = m.donor_id
WHERE m.household_id = h.household_id AND dd.merged_into IS NULL AND dd.erased_at IS NULL
"""
_HOUSEHOLD_SELECT = _select_list(
    "household",
    "h",
    {
        "household_id": "h.household_id::text",
        "member_count": f"(SELECT count(*) {_LIVE_MEMBERS})::integer",
        "primary_donor_id": f"(SELECT m.donor_id::text {_LIVE_MEMBERS} AND m.role = 'primary')",
    },
)
_HOUSEHOLD_ROWS = f"""
SELECT {_HOUSEHOLD_SELECT}
FROM {KEYS_TABLE} k
JOIN core.households h ON h.household_id = k.key::uuid
WHERE k.kind = 'household' AND k.live
ORDER BY k.key
"""

# -- gifts and recurring plans ---------------------------------------------------------------------

# Donors whose gifts and plans changed owner (a merge decided or undone), whose owner's
# household link changed, or whose owner's consent or suppressions changed (the gate) since %(t)s.
_OWNER_CHANGED = f"""
    SELECT md.merged_donor_id FROM core.merge_decisions md
    WHERE md.decided_at > %(t)s OR md.undone_at > %(t)s
    UNION SELECT unnest(md.repointed) FROM core.merge_decisions md
    WHERE md.decided_at > %(t)s OR md.undone_at > %(t)s
    UNION SELECT donor_id FROM core.household_members WHERE linked_at > %(t)s
    UNION SELECT dd.donor_id FROM core.donors dd
          JOIN core.household_members m ON m.donor_id = dd.merged_into WHERE m.linked_at > %(t)s
    UNION {_CONSENT_CHANGED}
    UNION SELECT dd.donor_id FROM core.donors dd WHERE dd.merged_into IN ({_CONSENT_CHANGED})
"""
_OWNED_BY_IDS = """
    SELECT unnest(%(donors)s::uuid[])
    UNION SELECT donor_id FROM core.donors WHERE merged_into = ANY(%(donors)s::uuid[])
"""
_OWNER_JOIN = """
JOIN core.donors d ON d.donor_id = {alias}.donor_id
JOIN core.donors o ON o.donor_id = coalesce(d.merged_into, d.donor_id)
LEFT JOIN core.household_members hm ON hm.donor_id = o.donor_id
"""

_GIFT_KEYS = f"""
SELECT g.gift_key, greatest(g.updated_at, hm.linked_at),
       NOT g.is_test AND o.merged_into IS NULL AND o.erased_at IS NULL
FROM core.gifts g
{_OWNER_JOIN.format(alias="g")}
"""
_GIFT_CHANGED = f"""
WHERE g.gift_id IN (
    SELECT gift_id FROM core.gifts WHERE updated_at > %(t)s
    UNION SELECT gift_id FROM core.gifts WHERE donor_id IN ({_OWNER_CHANGED}))
"""
_GIFT_IDS = f"""
WHERE g.gift_key = ANY(%(keys)s::text[]) OR g.donor_id IN ({_OWNED_BY_IDS})
"""
_GIFT_SELECT = _select_list(
    "gift",
    "g",
    {
        "gift_id": "g.gift_id::text",
        "donor_id": "o.donor_id::text",
        "household_id": "hm.household_id::text",
        "recurring_plan_key": "rp.plan_key",
    },
)
_GIFT_ROWS = f"""
SELECT {_GIFT_SELECT}
FROM {KEYS_TABLE} k
JOIN core.gifts g ON g.gift_key = k.key
{_OWNER_JOIN.format(alias="g")}
LEFT JOIN core.recurring_plans rp ON rp.recurring_plan_id = g.recurring_plan_id
WHERE k.kind = 'gift' AND k.live
ORDER BY k.key
"""

_PLAN_KEYS = f"""
SELECT p.plan_key, greatest(p.updated_at, hm.linked_at), o.merged_into IS NULL AND o.erased_at IS NULL
FROM core.recurring_plans p
{_OWNER_JOIN.format(alias="p")}
"""
_PLAN_CHANGED = f"""
WHERE p.recurring_plan_id IN (
    SELECT recurring_plan_id FROM core.recurring_plans WHERE updated_at > %(t)s
    UNION SELECT recurring_plan_id FROM core.recurring_plans WHERE donor_id IN ({_OWNER_CHANGED}))
"""
_PLAN_IDS = f"""
WHERE p.plan_key = ANY(%(keys)s::text[]) OR p.donor_id IN ({_OWNED_BY_IDS})
"""
_PLAN_SELECT = _select_list(
    "recurring_plan", "p", {"donor_id": "o.donor_id::text", "household_id": "hm.household_id::text"}
)
_PLAN_ROWS = f"""
SELECT {_PLAN_SELECT}
FROM {KEYS_TABLE} k
JOIN core.recurring_plans p ON p.plan_key = k.key
{_OWNER_JOIN.format(alias="p")}
WHERE k.kind = 'recurring_plan' AND k.live
ORDER BY k.key
"""

#: Per kind: (keys select, incremental filter, ids filter, rows select).
_SQL: Mapping[str, tuple[str, str, str, str]] = {
    "donor": (_DONOR_KEYS + "{where}", _DONOR_CHANGED, _DONOR_IDS, _DONOR_ROWS),
    "household": (_HOUSEHOLD_KEYS, _HOUSEHOLD_CHANGED, _HOUSEHOLD_IDS, _HOUSEHOLD_ROWS),
    "gift": (_GIFT_KEYS + "{where}", _GIFT_CHANGED, _GIFT_IDS, _GIFT_ROWS),
    "recurring_plan": (_PLAN_KEYS + "{where}", _PLAN_CHANGED, _PLAN_IDS, _PLAN_ROWS),
}


def create_keys_table(conn: psycopg.Connection) -> None:
    """(Re)create the temp table of the keys a run considers."""
    conn.execute(f"DROP TABLE IF EXISTS {KEYS_TABLE}")
    conn.execute(
        f"CREATE TEMP TABLE {KEYS_TABLE} (kind text NOT NULL, key text NOT NULL,"
        " changed_at timestamptz, live boolean NOT NULL, PRIMARY KEY (kind, key))"
    )


def watermark_since(conn: psycopg.Connection, destination: str, stream: str) -> datetime | None:
    """Return where the next incremental window starts (cursor minus overlap), None before the first run."""
    row = conn.execute(
        "SELECT cursor_ts - overlap FROM sync.watermarks WHERE source = %s AND stream = %s",
        (destination, stream),
    ).fetchone()
    return None if row is None else row[0]


def advance_watermark(
    conn: psycopg.Connection,
    destination: str,
    stream: str,
    cursor_ts: datetime | None,
    *,
    run_id: str | UUID | None = None,
) -> None:
    """Move the watermark forward to ``cursor_ts`` (never back); nothing when there is no position."""
    if cursor_ts is None:
        return
    conn.execute(
        "INSERT INTO sync.watermarks AS w (source, stream, cursor_ts, run_id)"
        " VALUES (%(d)s, %(s)s, %(ts)s, (SELECT run_id FROM sync.runs WHERE run_id = %(run)s::uuid))"
        " ON CONFLICT (source, stream) DO UPDATE SET cursor_ts = greatest(w.cursor_ts, EXCLUDED.cursor_ts),"
        " run_id = coalesce(EXCLUDED.run_id, w.run_id)",
        {"d": destination, "s": stream, "ts": cursor_ts, "run": str(run_id) if run_id else None},
    )


def collect_keys(
    conn: psycopg.Connection, kind: str, scope: Scope, *, since: datetime | None = None
) -> tuple[int, datetime | None]:
    """Add the keys of ``kind`` the scope considers to the keys table.

    :param since: for an incremental scope, the start of the window (None: everything).
    :return: how many keys, and when they were read: the next watermark. Every change committed
        by then has been seen; one whose transaction was still open then carries an earlier
        ``updated_at`` and is caught by the next window's overlap.
    """
    keys_sql, changed, ids, _ = _SQL[kind]
    params: dict[str, Any] = {"t": since, "donors": [], "keys": []}
    where = ""
    if scope.kind is ScopeKind.IDS:
        where = ids
        params["donors"] = sorted(scope.donor_ids)
        params["keys"] = sorted(scope.keys.get(kind, ()))
    elif scope.kind is ScopeKind.INCREMENTAL and since is not None:
        where = changed
    clock = conn.execute("SELECT clock_timestamp()").fetchone()
    read_at = clock[0] if clock else None
    conn.execute(
        f"INSERT INTO {KEYS_TABLE} (kind, key, changed_at, live) SELECT %(kind)s, q.* FROM ("
        + keys_sql.format(where=where)
        + ") q",
        {**params, "kind": kind},
    )
    # Autovacuum never analyzes a temporary table: without this the rows query is planned for an
    # empty one, which at tens of thousands of keys costs minutes.
    conn.execute(f"ANALYZE {KEYS_TABLE}")
    row = conn.execute(f"SELECT count(*) FROM {KEYS_TABLE} WHERE kind = %s", (kind,)).fetchone()
    return (int(row[0]) if row else 0), read_at


def read_rows(
    conn: psycopg.Connection, kind: str, *, batch_rows: int = BATCH_ROWS
) -> Iterator[list[dict[str, Any]]]:
    """Yield the live rows of ``kind`` in the keys table, in batches, ordered by key.

    Reads through a server-side cursor (needs a transaction); the connection may run other
    statements between batches.
    """
    rows_sql = _SQL[kind][3]
    with conn.cursor(name=f"__donor_sync__outbox_rows_{kind}", row_factory=dict_row) as cur:
        cur.execute(rows_sql)
        while batch := cur.fetchmany(batch_rows):
            yield batch


def iter_source_rows(
    conn: psycopg.Connection, kind: str, scope: Scope, *, since: datetime | None = None
) -> Iterator[dict[str, Any]]:
    """Yield the live core rows of ``kind`` a scope selects (for the mapping engine's tools).

    Runs inside a transaction of its own (a savepoint when one is open); writes nothing lasting.
    """
    with conn.transaction(force_rollback=True):
        create_keys_table(conn)
        collect_keys(conn, kind, scope, since=since)
        for batch in read_rows(conn, kind):
            yield from batch
