"""Land one file's rows in its own table, ``raw.csv_file_<id>``: by Postgres' CSV parser when it reads
the file exactly as Python's csv module would, else row by row.

Two paths, one result (a test feeds both the same random files and compares every cell):

* :func:`copy_csv`, the fast path: the file's bytes stream through ``COPY ... (FORMAT csv)``, so
  Postgres parses them at ``psql \\copy`` speed. On the way, each block is decoded strictly
  (transcoded to UTF-8 when the file is in another encoding), hashed, and scanned for what the two
  parsers read differently: NUL characters, a quote that neither opens a cell nor closes or doubles
  one (Postgres starts a quoted section there, the csv module keeps it as text), an end-of-data
  marker line (``\\.``), and a one-column file (where a blank line is a row to Postgres). Any of
  those, or a row Postgres refuses (wrong width, blank line, mixed line ends), raises
  :class:`FastPathRefused` and the caller rolls back to its savepoint.
* :func:`copy_rows`, the careful path: :class:`~donor_sync.sources.csv_drop.decoding.RowReader`
  parses the file, skips blank lines, names the line and header of a malformed row, and keeps a
  row whose bytes are invalid in the encoding with its cells decoded with U+FFFD, the headers
  affected and its original bytes.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import psycopg
from psycopg import errors as pg_errors
from psycopg import sql

from donor_sync.sources.csv_drop.decoding import FileEncoding, RowReader
from donor_sync.sources.csv_drop.formats import CsvFormat

CHANNEL: Final = "csv"
#: Bytes read, checked and sent per block on the fast path.
BLOCK_BYTES: Final = 1 << 22
_UTF8: Final = frozenset({"utf-8", "utf-8-sig"})
_EOL: Final = (ord("\n"), ord("\r"))


class FastPathRefused(Exception):  # noqa: N818 - a condition the caller handles, not a failure
    """The file must be read row by row; ``reason`` says why (no cell content)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass
class LandedRows:
    """What landing one file wrote."""

    rows: int = 0
    repaired: int = 0
    #: Whether no cell holds a line break, so that row n starts on line n + 1 (fast path only).
    lines_are_rows: bool | None = None
    path: str = "copy_csv"
    blank_lines: int = 0
    refused_because: str | None = None
    _digest: Any = field(default=None, repr=False)


def create_rows_table(conn: psycopg.Connection, csv_file_id: int) -> sql.Composable:
    """Create ``raw.csv_file_<id>`` from the file's raw.csv_files row; return its name as SQL."""
    conn.execute("SELECT raw.csv_create_rows_table(%s)", (csv_file_id,))
    return sql.Identifier("raw", f"csv_file_{csv_file_id}")


def cell_columns(width: int, id_position: int | None) -> list[str]:
    """Return the table columns of a file's cells in file order (the id column lands in source_id)."""
    return ["source_id" if i == id_position else f"c{i}" for i in range(1, width + 1)]


class _QuoteScanner:
    """Find quotes the csv module and Postgres' COPY would read differently, a block at a time.

    Counting quotes from the start of the file tells whether each one opens or closes a quoted
    section. One that opens must follow a delimiter, a line end, the file's start or (a doubled
    quote) a quote; one that closes must precede a delimiter, a line end, the end or a quote.
    """

    def __init__(self, quote: int, delimiter: int) -> None:
        self._quote = quote
        self._allowed = np.zeros(256, dtype=bool)
        self._allowed[[delimiter, *_EOL, quote]] = True
        self._inside = False
        self._previous = ord("\n")
        self._must_follow_close = False

    def feed(self, data: bytes) -> bool:
        """Check the next block; return False at the first quote the two parsers would disagree on."""
        if not data:
            return True
        array = np.frombuffer(data, dtype=np.uint8)
        if self._must_follow_close and not self._allowed[array[0]]:
            return False
        positions = np.flatnonzero(array == self._quote)
        if positions.size:
            opening = np.arange(positions.size) % 2 == (1 if self._inside else 0)
            before = np.where(positions > 0, array[np.maximum(positions - 1, 0)], self._previous)
            if not self._allowed[before[opening]].all():
                return False
            closing = positions[~opening]
            inner = closing[closing < array.size - 1]
            if not self._allowed[array[inner + 1]].all():
                return False
            self._must_follow_close = bool(closing.size and closing[-1] == array.size - 1)
            if positions.size % 2:
                self._inside = not self._inside
        else:
            self._must_follow_close = False
        self._previous = int(array[-1])
        return True

    def finish(self) -> bool:
        """Return whether the file ended outside a quoted cell."""
        return not self._inside


