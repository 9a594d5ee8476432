"""Decide, set-based, what happens to each rendered record under its object's sync mode.

:func:`classify` fills the plan table with one row per destination record, an ``action`` and,
for a skipped record, a ``reason``:

``create`` / ``update``
    queued: the payload hash differs from what the destination has or is about to get (the
    in-flight row's payload when one is in flight, else ``sync.destination_state``'s last
    payload); ``update`` when the destination holds a live record (remote id), else ``create``.
``unchanged``
    the destination has, or will get, this very payload (or the same write is already pending),
    or this very payload is an open dead letter: it waits for a person (``donor-sync dlq``), not
    for the next run; a changed payload is queued again.
``skipped``
    the mode leaves it alone: ``update_only`` and no live remote record (``reason``
    ``not_in_destination``); ``create_only`` and the record landed once or is being created right
    now (``already_sent``). The queue run also skips a record whose dependency will never exist
    in the destination (:mod:`.dependencies`).
``deferred``
    a pending write of another kind (erase, unsubscribe, trigger) goes first.
``delete`` / ``archive``
    ``mirror`` objects: the destination holds a live record (remote id) that is no longer
    rendered: its core row left (merged away, deleted, now a test) or the mapping filters it out.
    The contact of a merged-away donor is left to the merge (:mod:`.merges`), and records of an
    erased donor to the erasure cascade.
``withdraw``
    a pending create/update that should not be pushed any more: its record is no longer rendered
    (and not removed by mirror), or it changed back to what the destination has.

Which non-rendered records are looked at: in a full run, every record of the entity; otherwise
the core keys the run considered (changed, or named) of the object's source kind.

The operation written follows the mode: ``update_only`` writes ``update``, ``create_only``
writes ``create``, ``upsert`` and ``mirror`` write what the mapping rendered.
"""

from __future__ import annotations

import psycopg

from donor_sync.delivery.contracts import Operation
from donor_sync.delivery.outbox.source_rows import KEYS_TABLE
from donor_sync.delivery.outbox.work_tables import OBJECTS_TABLE, PLAN_TABLE, RENDERED_TABLE

#: Pending writes a newer one may replace or withdraw (anything the outbox itself queues).
REPLACEABLE = (
    Operation.UPSERT.value,
    Operation.CREATE.value,
    Operation.UPDATE.value,
    Operation.DELETE.value,
    Operation.ARCHIVE.value,
    Operation.MERGE.value,
)
#: Pending writes withdrawn when their record is no longer rendered.
WITHDRAWABLE = (Operation.UPSERT.value, Operation.CREATE.value, Operation.UPDATE.value)
_REPLACEABLE_SQL = "(" + ", ".join(f"'{op}'" for op in REPLACEABLE) + ")"
_WITHDRAWABLE_SQL = "(" + ", ".join(f"'{op}'" for op in WITHDRAWABLE) + ")"


def _outbox(alias: str, entity: str, key: str, state: str) -> str:
    """Join clause of the outbox row of a record in ``state`` (at most one: partial unique indexes)."""
    return (
        f"sync.outbox {alias} ON {alias}.destination = %(d)s AND {alias}.entity = {entity}"
        f" AND {alias}.record_key = {key} AND {alias}.state = '{state}'"
    )


_RENDERED_PLAN = f"""
CREATE TEMP TABLE {PLAN_TABLE} AS
WITH r AS (
    {{rendered}}
), rc AS MATERIALIZED (
    SELECT r.*, core.jsonb_sha256(r.payload) AS sha, coalesce(o.mode, 'upsert') AS mode,
           CASE coalesce(o.mode, 'upsert') WHEN 'update_only' THEN 'update' WHEN 'create_only' THEN 'create'
                ELSE r.operation END AS op
    FROM r LEFT JOIN {OBJECTS_TABLE} o ON o.entity = r.entity
), j AS (
    SELECT rc.*, ds.remote_id,
           ds.remote_id IS NOT NULL AND ds.remote_deleted_at IS NULL AS has_remote,
           ds.remote_id IS NOT NULL OR ds.last_payload_sha256 IS NOT NULL AS landed,
           CASE WHEN f.outbox_id IS NOT NULL THEN
                     CASE WHEN f.operation IN {_WITHDRAWABLE_SQL} THEN f.payload_sha256 END
                WHEN ds.remote_deleted_at IS NULL THEN ds.last_payload_sha256 END AS expected,
           p.outbox_id AS pending_id, p.operation AS pending_op, p.payload_sha256 AS pending_sha,
           f.outbox_id AS in_flight_id, dl.payload_sha256 AS dead_sha
    FROM rc
    LEFT JOIN sync.destination_state ds
           ON ds.destination = %(d)s AND ds.entity = rc.entity AND ds.record_key = rc.record_key
    LEFT JOIN {_outbox("p", "rc.entity", "rc.record_key", "pending")}
    LEFT JOIN {_outbox("f", "rc.entity", "rc.record_key", "in_flight")}
    LEFT JOIN sync.dead_letters dl ON dl.destination = %(d)s AND dl.entity = rc.entity
           AND dl.record_key = rc.record_key AND dl.status = 'open'
)
SELECT entity, record_key, donor_id, op AS operation, payload, sha AS payload_sha256, depends_on,
       set_if_empty, priority, remote_id, pending_id,
       CASE WHEN mode = 'update_only' AND NOT has_remote THEN 'skipped'
            WHEN mode = 'create_only' AND (landed OR in_flight_id IS NOT NULL) THEN 'skipped'
            WHEN pending_op IS NOT NULL AND pending_op NOT IN {_REPLACEABLE_SQL} THEN 'deferred'
            WHEN sha = expected THEN CASE WHEN pending_id IS NULL THEN 'unchanged' ELSE 'withdraw' END
            WHEN sha = dead_sha AND pending_id IS NULL THEN 'unchanged'
            WHEN pending_sha = sha AND pending_op = op THEN 'unchanged'
            WHEN has_remote THEN 'update'
            ELSE 'create' END AS action,
       CASE WHEN mode = 'update_only' AND NOT has_remote THEN 'not_in_destination'
            WHEN mode = 'create_only' AND (landed OR in_flight_id IS NOT NULL) THEN 'already_sent'
            END AS reason
FROM j
"""

