"""Mark enrollments triggered or failed from what happened to their outbox rows.

Read at the start of every decision, so the push engine needs no journey-specific hook: for each
enrollment still ``pending`` (with a queued trigger) or ``failed``, the outbox rows of its record
key (``<gift_key>:<journey_id>``, entity ``journey_trigger``) say what happened. A succeeded row
makes it ``triggered`` (at that row's time); otherwise the newest row decides: ``dead`` ->
``failed`` (``trigger_dead_lettered``), ``canceled`` -> ``failed`` (``trigger_canceled``), pending
or in flight -> ``pending``. A dead-lettered trigger replayed with ``donor-sync dlq replay`` is a
new outbox row of the same record key: its enrollment goes back to ``pending`` and then to
``triggered``, and the enrollment stays the one row it always was.
"""

from __future__ import annotations

import psycopg

from donor_sync.journeys.payloads import ENTITY

_RECONCILE = """
WITH open AS (
    SELECT e.enrollment_id, e.destination, e.gift_key || ':' || e.journey_id AS record_key
    FROM sync.journey_enrollments e
    WHERE e.status IN ('pending', 'failed') AND e.outbox_id IS NOT NULL
),
latest AS (
    SELECT DISTINCT ON (x.enrollment_id) x.enrollment_id, o.outbox_id, o.state, o.updated_at
    FROM open x
    JOIN sync.outbox o
      ON o.destination = x.destination AND o.entity = %(entity)s AND o.record_key = x.record_key
    ORDER BY x.enrollment_id, (o.state = 'succeeded') DESC, o.outbox_id DESC
),
verdict AS (
    SELECT enrollment_id, outbox_id, updated_at,
           CASE state WHEN 'succeeded' THEN 'triggered' WHEN 'dead' THEN 'failed'
                      WHEN 'canceled' THEN 'failed' ELSE 'pending' END AS status,
           CASE state WHEN 'dead' THEN 'trigger_dead_lettered' WHEN 'canceled' THEN 'trigger_canceled' END
               AS reason_code
    FROM latest
)
UPDATE sync.journey_enrollments e
SET status = v.status, reason_code = v.reason_code, outbox_id = v.outbox_id,
    triggered_at = CASE WHEN v.status = 'triggered' THEN v.updated_at END
FROM verdict v
WHERE e.enrollment_id = v.enrollment_id
  AND (e.status, e.outbox_id, e.reason_code) IS DISTINCT FROM (v.status, v.outbox_id, v.reason_code)
RETURNING e.status
"""


def reconcile(conn: psycopg.Connection) -> dict[str, int]:
    """Bring enrollments in step with their trigger rows; return how many changed, per new status."""
    changed: dict[str, int] = {}
    for (status,) in conn.execute(_RECONCILE, {"entity": ENTITY}).fetchall():
        changed[status] = changed.get(status, 0) + 1
    return changed
