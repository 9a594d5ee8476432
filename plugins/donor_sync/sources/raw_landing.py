"""Land records in ``raw.records`` exactly as received, through COPY, idempotently.

Records are copied into a temporary table, then inserted with ``ON CONFLICT DO NOTHING`` on
(source, entity, source_id, payload hash): re-reading a window adds nothing that is already held,
while a changed object lands as a new version.

A few things JSON parsers accept have no jsonb form: the NUL character, lone UTF-16 surrogates,
NaN and the infinities. Postgres would refuse the whole batch over one of them (and quote the
record in its error), so :func:`payload_json` stores such a payload with each NUL or lone
surrogate as U+FFFD (standardization quarantines a value holding it as ``invalid_encoding``) and
each non-finite number as its JSON token in a string (``"NaN"``), the same way on every read.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg

log = logging.getLogger(__name__)

#: A lone surrogate as json.dumps escapes it: a high one not followed by a low one, or a low one alone.
_LONE_SURROGATE = re.compile(
    r"\\ud[89ab][0-9a-f]{2}(?!\\ud[c-f])|(?<!\\ud[89ab][0-9a-f]{2})\\ud[c-f][0-9a-f]{2}"
)
_SURROGATE_CHAR = re.compile("[\ud800-\udfff]")
_NON_FINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}


def _storable(value: Any) -> Any:
    """Return ``value`` with what jsonb cannot hold replaced (see the module docstring)."""
    if isinstance(value, str):
        return _SURROGATE_CHAR.sub("\ufffd", value.replace("\x00", "\ufffd"))
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else _NON_FINITE[value]
    if isinstance(value, dict):
        return {_storable(str(k)): _storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_storable(v) for v in value]
    return value


def payload_json(payload: Any) -> str:
    """Return ``payload`` as JSON text that Postgres accepts as jsonb (unchanged when it already is)."""
    try:
        text = json.dumps(payload, allow_nan=False)
    except ValueError:  # NaN or an infinity
        return json.dumps(_storable(payload))
    if "\\u0000" in text or ("\\ud" in text and _LONE_SURROGATE.search(text)):
        return json.dumps(_storable(payload))
    return text


@dataclass(frozen=True)
class RawRecord:
    """One object as received from a source."""

    entity: str
    source_id: str
    payload: dict[str, Any]
    source_updated_at: datetime | None
    #: raw.webhook_inbox event it came from (channel 'webhook' only): lineage for purges and audits.
    webhook_event_id: int | None = None


def open_batch(
    conn: psycopg.Connection,
    *,
    source: str,
    stream: str,
    channel: str,
    run_id: UUID | None,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
) -> int:
    """Record the start of one extraction and return its batch id (committed, so a failure stays visible)."""
    row = conn.execute(
        """
        INSERT INTO raw.batches (run_id, source, stream, channel, window_start, window_end)
        VALUES (%s, %s, %s, %s, %s, %s) RETURNING batch_id
        """,
        (run_id, source, stream, channel, window_start, window_end),
    ).fetchone()
    conn.commit()
    assert row is not None
    return int(row[0])


def land_records(
    conn: psycopg.Connection, *, batch_id: int, source: str, channel: str, records: Iterable[RawRecord]
) -> tuple[int, int]:
    """COPY ``records`` into ``raw.records`` for ``batch_id``; return (read, newly loaded). Not committed."""
    fetched_at = datetime.now(UTC)
    conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS __donor_sync__landing ("
        " entity text, source_id text, source_updated_at timestamptz, payload jsonb, webhook_event_id bigint)"
        " ON COMMIT DELETE ROWS"
    )
    read = 0
    with conn.cursor() as cur:
        with cur.copy(
            "COPY __donor_sync__landing (entity, source_id, source_updated_at, payload, webhook_event_id)"
            " FROM STDIN"
        ) as copy:
            for record in records:
                copy.write_row(
                    (
                        record.entity,
                        record.source_id,
                        record.source_updated_at,
                        payload_json(record.payload),
                        record.webhook_event_id,
                    )
                )
                read += 1
        loaded = cur.execute(
            """
            INSERT INTO raw.records
                (batch_id, source, entity, source_id, channel, source_updated_at, fetched_at, payload,
                 webhook_event_id)
            SELECT %s, %s, entity, source_id, %s, source_updated_at, %s, payload, webhook_event_id
            FROM __donor_sync__landing
            ON CONFLICT (source, entity, source_id, payload_sha256) DO NOTHING
            """,
            (batch_id, source, channel, fetched_at),
        ).rowcount
        cur.execute("TRUNCATE __donor_sync__landing")
    return read, loaded


def finish_batch(
    conn: psycopg.Connection,
    batch_id: int,
    *,
    read: int,
    loaded: int,
    cursor: tuple[datetime, str] | None,
    reported: int | None = None,
) -> None:
    """Mark the batch loaded with its counts and the cursor it reached, and commit with the records."""
    conn.execute(
        """
        UPDATE raw.batches
           SET status = 'loaded', records_read = %s, records_loaded = %s, records_reported = %s,
               cursor_ts = %s, cursor_id = %s, loaded_at = now()
         WHERE batch_id = %s
        """,
        (read, loaded, reported, cursor[0] if cursor else None, cursor[1] if cursor else None, batch_id),
    )
    conn.commit()


def fail_batch(conn: psycopg.Connection, batch_id: int, error_class: str) -> None:
    """Mark the batch failed with the error's class only (never its message: it may hold data)."""
    conn.rollback()
    conn.execute(
        "UPDATE raw.batches SET status = 'failed', error = %s, finished_at = now() WHERE batch_id = %s",
        (error_class, batch_id),
    )
    conn.commit()


