"""Write what standardization decided: staging rows, quarantine rows, dispositions, batch counts.

Rows are COPYed into temporary tables (CSV written by pyarrow, not row by row in Python), then
upserted with ``INSERT ... ON CONFLICT``: staging rows on raw_record_id, open quarantine rows on
raw_record_id, dispositions on raw_record_id. An upsert whose values did not change touches nothing,
so re-standardizing a batch adds no rows and no dead tuples; a changed staged row is marked
unresolved again (``resolved_at`` NULL) for resolve to pick up.

When a record's fate changes (a re-run under new rules, a fix, a newer version), what it left
behind is cleaned up: staging rows of records no longer staged are deleted, and open quarantine
rows of records now staged or skipped are closed with the matching resolution.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.csv as pa_csv
from psycopg import sql

from donor_sync.privacy.crypto.fields import seal_rows
from donor_sync.sources.extract import UNIDENTIFIED
from donor_sync.standardize.columns import DONOR_TABLE_COLUMNS, GIFT_TABLE_COLUMNS, MINOR_UNITS

DONORS_TMP = "__donor_sync__stage_donors"
GIFTS_TMP = "__donor_sync__stage_gifts"
QUARANTINE_TMP = "__donor_sync__stage_quarantine"
DISPOSITIONS_TMP = "__donor_sync__stage_dispositions"

QUARANTINE_COLUMNS = ("raw_record_id", "batch_id", "source", "entity", "source_id", "reasons")
DISPOSITION_COLUMNS = (
    "raw_record_id",
    "batch_id",
    "disposition",
    "reason",
    "source",
    "object_entity",
    "object_id",
    "source_updated_at",
)

#: Columns of the gifts temp table: numeric amounts travel as minor units (see MINOR_UNITS).
GIFT_COPY_COLUMNS = (
    *(c for c in GIFT_TABLE_COLUMNS if c not in MINOR_UNITS),
    "fee_amount_minor",
    "refunded_amount_minor",
)
_UNKNOWN_ENTITY_MESSAGE = (
    "No projection reads this kind of record and no skip rule names it (skip_entities in "
    "standardize.yaml): add one, or discard it."
)
#: An item a source sent without a usable id (donor_sync.sources.extract.UNIDENTIFIED).
_MISSING_ID_MESSAGE = (
    "The source sent this item without a usable id, or not as a JSON object: it cannot be matched "
    "with anything. The item is kept in the raw record; correct it at the source, or discard it."
)


def _arrow_column(name: str, values: pd.Series) -> pa.Array:
    """Return one column as Arrow, in a form COPY (FORMAT csv) reads back exactly.

    Conversions are vectorized (pyarrow from numpy): no per-value Python on the hot path.
    """
    if name == "utm_extra":
        objs = values.to_numpy(dtype=object)
        filled = np.flatnonzero(np.fromiter((bool(v) for v in objs), dtype=bool, count=len(objs)))
        texts = np.full(len(objs), "{}", dtype=object)
        for i in filled.tolist():
            texts[i] = objs[i] if isinstance(objs[i], str) else json.dumps(objs[i], ensure_ascii=False)
        return pa.array(texts, type=pa.large_string())
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        micros = values.dt.tz_convert("UTC") if values.dt.tz is not None else values.dt.tz_localize("UTC")
        return pa.array(micros.astype("datetime64[us, UTC]"), type=pa.timestamp("us", tz="UTC"))
    if values.dtype == bool or str(values.dtype) == "boolean":
        return pa.array(values.astype("boolean"), type=pa.bool_())
    if pd.api.types.is_integer_dtype(values.dtype):
        return pa.array(values.astype("Int64"), type=pa.int64())
    if values.dtype == object:
        objs = values.to_numpy(dtype=object)
        if len(objs) and not all(o is None or isinstance(o, str) for o in objs[:64]):
            objs = np.array([None if _missing(o) else str(o) for o in objs], dtype=object)
        else:
            objs = np.where(pd.isna(values).to_numpy(dtype=bool), None, objs)
        return pa.array(objs, type=pa.large_string(), from_pandas=True)
    return pa.array(values.astype("string[pyarrow]"), type=pa.large_string())


def _missing(value: object) -> bool:
    return (
        value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value))
    )


def _contiguous(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Return ``array`` as one chunk.

    A pandas column concatenated from frames keeps its Arrow chunks, empty ones included, and
    pyarrow 26's CSV writer emits NUL bytes for a column whose first chunk is empty (found by the
    fuzz test: COPY then fails with "invalid byte sequence for encoding UTF8: 0x00").
    """
    return array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array


