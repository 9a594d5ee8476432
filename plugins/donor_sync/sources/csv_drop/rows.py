"""Read landed CSV rows back: by file, batch, source or raw_record_id, with their cells by header.

For the quarantine's display of a record, tests and ad-hoc checks; standardization reads the rows
set-based in SQL (``raw.csv_file_rows``), not through this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql


@dataclass(frozen=True)
class CsvRow:
    """One landed CSV row.

    :param source_id: the id cell, trimmed, else ``<file sha256>:r<row number>``.
    :param line: the physical line the row starts on (1 is the header), when known.
    :param cells: header -> cell, exactly as received (repaired rows: U+FFFD for invalid bytes).
    :param encoding_errors: headers whose cells had bytes invalid in the file's encoding.
    :param raw_line: the original bytes of a repaired row.
    """

    raw_record_id: int
    csv_file_id: int
    batch_id: int
    source: str
    source_id: str
    line: int | None
    row_number: int
    cells: dict[str, str]
    encoding_errors: list[str]
    raw_line: bytes | None


_SELECT = sql.SQL(
    """
    SELECT r.raw_record_id, f.csv_file_id, f.batch_id, f.source::text,
           raw.csv_source_id(r.source_id, f.sha256, r.row_number), r.line, r.row_number,
           jsonb_object(f.headers, r.cells), coalesce(r.encoding_errors, '{{}}'), r.raw_line
      FROM raw.csv_files f CROSS JOIN LATERAL raw.csv_file_rows(f.csv_file_id) r
     WHERE {where}
     ORDER BY r.raw_record_id
    """
)


def _rows(conn: psycopg.Connection, where: sql.Composable, params: tuple[Any, ...]) -> list[CsvRow]:
    found = conn.execute(_SELECT.format(where=where), params).fetchall()
    return [
        CsvRow(
            int(rid),
            int(fid),
            int(bid),
            str(src),
            str(sid),
            line,
            int(number),
            dict(cells),
            list(errors),
            bytes(raw) if raw is not None else None,
        )
        for rid, fid, bid, src, sid, line, number, cells, errors, raw in found
    ]


def file_rows(conn: psycopg.Connection, csv_file_id: int) -> list[CsvRow]:
    """Return the rows of one file in file order."""
    return _rows(conn, sql.SQL("f.csv_file_id = %s"), (csv_file_id,))


def batch_rows(conn: psycopg.Connection, batch_id: int) -> list[CsvRow]:
    """Return the rows landed by one batch."""
    return _rows(conn, sql.SQL("f.batch_id = %s"), (batch_id,))


def source_rows(conn: psycopg.Connection, source: str) -> list[CsvRow]:
    """Return every landed row of one source (all its files)."""
    return _rows(conn, sql.SQL("f.source = %s"), (source,))


def count_rows(conn: psycopg.Connection) -> int:
    """Return how many CSV rows are landed, over every file."""
    row = conn.execute("SELECT count(*) FROM raw.csv_rows").fetchone()
    return int(row[0]) if row else 0


def find_row(conn: psycopg.Connection, raw_record_id: int) -> CsvRow | None:
    """Return the CSV row with this raw_record_id, or None when it is not a CSV row (or was purged)."""
    found = conn.execute(
        "SELECT csv_file_id, batch_id, source, source_id, line, row_number, cells, encoding_errors, raw_line"
        " FROM raw.csv_record(%s)",
        (raw_record_id,),
    ).fetchone()
    if found is None:
        return None
    fid, bid, src, sid, line, number, cells, errors, raw = found
    return CsvRow(
        raw_record_id,
        int(fid),
        int(bid),
        str(src),
        str(sid),
        line,
        int(number),
        dict(cells),
        list(errors or []),
        bytes(raw) if raw is not None else None,
    )
