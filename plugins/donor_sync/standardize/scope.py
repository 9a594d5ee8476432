"""What a standardization covers: the batches' kinds of records, superseded versions, and chunks.

It runs first, set-based, over all the batches at once:

1. :func:`discover` counts each batch's records per (source, entity) with their raw_record_id
   span (raw columns only: no payload is read);
2. :func:`find_superseded` names every older version of an object that a newer version in the
   same run replaces, so a newer version in a later chunk still supersedes an older one in an
   earlier chunk. Only objects seen more than once are ranked (a hash aggregate finds them; the
   window function sorts just those). Which version wins: the latest ``source_updated_at``, then
   the projection's priority (a listed Stripe charge beats an event of the same second: it was
   read after the event fired), then the highest raw_record_id (landed last);
3. :func:`chunk_ranges` cuts the projected records into raw_record_id ranges of about
   ``chunk_size`` records, so memory stays bounded whatever the batch size.

Each projection then reads one range at a time, leaving out the superseded versions
(:func:`chunk_scope`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg
from psycopg import sql

from donor_sync.standardize.projections import Projection

SUPERSEDED = "__donor_sync__superseded"

#: Disposition reason of an older version of an object that a newer one in the same run replaces.
SUPERSEDED_REASON = "superseded_version"


@dataclass(frozen=True)
class BatchPart:
    """The records of one batch of one (source, entity), and the raw_record_id span they occupy."""

    batch_id: int
    source: str
    entity: str
    records: int
    low: int
    high: int

    @property
    def key(self) -> tuple[str, str]:
        """Return (source, entity)."""
        return (self.source, self.entity)


def discover(conn: psycopg.Connection, batch_ids: Sequence[int]) -> list[BatchPart]:
    """Return each batch's (source, entity) parts with their counts and raw_record_id spans."""
    rows = conn.execute(
        "SELECT batch_id, source::text, entity, count(*), min(raw_record_id), max(raw_record_id)"
        " FROM raw.records WHERE batch_id = ANY(%(ids)s) GROUP BY 1, 2, 3"
        " UNION ALL"  # CSV rows: each file's count and id span are on its raw.csv_files row
        " SELECT batch_id, source::text, 'csv_row', sum(rows), min(first_raw_record_id),"
        " max(last_raw_record_id) FROM raw.csv_files WHERE batch_id = ANY(%(ids)s) AND rows > 0"
        " GROUP BY 1, 2, 3 ORDER BY 5",
        {"ids": list(batch_ids)},
    ).fetchall()
    return [BatchPart(int(b), str(s), str(e), int(n), int(lo), int(hi)) for b, s, e, n, lo, hi in rows]


