"""Skip, at queue time, records whose dependency will never exist in the destination.

A record that points at another record of the same mapping (a Braze donation event at its
donor's user, a deal at its contact) is pushed once that record has a remote id; until then it
waits, and after the dependency timeout it is dead-lettered (:mod:`donor_sync.delivery.push.claim`).
When the record it points at is not going to be sent at all, waiting is pointless: a gift of a
donor who has no Braze user (the privacy gate or the user object's filter leaves the donor out,
e.g. no email) would wait a day for a user that never comes and end as a dead letter nobody can
fix. :func:`skip_unreachable` marks such records ``skipped`` (reason :data:`DEPENDENCY_NOT_SENT`)
in the plan instead: never queued, never dead-lettered, counted per reason
(:func:`skip_reasons`, run metric ``records_skipped_<reason>``).

A dependency counts as coming when this run queues it or finds it unchanged or deferred, or,
when this run neither renders nor removes it, when the destination holds it (a live remote id),
a write of it is pending or in flight, or it is an open dead letter (a person decides; the
record keeps waiting as before). Only dependencies on objects of the same mapping are checked.
"""

from __future__ import annotations

import psycopg

from donor_sync.delivery.outbox.work_tables import OBJECTS_TABLE, PLAN_TABLE

#: Skip reason of a record whose dependency is not sent to the destination.
DEPENDENCY_NOT_SENT = "dependency_not_sent"

# A dependency (d.entity, d.record_key) is coming when the plan queues it or keeps it, or when the
# plan leaves it alone and the destination or the outbox has it. One pass over every dependency of
# the plan, not a probe per record: as a per-record EXISTS the planner hashed the whole plan table
# for each record (it takes jsonb_to_recordset for 100 rows), 50 s for Salesforce at 10,000 gifts.
# The probes of the destination state, the outbox's partial unique indexes and open dead letters
# are index lookups.
_SKIP = f"""
UPDATE {PLAN_TABLE} p SET action = 'skipped', reason = %(reason)s
FROM (
    SELECT DISTINCT q.ctid AS row_id
    FROM {PLAN_TABLE} q
    CROSS JOIN LATERAL jsonb_to_recordset(q.depends_on) AS d(entity text, record_key text)
    JOIN {OBJECTS_TABLE} o ON o.entity = d.entity
    LEFT JOIN {PLAN_TABLE} x ON x.entity = d.entity AND x.record_key = d.record_key
    WHERE q.action IN ('create', 'update') AND q.depends_on <> '[]'::jsonb
      AND x.action IS DISTINCT FROM 'create' AND x.action IS DISTINCT FROM 'update'
      AND x.action IS DISTINCT FROM 'unchanged' AND x.action IS DISTINCT FROM 'deferred'
      AND (x.action IN ('delete', 'archive', 'withdraw') OR NOT (
        EXISTS (SELECT 1 FROM sync.destination_state s
                WHERE s.destination = %(d)s AND s.entity = d.entity AND s.record_key = d.record_key
                  AND s.remote_id IS NOT NULL AND s.remote_deleted_at IS NULL)
        OR EXISTS (SELECT 1 FROM sync.outbox w
                   WHERE w.destination = %(d)s AND w.entity = d.entity AND w.record_key = d.record_key
                     AND w.state IN ('pending', 'in_flight')
                     AND w.operation IN ('upsert', 'create', 'update'))
        OR EXISTS (SELECT 1 FROM sync.dead_letters l
                   WHERE l.destination = %(d)s AND l.entity = d.entity AND l.record_key = d.record_key
                     AND l.status = 'open')))
) m
WHERE p.ctid = m.row_id
"""
# A record depending on one just skipped (a chain: an association of a skipped deal) is not coming either.
_SKIP_CHAINED = f"""
UPDATE {PLAN_TABLE} p SET action = 'skipped', reason = %(reason)s
FROM (
    SELECT DISTINCT q.ctid AS row_id
    FROM {PLAN_TABLE} q
    CROSS JOIN LATERAL jsonb_to_recordset(q.depends_on) AS d(entity text, record_key text)
    JOIN {PLAN_TABLE} x ON x.entity = d.entity AND x.record_key = d.record_key
    WHERE q.action IN ('create', 'update') AND q.depends_on <> '[]'::jsonb
      AND x.action = 'skipped' AND x.reason = %(reason)s
) m
WHERE p.ctid = m.row_id
"""

#: Longest chain of dependencies followed (mappings have two or three levels).
_MAX_DEPTH = 8


def skip_unreachable(conn: psycopg.Connection, destination: str) -> int:
    """Mark ``skipped`` the plan's queued records that depend on a record that is not coming.

    Runs on the plan table :func:`~donor_sync.delivery.outbox.modes.classify` filled.

    :return: how many records it skipped.
    """
    params = {"d": destination, "reason": DEPENDENCY_NOT_SENT}
    # JIT off: the per-dependency probes inflate the cost estimate past the JIT threshold, and
    # compiling would cost more than the statement (as for the gate's facts query).
    previous = conn.execute("SELECT current_setting('jit')").fetchone()
    conn.execute("SELECT set_config('jit', 'off', %s)", (not conn.autocommit,))
    try:
        skipped = step = conn.execute(_SKIP, params).rowcount
        for _ in range(_MAX_DEPTH):
            if step <= 0:
                break
            step = conn.execute(_SKIP_CHAINED, params).rowcount
            skipped += step
    finally:
        if previous is not None:
            conn.execute("SELECT set_config('jit', %s, %s)", (previous[0], not conn.autocommit))
    return skipped


def skip_reasons(conn: psycopg.Connection) -> dict[str, int]:
    """Return the plan's skipped records per reason (every skip has one)."""
    rows = conn.execute(
        f"SELECT coalesce(reason, 'unspecified'), count(*) FROM {PLAN_TABLE} WHERE action = 'skipped'"
        " GROUP BY 1 ORDER BY 1"
    ).fetchall()
    return {str(reason): int(n) for reason, n in rows}