def copy_frame(conn: psycopg.Connection, table: str, frame: pd.DataFrame, columns: Sequence[str]) -> None:
    """COPY ``frame[columns]`` into ``table`` as CSV (NULL unquoted and empty, strings quoted)."""
    if not len(frame):
        return
    arrow = pa.table({name: _contiguous(_arrow_column(name, frame[name])) for name in columns})
    buffer = io.BytesIO()
    pa_csv.write_csv(arrow, buffer, pa_csv.WriteOptions(include_header=False))
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    with conn.cursor() as cur, cur.copy(statement) as copy:
        copy.write(buffer.getvalue())


#: Domain-typed staging columns: the temp tables hold their base type, so each value is checked
#: once, on the insert into staging (checking in the temp table too cost about 40% of its COPY).
_DOMAIN_COLUMNS = frozenset({"source", "currency", "phone", "country_code"})


def _temp_like(conn: psycopg.Connection, name: str, source: str, columns: Iterable[str]) -> None:
    conn.execute(
        sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} AS SELECT {} FROM {} WITH NO DATA").format(
            sql.Identifier(name),
            sql.SQL(", ").join(
                sql.SQL("{c}::text AS {c}").format(c=sql.Identifier(c))
                if c in _DOMAIN_COLUMNS
                else sql.Identifier(c)
                for c in columns
            ),
            sql.SQL(source),  # a fixed table name
        )
    )
    conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(name)))


def _upsert(
    table: str,
    temp: str,
    columns: Sequence[str],
    *,
    reset: Sequence[str],
    expressions: Mapping[str, sql.Composable] | None = None,
) -> sql.Composed:
    """Return INSERT ... ON CONFLICT (raw_record_id) DO UPDATE ... only where something changed.

    :param expressions: columns computed from the temp table's columns instead of copied.
    """
    expressions = expressions or {}
    cols = sql.SQL(", ").join(map(sql.Identifier, columns))
    values = sql.SQL(", ").join(expressions.get(c, sql.Identifier(c)) for c in columns)
    updated = [c for c in columns if c != "raw_record_id"]
    sets = sql.SQL(", ").join(
        [sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c)) for c in updated]
        + [sql.SQL("standardized_at = now()")]
        + [sql.SQL("{} = NULL").format(sql.Identifier(c)) for c in reset]
    )
    old = sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in updated)
    new = sql.SQL(", ").join(sql.SQL("EXCLUDED.{}").format(sql.Identifier(c)) for c in updated)
    return sql.SQL(
        "INSERT INTO {table} AS t ({cols}) SELECT {values} FROM {temp} "
        "ON CONFLICT (raw_record_id) DO UPDATE SET {sets} WHERE ({old}) IS DISTINCT FROM ({new})"
    ).format(
        table=sql.SQL(table),  # a fixed table name
        cols=cols,
        values=values,
        temp=sql.Identifier(temp),
        sets=sets,
        old=old,
        new=new,
    )


#: staging.gifts amounts from exact minor units: minor / 10^exponent (numeric division is exact here).
_AMOUNTS: dict[str, sql.Composable] = {
    "amount": sql.SQL("amount_minor / 10::numeric ^ currency_exponent"),
    "fee_amount": sql.SQL("fee_amount_minor / 10::numeric ^ currency_exponent"),
    "refunded_amount": sql.SQL("coalesce(refunded_amount_minor, 0) / 10::numeric ^ currency_exponent"),
}


