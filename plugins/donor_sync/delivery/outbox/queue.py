"""Queue rendered records in ``sync.outbox``, set-based: only what changed, one row per record.

Rendered records are COPYed into a temp table; the payload hashes are computed by the database
(``core.jsonb_sha256``, the same function ``sync.destination_state.last_payload_sha256`` is
compared with, so both sides always agree); :func:`~donor_sync.delivery.outbox.modes.classify`
decides each record's action; :func:`apply_plan` then writes with one
``INSERT ... SELECT ... ON CONFLICT (destination, entity, record_key) WHERE state = 'pending'
DO UPDATE``: a newer change replaces the waiting row's payload instead of adding a second row,
and a record already in flight gets a pending row after it (the partial unique indexes allow one
of each), so an older payload never lands after a newer one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql

from donor_sync.delivery.contracts import RenderedRecord
from donor_sync.delivery.outbox.counts import EntityCounts, count_plan
from donor_sync.delivery.outbox.modes import REPLACEABLE, WITHDRAWABLE, classify
from donor_sync.delivery.outbox.renderer import MappedObject
from donor_sync.delivery.outbox.work_tables import (
    PLAN_TABLE,
    RENDERED_COLUMNS,
    RENDERED_TABLE,
    create_work_tables,
    drop_work_tables,
)

log = logging.getLogger(__name__)

WITHDRAWN_CODE = "withdrawn"
#: A queue writing at least this many rows refreshes the outbox's planner statistics.
ANALYZE_AFTER_ROWS = 10_000
_WITHDRAWN_MESSAGE = (
    "withdrawn before it was pushed: the record left core, the mapping no longer renders it, "
    "or it changed back to what the destination has"
)


def _json_default(value: object) -> Any:
    """Encode what a mapping may leave in a payload in one fixed way, so hashes stay stable."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"payload value of type {type(value).__name__} is not JSON")


def encode_payload(payload: Mapping[str, Any]) -> str:
    """Return the payload as compact JSON text (the database hashes its jsonb form)."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, default=_json_default)


_NULL = "\\N"


def _copy_text(value: str) -> str:
    """Escape a value for COPY's text format (backslash, and the tab, newline and CR separators)."""
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return value


def _text_array(values: Iterable[str]) -> str:
    """Return a text[] literal (COPY text format escapes it once more)."""
    quoted = ('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in sorted(values))
    return "{" + ",".join(quoted) + "}"


class RecordStager:
    """COPYs rendered records into the rendered work table, batch after batch.

    Later records win over earlier ones with the same (entity, record_key); :attr:`duplicates`
    says whether any key came twice (the classification only pays for deduplicating then).
    """

    def __init__(self, conn: psycopg.Connection) -> None:
        self._conn = conn
        self._seen: set[tuple[str, str]] = set()
        self.count = 0
        self.duplicates = False
        self._statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(RENDERED_TABLE), sql.SQL(", ").join(map(sql.Identifier, RENDERED_COLUMNS))
        )

    def add(self, records: Iterable[RenderedRecord]) -> None:
        """COPY one batch of records (formatted here as COPY text lines: a third of the cost of
        handing psycopg one value at a time)."""
        seen = self._seen
        lines: list[str] = []
        for record in records:
            key = (record.entity, record.record_key)
            if key in seen:
                self.duplicates = True
            seen.add(key)
            depends = (
                json.dumps([{"entity": d.entity, "record_key": d.record_key} for d in record.depends_on])
                if record.depends_on
                else "[]"
            )
            lines.append(
                f"{self.count}\t{_copy_text(record.entity)}\t{_copy_text(record.record_key)}"
                f"\t{_copy_text(str(record.donor_id)) if record.donor_id is not None else _NULL}"
                f"\t{record.operation.value}\t{_copy_text(encode_payload(record.payload))}"
                f"\t{_copy_text(depends)}"
                f"\t{_copy_text(_text_array(record.set_if_empty)) if record.set_if_empty else '{}'}"
                f"\t{int(record.priority)}\n"
            )
            self.count += 1
        if not lines:
            return
        with self._conn.cursor() as cur, cur.copy(self._statement) as copy:
            copy.write("".join(lines))