def _single_byte(char: str) -> int | None:
    return ord(char) if len(char) == 1 and ord(char) < 128 else None


def copy_csv(
    conn: psycopg.Connection,
    path: Path,
    table: sql.Composable,
    fmt: CsvFormat,
    encoding: FileEncoding,
    *,
    width: int,
    id_position: int | None,
    digest: Any,
) -> LandedRows:
    """Stream ``path`` through ``COPY ... (FORMAT csv, HEADER)`` into ``table``; hash it into ``digest``.

    Run it inside a savepoint: on :class:`FastPathRefused` the COPY is aborted and the caller rolls
    back and reads the file with :func:`copy_rows`.

    :raises FastPathRefused: the file is one the two parsers could read differently, or Postgres
        refused a row (the server's message, never the row's content, is the reason).
    """
    delimiter, quote = _single_byte(fmt.delimiter), _single_byte(fmt.quotechar)
    if width < 2:
        raise FastPathRefused("one column: a blank line would be a row to COPY")
    if delimiter is None or quote is None:
        raise FastPathRefused("delimiter or quote is not a single ASCII character")
    columns = cell_columns(width, id_position)
    blocks = _BlockReader.for_codec(encoding.codec)
    statement = sql.SQL(
        "COPY {table} ({columns}) FROM STDIN (FORMAT csv, HEADER true, DELIMITER {delimiter},"
        " QUOTE {quote}, ESCAPE {quote}, ENCODING {encoding}, FORCE_NOT_NULL ({columns}))"
    ).format(
        table=table,
        columns=sql.SQL(", ").join(map(sql.Identifier, columns)),
        delimiter=sql.Literal(fmt.delimiter),
        quote=sql.Literal(fmt.quotechar),
        encoding=sql.Literal(blocks.server_encoding),
    )
    scanner = _QuoteScanner(quote, delimiter)
    newlines = 0
    tail = b"\n"  # the bytes before the block, for the end-of-data marker check
    landed = LandedRows()
    try:
        with conn.cursor() as cur:
            with cur.copy(statement) as copy, path.open("rb", buffering=0) as handle:
                first = True
                while block := handle.read(BLOCK_BYTES):
                    digest.update(block)
                    out = blocks.checked(block, final=False)
                    if first and encoding.codec == "utf-8-sig":
                        out = out.removeprefix(codecs.BOM_UTF8)
                    first = False
                    _check_block(out, tail, scanner)
                    newlines += _line_breaks(out, tail)
                    tail = (tail + out)[-3:]  # a block (a short read, the last) may be under 3 bytes
                    copy.write(out)
                out = blocks.checked(b"", final=True)
                _check_block(out, tail, scanner)
                copy.write(out)
                if not scanner.finish():
                    raise FastPathRefused("ends inside a quoted cell")
                if tail.endswith((b"\n\\.", b"\r\\.")):
                    raise FastPathRefused("ends with an end-of-data marker line")
            landed.rows = int(cur.rowcount)
    except (pg_errors.DataError, pg_errors.ProgramLimitExceeded) as exc:
        raise FastPathRefused(f"COPY refused a row: {exc.sqlstate} {exc.diag.message_primary}") from None
    except pg_errors.QueryCanceled as exc:  # the COPY aborted by a refusal raised above
        raise FastPathRefused(f"aborted: {exc.diag.message_primary}") from None
    # Lines: the header's, one per row, and none inside cells (a last line may lack its line end).
    # A line ends as the csv module's reader sees it: at CRLF, LF or a lone CR.
    ended = tail.endswith((b"\n", b"\r"))
    landed.lines_are_rows = newlines == landed.rows + (1 if ended else 0)
    return landed


def _line_breaks(out: bytes, tail: bytes) -> int:
    """Return the line ends in ``out``: CRLF, LF or a lone CR (a CRLF split across blocks counts once)."""
    lf, cr = out.count(b"\n"), out.count(b"\r")
    split = 1 if out[:1] == b"\n" and tail.endswith(b"\r") else 0  # its CR was counted with the block before
    if not cr or not lf:
        return lf + cr - split
    # CRLF pairs, found from the CRs (numpy: faster than a two-byte bytes.count).
    array = np.frombuffer(out, dtype=np.uint8)
    crs = np.flatnonzero(array == _CR)
    crlf = int(np.count_nonzero(array[crs[crs < array.size - 1] + 1] == _LF))
    return lf + cr - crlf - split


_CR: Final = ord("\r")
_LF: Final = ord("\n")