def write_chunk(
    conn: psycopg.Connection,
    *,
    donors: pd.DataFrame,
    gifts: pd.DataFrame,
    quarantine: pd.DataFrame,
    dispositions: pd.DataFrame,
    actor: str,
    cleanup: bool,
    staged_resolution: tuple[str, Mapping[str, Any] | None, str | None] = ("fixed", {}, None),
) -> set[int]:
    """Write one chunk's outcome (not committed); return the batches whose counts other records changed.

    :param cleanup: remove what earlier standardizations of these records left (staging rows of
        records no longer staged, open quarantine rows of records now staged or skipped). Off on a
        batch's first standardization, where there is nothing to clean.
    :param staged_resolution: (resolution, fix, note) closing the open quarantine row of a record
        that is now staged: 'fixed' with the overrides, or 'released_as_is'.
    """
    _temp_like(conn, DONORS_TMP, "staging.donors", DONOR_TABLE_COLUMNS)
    _temp_like(conn, GIFTS_TMP, "staging.gifts", [c for c in GIFT_TABLE_COLUMNS if c not in MINOR_UNITS])
    for extra in ("fee_amount_minor", "refunded_amount_minor"):
        conn.execute(
            sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} bigint").format(
                sql.Identifier(GIFTS_TMP), sql.Identifier(extra)
            )
        )
    _temp_like(conn, QUARANTINE_TMP, "staging.quarantine", QUARANTINE_COLUMNS[:-1])
    conn.execute(
        sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS reasons jsonb").format(
            sql.Identifier(QUARANTINE_TMP)
        )
    )
    conn.execute(
        sql.SQL(
            "CREATE TEMP TABLE IF NOT EXISTS {} (raw_record_id bigint, batch_id bigint, disposition text,"
            " reason text, source text, object_entity text, object_id text, source_updated_at timestamptz)"
        ).format(sql.Identifier(DISPOSITIONS_TMP))
    )
    conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(DISPOSITIONS_TMP)))
    copy_frame(conn, DONORS_TMP, donors, DONOR_TABLE_COLUMNS)
    copy_frame(conn, GIFTS_TMP, gifts, GIFT_COPY_COLUMNS)
    copy_frame(conn, QUARANTINE_TMP, quarantine, QUARANTINE_COLUMNS)
    copy_frame(conn, DISPOSITIONS_TMP, dispositions, DISPOSITION_COLUMNS)

    if cleanup:
        _cleanup(conn, actor, staged_resolution)
    conn.execute(_upsert("staging.donors", DONORS_TMP, DONOR_TABLE_COLUMNS, reset=("resolved_at",)))
    conn.execute(
        _upsert("staging.gifts", GIFTS_TMP, GIFT_TABLE_COLUMNS, reset=("resolved_at",), expressions=_AMOUNTS)
    )
    conn.execute(
        sql.SQL(
            "INSERT INTO staging.quarantine AS q"
            " (raw_record_id, batch_id, source, entity, source_id, reasons)"
            " SELECT raw_record_id, batch_id, source, entity, source_id, reasons FROM {}"
            " ON CONFLICT (raw_record_id) WHERE released_at IS NULL"
            " DO UPDATE SET reasons = EXCLUDED.reasons, batch_id = EXCLUDED.batch_id"
            " WHERE q.reasons IS DISTINCT FROM EXCLUDED.reasons"
            " OR q.batch_id IS DISTINCT FROM EXCLUDED.batch_id"
        ).format(sql.Identifier(QUARANTINE_TMP))
    )
    upsert_dispositions(conn, DISPOSITIONS_TMP)
    return close_superseded(conn, DISPOSITIONS_TMP, actor)


def upsert_dispositions(conn: psycopg.Connection, temp: str) -> None:
    """Record each raw record's disposition from a temp table.

    The table has raw_record_id, batch_id, disposition and reason.
    """
    conn.execute(
        sql.SQL(
            "INSERT INTO staging.dispositions AS d (raw_record_id, batch_id, disposition, reason)"
            " SELECT raw_record_id, batch_id, disposition, reason FROM {}"
            " ON CONFLICT (raw_record_id) DO UPDATE SET batch_id = EXCLUDED.batch_id,"
            " disposition = EXCLUDED.disposition, reason = EXCLUDED.reason, decided_at = now()"
            " WHERE (d.batch_id, d.disposition, d.reason) IS DISTINCT FROM"
            " (EXCLUDED.batch_id, EXCLUDED.disposition, EXCLUDED.reason)"
        ).format(sql.Identifier(temp))
    )


