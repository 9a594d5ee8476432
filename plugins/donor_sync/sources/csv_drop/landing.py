"""Rows of one file as a binary COPY stream into ``raw.records``: one payload per row, built once.

Each row becomes ``{"row": {header: cell}, "line": n, "encoding_errors": []}`` (plus
``raw_line_b64`` for repaired rows), encoded with msgspec and framed in PostgreSQL's binary COPY
format, so no text escaping is needed and the constant columns are framed once per file. The
stream is written in blocks of about a megabyte; memory does not grow with the file.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

import msgspec

from donor_sync.sources.csv_drop.decoding import RowReader
from donor_sync.sources.csv_drop.formats import CsvFormat

ENTITY: Final = "csv_row"
CHANNEL: Final = "csv"
#: raw.records columns the stream fills, in stream order.
COLUMNS: Final = (
    "batch_id",
    "source",
    "entity",
    "source_id",
    "channel",
    "fetched_at",
    "payload",
    "csv_file_id",
    "csv_line",
)
_SIGNATURE: Final = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)  # no OIDs, no header extension
_TRAILER: Final = struct.pack(">h", -1)
_PG_EPOCH: Final = datetime(2000, 1, 1, tzinfo=UTC)
_ONE_MICROSECOND: Final = timedelta(microseconds=1)
_BLOCK_ROWS: Final = 2048
_INT4 = struct.Struct(">i")
_JSONB_HEAD = struct.Struct(">iB")  # length, then jsonb's binary format version (1): the JSON text


def _text(value: str) -> bytes:
    data = value.encode("utf-8")
    return _INT4.pack(len(data)) + data


@dataclass
class StreamCounts:
    """What a stream has framed so far."""

    rows: int = 0
    repaired: int = 0


def copy_blocks(
    reader: RowReader,
    fmt: CsvFormat,
    *,
    batch_id: int,
    csv_file_id: int,
    fetched_at: datetime,
    sha256_hex: str,
    counts: StreamCounts,
) -> Iterator[bytes]:
    """Yield the binary COPY stream of every row of ``reader`` for the :data:`COLUMNS` of raw.records.

    :param sha256_hex: the file's hash; ``<hash>:<line>`` is the source id of rows without one.
    :param counts: filled in as rows are framed (rows, and rows repaired for bad bytes).
    """
    head = struct.pack(">hiq", len(COLUMNS), 8, batch_id) + _text(fmt.source) + _text(ENTITY)
    micros = (fetched_at - _PG_EPOCH) // _ONE_MICROSECOND
    middle = _text(CHANNEL) + struct.pack(">iq", 8, micros)
    tail = struct.pack(">iqi", 8, csv_file_id, 8)
    header = reader.header
    id_index = header.index(fmt.id_column) if fmt.id_column else -1
    encode = msgspec.json.Encoder().encode
    int4, jsonb_head = _INT4.pack, _JSONB_HEAD.pack
    no_errors: list[str] = []
    block: list[bytes] = [_SIGNATURE]
    rows = 0
    # The reader has checked every row's width against the header, so zip need not.
    for line, cells in reader.rows():
        try:
            payload = encode(
                {"row": dict(zip(header, cells, strict=False)), "line": line, "encoding_errors": no_errors}
            )
            if b"\\u0000" in payload:  # NUL: valid text, but Postgres text and jsonb cannot hold it
                raise UnicodeError
            source_id = cells[id_index].strip().encode() if id_index >= 0 else b""
        except UnicodeError:
            fixed = reader.repair(line, cells)
            counts.repaired += 1
            payload = encode(
                {
                    "row": dict(zip(header, fixed.cells, strict=False)),
                    "line": line,
                    "encoding_errors": fixed.encoding_errors,
                    "raw_line_b64": base64.b64encode(fixed.raw).decode("ascii"),
                }
            )
            source_id = fixed.cells[id_index].strip().encode() if id_index >= 0 else b""
        if not source_id:
            source_id = f"{sha256_hex}:{line}".encode()
        block += (
            head,
            int4(len(source_id)),
            source_id,
            middle,
            jsonb_head(len(payload) + 1, 1),
            payload,
            tail,
            line.to_bytes(8, "big"),
        )
        rows += 1
        if rows % _BLOCK_ROWS == 0:
            counts.rows = rows
            yield b"".join(block)
            block.clear()
    counts.rows = rows
    block.append(_TRAILER)
    yield b"".join(block)