def find_superseded(
    conn: psycopg.Connection,
    projections: Sequence[Projection],
    parts: Sequence[BatchPart],
    *,
    raw_record_ids: Sequence[int] | None = None,
) -> int:
    """Fill the temporary table of superseded versions among the parts' projected records; return its size.

    :param raw_record_ids: only these records are candidates to be superseded (a fix re-standardizes
        one record: it is superseded only by a newer version in the same batches).
    """
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(SUPERSEDED)))
    conn.execute(
        sql.SQL("CREATE TEMP TABLE {} (raw_record_id bigint PRIMARY KEY, batch_id bigint NOT NULL)").format(
            sql.Identifier(SUPERSEDED)
        )
    )
    selects: list[sql.Composable] = []
    for projection in projections:
        batches = sorted({p.batch_id for p in parts if p.key == projection.key})
        if not batches:
            continue
        selects.append(
            sql.SQL(
                "SELECT r.raw_record_id, r.batch_id, r.source::text AS source, {entity} AS object_entity,"
                " {object_id} AS object_id, r.source_updated_at, {priority} AS priority"
                " FROM {rows} {lateral}"
                " WHERE r.source = {source} AND r.entity = {kind} AND r.batch_id = ANY({batches})"
            ).format(
                rows=projection.rows(batches),
                entity=projection.identity.object_entity,
                object_id=projection.identity.object_id,
                priority=sql.Literal(projection.priority),
                lateral=projection.identity.lateral,
                source=sql.Literal(projection.source),
                kind=sql.Literal(projection.entity),
                batches=sql.Literal(batches),
            )
        )
    if not selects:
        return 0
    candidates = (
        sql.SQL("WHERE rank > 1 AND raw_record_id = ANY({})").format(sql.Literal(list(raw_record_ids)))
        if raw_record_ids is not None
        else sql.SQL("WHERE rank > 1")
    )
    count = conn.execute(
        sql.SQL(
            """
            WITH versions AS MATERIALIZED ({versions}),
            repeated AS MATERIALIZED (  -- computed once even if fresh records have no statistics yet
                SELECT source, object_entity, object_id FROM versions
                GROUP BY 1, 2, 3 HAVING count(*) > 1
            )
            INSERT INTO {superseded}
            SELECT raw_record_id, batch_id FROM (
                SELECT v.raw_record_id, v.batch_id,
                       row_number() OVER (PARTITION BY v.source, v.object_entity, v.object_id
                                          ORDER BY v.source_updated_at DESC NULLS LAST, v.priority DESC,
                                                   v.raw_record_id DESC) AS rank
                FROM versions v JOIN repeated USING (source, object_entity, object_id)
            ) ranked
            {candidates}
            """
        ).format(
            versions=sql.SQL(" UNION ALL ").join(selects),
            superseded=sql.Identifier(SUPERSEDED),
            candidates=candidates,
        )
    ).rowcount
    conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(SUPERSEDED)))
    return int(count)


def superseded_ids(conn: psycopg.Connection) -> list[tuple[int, int]]:
    """Return the (raw_record_id, batch_id) of every superseded version found."""
    rows = conn.execute(sql.SQL("SELECT raw_record_id, batch_id FROM {}").format(sql.Identifier(SUPERSEDED)))
    return [(int(r), int(b)) for r, b in rows.fetchall()]


def chunk_ranges(parts: Sequence[BatchPart], chunk_size: int) -> list[tuple[int, int]]:
    """Cut the parts' raw_record_id spans into ranges of about ``chunk_size`` records each.

    Records of one batch are nearly contiguous ids (one COPY), so a span is split in proportion to
    its count; overlapping spans (batches loaded at the same time) are merged first.
    """
    spans: list[list[int]] = []
    for part in sorted(parts, key=lambda p: p.low):
        if spans and part.low <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], part.high)
            spans[-1][2] += part.records
        else:
            spans.append([part.low, part.high, part.records])
    ranges: list[tuple[int, int]] = []
    for low, high, records in spans:
        pieces = max(1, -(-records // chunk_size))
        width = (high - low + 1) / pieces
        edges = [low + round(width * i) for i in range(pieces)] + [high + 1]
        ranges.extend((edges[i], edges[i + 1] - 1) for i in range(pieces) if edges[i + 1] > edges[i])
    return ranges


def chunk_scope(batch_ids: Sequence[int], low: int, high: int) -> sql.Composable:
    """Return the projection scope of one chunk: these batches, this id range, no superseded version."""
    return sql.SQL(
        "r.batch_id = ANY({batches}) AND r.raw_record_id BETWEEN {low} AND {high}"
        " AND NOT EXISTS (SELECT 1 FROM {superseded} s WHERE s.raw_record_id = r.raw_record_id)"
    ).format(
        batches=sql.Literal(list(batch_ids)),
        low=sql.Literal(low),
        high=sql.Literal(high),
        superseded=sql.Identifier(SUPERSEDED),
    )


def records_scope(raw_record_ids: Sequence[int]) -> sql.Composable:
    """Return the projection scope of given raw records (a quarantine fix or release)."""
    return sql.SQL("r.raw_record_id = ANY({ids})").format(ids=sql.Literal(list(raw_record_ids)))