def _cleanup(
    conn: psycopg.Connection, actor: str, staged_resolution: tuple[str, Mapping[str, Any] | None, str | None]
) -> None:
    disp = sql.Identifier(DISPOSITIONS_TMP)
    for table, temp in (("staging.donors", DONORS_TMP), ("staging.gifts", GIFTS_TMP)):
        conn.execute(
            sql.SQL(
                "DELETE FROM {table} s USING {disp} d WHERE s.raw_record_id = d.raw_record_id"
                " AND NOT EXISTS (SELECT 1 FROM {temp} n WHERE n.raw_record_id = s.raw_record_id)"
            ).format(table=sql.SQL(table), disp=disp, temp=sql.Identifier(temp))
        )
    resolution, fix, note = staged_resolution
    closed = conn.execute(
        sql.SQL(
            "UPDATE staging.quarantine q SET released_at = now(), released_by = %(actor)s,"
            " resolution = CASE WHEN d.disposition = 'skipped' THEN 'superseded' ELSE %(resolution)s END,"
            " fix = CASE WHEN d.disposition = 'staged' AND %(resolution)s = 'fixed' THEN %(fix)s::jsonb END,"
            " note = CASE WHEN d.disposition = 'skipped' THEN 'skipped: ' || d.reason ELSE %(note)s END"
            " FROM {disp} d WHERE q.raw_record_id = d.raw_record_id AND q.released_at IS NULL"
            " AND d.disposition <> 'quarantined' RETURNING q.quarantine_id"
        ).format(disp=disp),
        {
            "actor": actor,
            "resolution": resolution,
            "fix": json.dumps(dict(fix or {})),
            "note": note or "passes the rules when standardized again",
        },
    ).fetchall()
    if resolution == "fixed":  # the operator's values (PII) are encrypted at rest (encryption.yaml)
        seal_rows(conn, "staging.quarantine", [r[0] for r in closed])


def close_superseded(conn: psycopg.Connection, temp: str, actor: str) -> set[int]:
    """Close open quarantine rows of older versions of the objects in ``temp`` as 'superseded'.

    Their dispositions become skipped (superseded_version); return the batches they belong to,
    whose counts must be refreshed.
    """
    if conn.execute(
        "SELECT NOT EXISTS (SELECT 1 FROM staging.quarantine WHERE released_at IS NULL)"
    ).fetchone() == (True,):
        return set()
    rows = conn.execute(
        sql.SQL(
            """
            WITH closed AS (
                UPDATE staging.quarantine q
                   SET released_at = now(), released_by = %(actor)s, resolution = 'superseded',
                       note = 'a newer version arrived: raw record ' || n.raw_record_id
                  FROM {temp} n
                 WHERE q.released_at IS NULL AND n.disposition <> 'skipped'
                   AND q.source = n.source AND q.entity = n.object_entity AND q.source_id = n.object_id
                   AND q.raw_record_id <> n.raw_record_id
                   -- CSV rows (not in raw.records) carry no source time: their order is their id
                   AND (coalesce((SELECT old.source_updated_at FROM raw.records old
                                   WHERE old.raw_record_id = q.raw_record_id), '-infinity'),
                        q.raw_record_id)
                       < (coalesce(n.source_updated_at, '-infinity'), n.raw_record_id)
                RETURNING q.raw_record_id, q.batch_id
            )
            UPDATE staging.dispositions d SET disposition = 'skipped', reason = 'superseded_version',
                   decided_at = now()
              FROM closed c WHERE d.raw_record_id = c.raw_record_id
            RETURNING c.batch_id
            """
        ).format(temp=sql.Identifier(temp)),
        {"actor": actor},
    ).fetchall()
    return {int(r[0]) for r in rows}