#: Single-byte codecs Postgres converts to UTF-8 with the same table as Python (Postgres' name).
#: Others are transcoded by Python on the way (multi-byte legacy codecs, rarer code pages).
SERVER_TRANSCODED: Final = {"cp1252": "WIN1252", "iso8859-1": "LATIN1", "iso8859-15": "LATIN9"}


class _BlockReader:
    """Check each block of a file for what COPY must not see, and hand COPY bytes it reads as intended.

    UTF-8 files are validated and sent as they are; a file in a single-byte code page Postgres
    converts exactly as Python does is checked byte by byte (a translate, no decoding) and
    converted by the server; any other encoding is decoded and re-encoded as UTF-8 here.
    """

    def __init__(self, codec: str, server_encoding: str, *, transcode: bool, valid: bytes | None) -> None:
        self.server_encoding = server_encoding
        self._transcode = transcode
        self._valid = valid
        self._decoder = codecs.getincrementaldecoder(codec)("strict")

    @classmethod
    def for_codec(cls, codec: str) -> _BlockReader:
        name = codecs.lookup(codec).name
        if name in _UTF8:
            return cls(codec, "UTF8", transcode=False, valid=None)
        if name in SERVER_TRANSCODED:
            valid = bytes(b for b in range(256) if _decodes(bytes([b]), codec))
            return cls(codec, SERVER_TRANSCODED[name], transcode=False, valid=valid)
        return cls(codec, "UTF8", transcode=True, valid=None)

    def checked(self, block: bytes, *, final: bool) -> bytes:
        """Return what COPY gets for ``block``.

        :raises FastPathRefused: bytes invalid in the encoding, or NUL characters.
        """
        if self._valid is not None:  # a single-byte code page: every byte is a character
            if block.translate(None, self._valid):
                raise FastPathRefused("bytes invalid in the encoding")
            if b"\x00" in block:
                raise FastPathRefused("NUL characters")
            return block
        try:
            text = self._decoder.decode(block, final)
        except UnicodeDecodeError:
            raise FastPathRefused("bytes invalid in the encoding") from None
        if "\x00" in text:
            raise FastPathRefused("NUL characters")
        return text.encode("utf-8") if self._transcode else block


def _decodes(data: bytes, codec: str) -> bool:
    try:
        data.decode(codec)
    except UnicodeDecodeError:
        return False
    return True


def _check_block(out: bytes, tail: bytes, scanner: _QuoteScanner) -> None:
    if not scanner.feed(out):
        raise FastPathRefused("a quote inside an unquoted cell, or text after a closing quote")
    # Backslashes are rare in exports and memchr finds one fast; only then look for the marker.
    if b"\\" in out or b"\\" in tail:
        joined = tail + out
        if any(marker in joined for marker in _END_MARKERS):
            raise FastPathRefused("an end-of-data marker line")


#: A line holding only ``\.``: where Postgres stops reading COPY data (unquoted).
_END_MARKERS: Final = (b"\n\\.\n", b"\n\\.\r", b"\r\\.\r", b"\r\\.\n")


def copy_rows(
    conn: psycopg.Connection,
    reader: RowReader,
    table: sql.Composable,
    *,
    id_position: int | None,
    on_progress: Callable[[int], None] | None = None,
) -> LandedRows:
    """Write every row ``reader`` yields into ``table`` (with its line, and repairs of invalid bytes)."""
    width = len(reader.header)
    # row_number is written, not left to the table's identity: a refused COPY before this one may
    # have drawn numbers from it (a sequence is not rolled back with the savepoint).
    columns = ["row_number", "line", *cell_columns(width, id_position), "encoding_errors", "raw_line"]
    statement = sql.SQL("COPY {table} ({columns}) FROM STDIN").format(
        table=table, columns=sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    landed = LandedRows(path="row_by_row")
    with conn.cursor() as cur, cur.copy(statement) as copy:
        write = copy.write_row
        for line, cells in reader.rows():
            landed.rows += 1
            if any(_needs_repair(cell) for cell in cells):
                fixed = reader.repair(line, cells)
                landed.repaired += 1
                write((landed.rows, line, *fixed.cells, fixed.encoding_errors, fixed.raw))
            else:
                write((landed.rows, line, *cells, None, None))
            if on_progress is not None and landed.rows % 65536 == 0:
                on_progress(landed.rows)
    landed.blank_lines = reader.blank_lines
    return landed


def _needs_repair(cell: str) -> bool:
    if "\x00" in cell:
        return True
    try:
        cell.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
