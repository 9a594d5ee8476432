"""The session-local tables one queue or plan run works in (created, then dropped, in its transaction).

* ``__donor_sync__outbox_objects``: the mapping's objects (entity, source kind, mode, mirror action);
* ``__donor_sync__outbox_keys``: the core keys the run considers (:mod:`.source_rows`);
* ``__donor_sync__outbox_rendered``: the rendered records, loaded with COPY;
* ``__donor_sync__outbox_plan``: what happens to each record (:mod:`.modes`).
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

from donor_sync.delivery.outbox.renderer import MappedObject
from donor_sync.delivery.outbox.source_rows import KEYS_TABLE, create_keys_table

OBJECTS_TABLE = "__donor_sync__outbox_objects"
RENDERED_TABLE = "__donor_sync__outbox_rendered"
PLAN_TABLE = "__donor_sync__outbox_plan"

#: Columns of the rendered table, in COPY order.
RENDERED_COLUMNS = (
    "seq",
    "entity",
    "record_key",
    "donor_id",
    "operation",
    "payload",
    "depends_on",
    "set_if_empty",
    "priority",
)


def create_work_tables(conn: psycopg.Connection, objects: Sequence[MappedObject]) -> None:
    """(Re)create the work tables and load the mapping's objects."""
    drop_work_tables(conn)
    create_keys_table(conn)
    conn.execute(
        f"CREATE TEMP TABLE {OBJECTS_TABLE} (entity text PRIMARY KEY, kind text NOT NULL,"
        " mode text NOT NULL, mirror_action text)"
    )
    with conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO {OBJECTS_TABLE} (entity, kind, mode, mirror_action) VALUES (%s, %s, %s, %s)",
            [
                (o.entity, o.kind, o.mode.value, o.mirror_action.value if o.mirror_action else None)
                for o in objects
            ],
        )
    conn.execute(
        f"CREATE TEMP TABLE {RENDERED_TABLE} (seq bigint NOT NULL, entity text NOT NULL,"
        " record_key text NOT NULL, donor_id uuid, operation text NOT NULL, payload jsonb NOT NULL,"
        " depends_on jsonb NOT NULL, set_if_empty text[] NOT NULL, priority smallint NOT NULL)"
    )


def drop_work_tables(conn: psycopg.Connection) -> None:
    """Drop the work tables (nothing when they do not exist)."""
    conn.execute(f"DROP TABLE IF EXISTS {PLAN_TABLE}, {RENDERED_TABLE}, {OBJECTS_TABLE}, {KEYS_TABLE}")