def write_entity_outcomes(
    conn: psycopg.Connection,
    *,
    skipped_parts: Sequence[tuple[int, str, str, str]],
    unknown_parts: Sequence[tuple[int, str, str]],
    superseded: Sequence[tuple[int, int]],
    actor: str,
    cleanup: bool,
) -> None:
    """Record the records decided before projection (not committed).

    :param skipped_parts: (batch_id, source, entity, reason) of kinds deliberately not staged.
    :param unknown_parts: (batch_id, source, entity) of kinds with neither a projection nor a skip
        rule: quarantined, so that someone sees them.
    :param superseded: (raw_record_id, batch_id) of versions a newer one in the run replaces.
    """
    temp = "__donor_sync__entity_dispositions"
    conn.execute(
        sql.SQL(
            "CREATE TEMP TABLE IF NOT EXISTS {}"
            " (raw_record_id bigint, batch_id bigint, disposition text, reason text)"
        ).format(sql.Identifier(temp))
    )
    conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(temp)))
    kinds = [(b, s, e, "skipped", r) for b, s, e, r in skipped_parts] + [
        (b, s, e, "quarantined", None) for b, s, e in unknown_parts
    ]
    if kinds:
        conn.execute(
            sql.SQL(
                "INSERT INTO {temp} SELECT r.raw_record_id, r.batch_id, k.disposition, k.reason"
                " FROM raw.all_records({batches}::bigint[]) r"
                " JOIN (VALUES {kinds}) AS k (batch_id, source, entity, disposition, reason)"
                " ON r.batch_id = k.batch_id AND r.source = k.source AND r.entity = k.entity"
            ).format(
                temp=sql.Identifier(temp),
                kinds=sql.SQL(", ").join(
                    sql.SQL("({}::bigint, {}, {}, {}, {}::text)").format(*map(sql.Literal, kind))
                    for kind in kinds
                ),
                batches=sql.Literal(sorted({k[0] for k in kinds})),
            )
        )
    if superseded:
        frame = pd.DataFrame(
            {
                "raw_record_id": [r for r, _ in superseded],
                "batch_id": [b for _, b in superseded],
                "disposition": "skipped",
                "reason": "superseded_version",
            }
        )
        copy_frame(conn, temp, frame, ("raw_record_id", "batch_id", "disposition", "reason"))
    if unknown_parts:
        conn.execute(
            sql.SQL(
                "INSERT INTO staging.quarantine AS q"
                " (raw_record_id, batch_id, source, entity, source_id, reasons)"
                " SELECT r.raw_record_id, r.batch_id, r.source, r.entity, r.source_id,"
                " jsonb_build_array(CASE WHEN r.entity = {unidentified}"
                " THEN jsonb_build_object('rule', 'source_record', 'field', 'source_id',"
                " 'code', 'missing_id', 'message', {missing_id}::text, 'value', NULL)"
                " ELSE jsonb_build_object('rule', 'skip_entities', 'field', NULL,"
                " 'code', 'unknown_entity', 'message', {message}::text, 'value', r.entity) END)"
                " FROM {temp} d JOIN raw.all_records({batches}::bigint[]) r USING (raw_record_id)"
                " WHERE d.disposition = 'quarantined'"
                " ON CONFLICT (raw_record_id) WHERE released_at IS NULL DO NOTHING"
            ).format(
                temp=sql.Identifier(temp),
                message=sql.Literal(_UNKNOWN_ENTITY_MESSAGE),
                unidentified=sql.Literal(UNIDENTIFIED),
                missing_id=sql.Literal(_MISSING_ID_MESSAGE),
                batches=sql.Literal(sorted({part[0] for part in unknown_parts})),
            )
        )
    if cleanup:
        for table in ("staging.donors", "staging.gifts"):
            conn.execute(
                sql.SQL(
                    "DELETE FROM {table} s USING {temp} d WHERE s.raw_record_id = d.raw_record_id"
                ).format(
                    table=sql.SQL(table),  # a fixed table name
                    temp=sql.Identifier(temp),
                )
            )
        conn.execute(
            sql.SQL(
                "UPDATE staging.quarantine q SET released_at = now(), released_by = %s,"
                " resolution = 'superseded',"
                " note = 'skipped: ' || d.reason FROM {temp} d"
                " WHERE q.raw_record_id = d.raw_record_id AND q.released_at IS NULL"
                " AND d.disposition = 'skipped'"
            ).format(temp=sql.Identifier(temp)),
            (actor,),
        )
    upsert_dispositions(conn, temp)


def refresh_batches(conn: psycopg.Connection, batch_ids: Iterable[int], *, mark_standardized: bool) -> None:
    """Recount staged/quarantined/skipped per batch from the dispositions (and mark them standardized)."""
    ids = sorted(set(batch_ids))
    if not ids:
        return
    conn.execute(
        """
        UPDATE raw.batches b
           SET records_staged = coalesce(c.staged, 0),
               records_quarantined = coalesce(c.quarantined, 0),
               records_skipped = coalesce(c.skipped, 0),
               status = CASE WHEN %(mark)s AND b.status IN ('loaded', 'standardized') THEN 'standardized'
                             ELSE b.status END,
               finished_at = CASE WHEN %(mark)s THEN now() ELSE b.finished_at END
          FROM unnest(%(ids)s::bigint[]) AS i(batch_id)
          LEFT JOIN (
              SELECT batch_id,
                     count(*) FILTER (WHERE disposition = 'staged') AS staged,
                     count(*) FILTER (WHERE disposition = 'quarantined') AS quarantined,
                     count(*) FILTER (WHERE disposition = 'skipped') AS skipped
                FROM staging.dispositions WHERE batch_id = ANY(%(ids)s) GROUP BY batch_id
          ) c USING (batch_id)
         WHERE b.batch_id = i.batch_id
        """,
        {"ids": ids, "mark": mark_standardized},
    )