# Which records of an object that are not rendered this run are looked at: in a full run every
# one ({considered} = TRUE), else those whose key is a considered core key of the object's kind.
_CONSIDERED = f"EXISTS (SELECT 1 FROM {KEYS_TABLE} k WHERE k.kind = o.kind AND k.key = {{key}})"
_CANDIDATE = f"""
{{considered}}
AND NOT EXISTS (SELECT 1 FROM {RENDERED_TABLE} r WHERE r.entity = o.entity AND r.record_key = {{key}})
"""


def _candidate(key: str, *, full: bool) -> str:
    considered = "TRUE" if full else _CONSIDERED.format(key=key)
    return _CANDIDATE.format(considered=considered, key=key)


_MIRROR_PLAN = f"""
INSERT INTO {PLAN_TABLE}
SELECT ds.entity, ds.record_key, ds.donor_id, o.mirror_action,
       '{{}}'::jsonb, core.jsonb_sha256('{{}}'::jsonb), '[]'::jsonb, '{{}}'::text[], 100::smallint,
       ds.remote_id, p.outbox_id,
       CASE WHEN p.operation IS NOT NULL AND p.operation NOT IN {_REPLACEABLE_SQL} THEN 'deferred'
            WHEN p.operation = o.mirror_action OR f.operation = o.mirror_action THEN 'unchanged'
            ELSE o.mirror_action END
FROM {OBJECTS_TABLE} o
JOIN sync.destination_state ds ON ds.destination = %(d)s AND ds.entity = o.entity
LEFT JOIN {_outbox("p", "ds.entity", "ds.record_key", "pending")}
LEFT JOIN {_outbox("f", "ds.entity", "ds.record_key", "in_flight")}
WHERE o.mode = 'mirror' AND ds.remote_id IS NOT NULL AND ds.remote_deleted_at IS NULL
  AND {{ds_candidate}}
  AND NOT (ds.entity = %(merge_entity)s AND ds.record_key IN (  -- uncorrelated: hashed once
      SELECT d.donor_id::text FROM core.donors d WHERE d.merged_into IS NOT NULL))
  AND NOT EXISTS (SELECT 1 FROM core.donors d WHERE d.donor_id = ds.donor_id AND d.erased_at IS NOT NULL)
"""

_WITHDRAW_PLAN = f"""
INSERT INTO {PLAN_TABLE}
SELECT p.entity, p.record_key, p.donor_id, p.operation, p.payload, p.payload_sha256, p.depends_on,
       p.set_if_empty, p.priority, NULL, p.outbox_id, 'withdraw'
FROM {OBJECTS_TABLE} o
JOIN sync.outbox p ON p.destination = %(d)s AND p.entity = o.entity AND p.state = 'pending'
WHERE p.operation IN {_WITHDRAWABLE_SQL}
  AND {{p_candidate}}
  AND NOT EXISTS (SELECT 1 FROM {PLAN_TABLE} x WHERE x.entity = p.entity AND x.record_key = p.record_key)
"""


_ALL_RENDERED = f"SELECT * FROM {RENDERED_TABLE}"
_LAST_RENDERED = (
    f"SELECT DISTINCT ON (entity, record_key) * FROM {RENDERED_TABLE} ORDER BY entity, record_key, seq DESC"
)


def classify(
    conn: psycopg.Connection,
    destination: str,
    *,
    full: bool,
    merge_entity: str | None,
    deduplicate: bool = True,
) -> None:
    """Fill the plan table from the rendered records, the objects and the considered keys.

    :param full: every record of an entity that is not rendered is looked at (full recompute);
        otherwise only those of the considered keys.
    :param merge_entity: the entity donor merges go through (its merged-away records are the
        merge's business, not mirror's).
    :param deduplicate: some record was rendered twice: keep the last one of each key.
    """
    params = {"d": destination, "merge_entity": merge_entity or ""}
    # Temp tables are never auto-analyzed, and the outbox or destination state may have grown
    # since their last ANALYZE: index the work tables, so that whatever the row estimates, every
    # "is it rendered / planned" probe is an index lookup and no anti-join turns quadratic.
    conn.execute(f"CREATE INDEX ON {RENDERED_TABLE} (entity, record_key)")
    conn.execute(f"ANALYZE {RENDERED_TABLE}")
    conn.execute(f"DROP TABLE IF EXISTS {PLAN_TABLE}")
    rendered = _LAST_RENDERED if deduplicate else _ALL_RENDERED
    conn.execute(_RENDERED_PLAN.replace("{rendered}", rendered), params)
    conn.execute(f"CREATE INDEX ON {PLAN_TABLE} (entity, record_key)")
    conn.execute(_MIRROR_PLAN.replace("{ds_candidate}", _candidate("ds.record_key", full=full)), params)
    conn.execute(_WITHDRAW_PLAN.replace("{p_candidate}", _candidate("p.record_key", full=full)), params)