_REPLACEABLE_LIST = ", ".join(f"'{op}'" for op in REPLACEABLE)
_WITHDRAWABLE_LIST = ", ".join(f"'{op}'" for op in WITHDRAWABLE)

_INSERT = f"""
INSERT INTO sync.outbox AS o (destination, entity, record_key, donor_id, operation, payload, payload_sha256,
                              priority, depends_on, set_if_empty, run_id)
SELECT %(d)s, entity, record_key, donor_id, operation, payload, payload_sha256, priority, depends_on,
       set_if_empty, %(run)s::uuid
FROM {PLAN_TABLE}
WHERE action IN ('create', 'update', 'delete', 'archive')
ORDER BY entity, record_key
ON CONFLICT (destination, entity, record_key) WHERE state = 'pending' DO UPDATE
SET donor_id = EXCLUDED.donor_id, operation = EXCLUDED.operation, payload = EXCLUDED.payload,
    payload_sha256 = EXCLUDED.payload_sha256, priority = EXCLUDED.priority, depends_on = EXCLUDED.depends_on,
    set_if_empty = EXCLUDED.set_if_empty, run_id = EXCLUDED.run_id
WHERE o.operation IN ({_REPLACEABLE_LIST})
"""

# By primary key: the plan table has no statistics, and a join with it could be planned as a
# scan of the whole outbox per plan row.
_WITHDRAW = f"""
UPDATE sync.outbox SET state = 'canceled', error_code = %(code)s, error_message = %(message)s
WHERE outbox_id = ANY(%(ids)s) AND state = 'pending' AND operation IN ({_WITHDRAWABLE_LIST}, 'merge')
"""


def apply_plan(conn: psycopg.Connection, destination: str, *, run_id: str | UUID | None) -> tuple[int, int]:
    """Write the plan table's queued rows to the outbox and cancel its withdrawn ones.

    :return: rows written (inserted or replacing a pending row), rows withdrawn.
    """
    params = {"d": destination, "run": str(run_id) if run_id else None}
    written = conn.execute(_INSERT, params).rowcount
    ids = [r[0] for r in conn.execute(f"SELECT pending_id FROM {PLAN_TABLE} WHERE action = 'withdraw'")]
    withdrawn = 0
    if ids:
        withdrawn = conn.execute(
            _WITHDRAW, {"code": WITHDRAWN_CODE, "message": _WITHDRAWN_MESSAGE, "ids": ids}
        ).rowcount
    if written >= ANALYZE_AFTER_ROWS:
        _analyze_outbox(conn)
    return written, withdrawn


def _analyze_outbox(conn: psycopg.Connection) -> None:
    """Refresh the outbox's planner statistics after a large queue (first run, nightly full run),
    so the push's claims and the next run's joins are planned for its real size, not waiting for
    autovacuum. Skipped when the database role may not analyze it."""
    try:
        with conn.transaction():
            conn.execute("ANALYZE sync.outbox")
    except psycopg.errors.InsufficientPrivilege:
        log.info("not allowed to ANALYZE sync.outbox; autovacuum will")


def queue_records(
    conn: psycopg.Connection,
    destination: str,
    records: Iterable[RenderedRecord],
    *,
    objects: Sequence[MappedObject] = (),
    run_id: str | UUID | None = None,
) -> dict[str, EntityCounts]:
    """Queue the records whose payload changed; return what happened per entity (atomic, as
    :func:`~donor_sync.delivery.outbox.queue_destination`).

    The low-level path for records computed elsewhere: no core rows are read, so nothing is
    mirrored or withdrawn for records that were not passed, and the blast-radius guard does not
    run (:func:`donor_sync.delivery.outbox.queue_destination` does both).

    :param objects: the sync mode of each entity (entities not listed are upserted).
    """
    with conn.transaction():
        create_work_tables(conn, objects)
        stager = RecordStager(conn)
        stager.add(records)
        classify(conn, destination, full=False, merge_entity=None, deduplicate=stager.duplicates)
        counts = count_plan(conn)
        apply_plan(conn, destination, run_id=run_id)
        drop_work_tables(conn)
    log.info(
        "queued %s record(s) for %s, %s unchanged",
        sum(c.queued for c in counts.values()),
        destination,
        sum(c.unchanged for c in counts.values()),
    )
    return counts