#: How long after it started a batch still 'extracting' is abandoned although its run still reads
#: 'running' (or it has no run): far beyond any DAG run (dagrun_timeout is at most 6 hours), so
#: that run was killed without its failure callback closing it.
ABANDON_AFTER = timedelta(hours=24)

_ABANDON = """
WITH due AS (
    SELECT b.batch_id,
           CASE WHEN r.status <> 'running'
                THEN 'abandoned: its run ended (' || r.status || ') while it was extracting'
                ELSE 'abandoned: still extracting ' || %(hours)s || ' h after it started, '
                     || CASE WHEN r.run_id IS NULL THEN 'without a run' ELSE 'its run never closed' END
           END AS reason
    FROM raw.batches b
    LEFT JOIN sync.runs r ON r.run_id = b.run_id
    WHERE b.status = 'extracting'
      AND (r.status <> 'running' OR b.started_at < %(before)s)
    FOR UPDATE OF b SKIP LOCKED
)
UPDATE raw.batches b
   SET status = 'abandoned', error = due.reason, finished_at = now()
  FROM due
 WHERE b.batch_id = due.batch_id AND b.status = 'extracting'
RETURNING b.batch_id
"""


def abandon_orphaned_batches(
    conn: psycopg.Connection, *, now: datetime | None = None, after: timedelta = ABANDON_AFTER
) -> list[int]:
    """Mark 'abandoned' the batches a killed extraction left 'extracting'; commit; return their ids.

    An extraction commits its records together with the batch's 'loaded', and an exception marks
    the batch 'failed'; a worker killed mid-read does neither. Such a batch is abandoned once its
    run is no longer running: the run closed (success, failed, canceled), or the batch started
    more than ``after`` ago (its run never closed, or it has none). A batch of a run still
    running is never touched before then: a retried task of that run may still be reading. The
    reason goes to ``raw.batches.error``. An abandoned batch holds no records, moves no watermark
    and is never standardized. ``open_run`` calls this at the start of every DAG run.

    :param now: the time ``after`` is measured back from (default: now).
    """
    before = (now or datetime.now(UTC)) - after
    hours = f"{after.total_seconds() / 3600:g}"
    rows = conn.execute(_ABANDON, {"before": before, "hours": hours}).fetchall()
    conn.commit()
    ids = sorted(int(r[0]) for r in rows)
    if ids:
        shown = ", ".join(map(str, ids[:20])) + (f" and {len(ids) - 20} more" if len(ids) > 20 else "")
        log.warning(
            "%s extraction batch(es) left 'extracting' by a killed task marked abandoned: %s", len(ids), shown
        )
    return ids
