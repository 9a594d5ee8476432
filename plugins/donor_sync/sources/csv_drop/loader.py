"""Load one dropped file into ``raw``: its batch, raw.csv_files row and rows table, in one transaction.

The rows land in ``raw.csv_file_<id>`` (see include/sql/migrations/0007_csv_rows.sql), by COPY
FORMAT csv inside a savepoint when Postgres reads the file exactly as the csv module would, else
row by row (:mod:`donor_sync.sources.csv_drop.landing`). Either way the file's raw.csv_files row
(unique by hash, so each file is loaded once) commits with its rows and the batch counts, or
nothing does. A file repeating rows of an earlier file lands them again: they are new versions of
those rows' objects, which standardization orders.
"""

from __future__ import annotations

import difflib
import hashlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final
from uuid import UUID

import charset_normalizer
import psycopg
from psycopg import errors as pg_errors
from psycopg import sql

from donor_sync.sources.csv_drop.decoding import SAMPLE_BYTES, FileEncoding, RowReader, resolve_encoding
from donor_sync.sources.csv_drop.errors import CsvFileError, FileChanged
from donor_sync.sources.csv_drop.formats import CsvFormat
from donor_sync.sources.csv_drop.landing import (
    CHANNEL,
    FastPathRefused,
    LandedRows,
    copy_csv,
    copy_rows,
    create_rows_table,
)
from donor_sync.sources.csv_drop.readiness import DropFile
from donor_sync.sources.raw_landing import fail_batch, finish_batch, open_batch

log = logging.getLogger(__name__)

#: Fewest rows with invalid bytes that can reject a file as mis-encoded (see CsvFormat.encoding_error_limit).
MIN_ENCODING_ERRORS_TO_REJECT: Final = 10
_READ_BUFFER: Final = 1 << 20


@dataclass(frozen=True)
class LoadOutcome:
    """What loading one file did."""

    batch_id: int
    csv_file_id: int
    rows: int
    loaded: int
    repaired: int
    encoding: str
    #: ``copy_csv`` (Postgres parsed the file) or ``row_by_row``.
    load_path: str = "copy_csv"


class _HashingReader(io.RawIOBase):
    """Pass a file's bytes through while hashing them, so what was loaded is what was hashed."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = self._raw.readinto(buffer)  # type: ignore[attr-defined]
        if n:
            self.digest.update(buffer[:n])
        return int(n or 0)


def file_sha256(path: Path) -> bytes:
    """Return the SHA-256 of the file's bytes."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").digest()


def read_header_sample(path: Path) -> bytes:
    """Return the first bytes of a file, enough to sniff its encoding and read its header."""
    with path.open("rb") as handle:
        return handle.read(SAMPLE_BYTES)


def read_header(path: Path, fmt: CsvFormat, sample: bytes) -> tuple[FileEncoding, list[str]]:
    """Return the file's encoding and header as ``fmt`` would read them.

    :raises CsvFileError: the encoding contradicts the format, or the header is missing or malformed.
    """
    encoding = resolve_encoding(fmt, sample, file_name=path.name)
    reader = RowReader(io.BytesIO(_first_lines(sample)), encoding, fmt, file_name=path.name)
    return encoding, reader.header


def _first_lines(sample: bytes) -> bytes:
    """Return the sample up to a line end (a header never spans a megabyte)."""
    cut = sample.rfind(b"\n")
    return sample[: cut + 1] if cut >= 0 else sample


def load_file(
    conn: psycopg.Connection,
    file: DropFile,
    fmt: CsvFormat,
    *,
    sha256: bytes,
    run_id: UUID | None,
    allow_fast_path: bool = True,
) -> LoadOutcome:
    """Land every row of ``file`` in its own table, with its batch and raw.csv_files row, committed together.

    :param sha256: the hash read before (the duplicate check); the load re-hashes what it reads.
    :param allow_fast_path: False reads the file row by row even when COPY could parse it (tests).
    :raises CsvFileError: the file cannot be loaded as ``fmt`` (the batch is marked failed).
    :raises FileChanged: the file changed while read (the batch is marked failed; retried next run).
    :raises psycopg.errors.UniqueViolation: on ``csv_files_sha256_key``, another loader landed the
        same bytes first (the batch is marked failed).
    """
    batch_id = open_batch(conn, source=fmt.source, stream=fmt.name, channel=CHANNEL, run_id=run_id)
    try:
        encoding, header = read_header(file.path, fmt, read_header_sample(file.path))
        _check_headers(file, fmt, header)
        id_position = header.index(fmt.id_column) + 1 if fmt.id_column else None
        row = conn.execute(
            """
            INSERT INTO raw.csv_files (source, format, path, sha256, size_bytes, encoding,
                                       file_modified_at, rows, batch_id, headers, id_position)
            VALUES (%s, %s, %s, %s, %s, %s, %s, 0, %s, %s, %s) RETURNING csv_file_id
            """,
            (
                fmt.source,
                fmt.name,
                str(file.path),
                sha256,
                file.size,
                encoding.name,
                file.modified_at,
                batch_id,
                header,
                id_position,
            ),
        ).fetchone()
        assert row is not None
        csv_file_id = int(row[0])
        table = create_rows_table(conn, csv_file_id)
        target = _Target(file, fmt, encoding, csv_file_id, table, header, id_position, sha256)
        # The rows' ids come from raw.records' sequence between these two draws (other loaders may
        # draw in between: the span bounds the file's ids, it does not count them).
        low = _next_record_id(conn)
        landed = _land(conn, target, allow_fast_path=allow_fast_path)
        high = _next_record_id(conn)
        conn.execute(
            "UPDATE raw.csv_files SET rows = %s, lines_are_rows = %s, load_path = %s,"
            " first_raw_record_id = %s, last_raw_record_id = %s WHERE csv_file_id = %s",
            (
                landed.rows,
                landed.lines_are_rows,
                landed.path,
                low if landed.rows else None,
                high if landed.rows else None,
                csv_file_id,
            ),
        )
        finish_batch(conn, batch_id, read=landed.rows, loaded=landed.rows, cursor=None, reported=landed.rows)
    except CsvFileError as exc:
        fail_batch(conn, batch_id, exc.code)
        raise
    except (pg_errors.DataError, pg_errors.ProgramLimitExceeded) as exc:
        # A value Postgres cannot store on the careful path (it has no other way to read the file).
        fail_batch(conn, batch_id, type(exc).__name__)
        # The server's primary message names the problem, never the row's content (its detail and
        # context, which can quote the row, are left out).
        raise CsvFileError(
            file.path.name,
            f"the database refused a row: {exc.sqlstate} {exc.diag.message_primary}",
            code="database_refused_row",
            format_name=fmt.name,
        ) from None
    except BaseException as exc:
        fail_batch(conn, batch_id, type(exc).__name__)
        raise
    return LoadOutcome(
        batch_id, csv_file_id, landed.rows, landed.rows, landed.repaired, encoding.name, landed.path
    )


def _next_record_id(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT nextval(pg_get_serial_sequence('raw.records', 'raw_record_id'))").fetchone()
    assert row is not None
    return int(row[0])


def _check_headers(file: DropFile, fmt: CsvFormat, header: list[str]) -> None:
    """Reject a file that lacks a header the format maps, naming it (and a close match, if any)."""
    missing = fmt.missing_headers(header)
    if not missing:
        return
    hints = []
    for name in missing:
        close = difflib.get_close_matches(name, header, n=1)
        hints.append(f"{name!r}" + (f" (the file has {close[0]!r})" if close else ""))
    raise CsvFileError(
        file.path.name,
        f"header(s) the format needs are missing: {', '.join(hints)}",
        code="missing_header",
        line=1,
        field=missing[0],
        format_name=fmt.name,
    )


@dataclass(frozen=True)
class _Target:
    """One file being landed: what it is, how it is read, and the file row and table it lands in."""

    file: DropFile
    fmt: CsvFormat
    encoding: FileEncoding
    csv_file_id: int
    table: sql.Composable
    header: list[str]
    id_position: int | None
    sha256: bytes


def _land(conn: psycopg.Connection, target: _Target, *, allow_fast_path: bool) -> LandedRows:
    """Land the file by COPY FORMAT csv if Postgres reads it as the csv module would, else row by row."""
    tag = target.sha256.hex()[:12]
    refused = "not allowed" if not allow_fast_path else None
    if allow_fast_path:
        digest = hashlib.sha256()
        try:
            with conn.transaction():  # a savepoint: a refusal leaves nothing behind
                landed = copy_csv(
                    conn,
                    target.file.path,
                    target.table,
                    target.fmt,
                    target.encoding,
                    width=len(target.header),
                    id_position=target.id_position,
                    digest=digest,
                )
        except FastPathRefused as exc:
            refused = exc.reason
        else:
            _check_unchanged(target, digest.digest())
            return landed
    log.info("csv %s: read row by row (%s)", tag, refused)
    landed = _copy_rows(conn, target)
    landed.refused_because = refused
    return landed


def _check_unchanged(target: _Target, digest: bytes) -> None:
    if digest != target.sha256 or not target.file.unchanged():
        raise FileChanged(f"{target.file.path.name} changed while it was read")


def _copy_rows(conn: psycopg.Connection, target: _Target) -> LandedRows:
    """Read the file with the csv module and write its rows (the careful path)."""
    file = target.file
    with file.path.open("rb", buffering=0) as raw:
        hashing = _HashingReader(raw)
        buffered = io.BufferedReader(hashing, buffer_size=_READ_BUFFER)
        reader = RowReader(buffered, target.encoding, target.fmt, file_name=file.path.name)
        landed = copy_rows(conn, reader, target.table, id_position=target.id_position)
        _check_encoding_share(target, landed)
        buffered.read()  # anything after the last row (nothing, for a well-formed file) is hashed too
        _check_unchanged(target, hashing.digest.digest())
    if landed.blank_lines:
        log.info("csv %s: %s blank lines skipped", target.sha256.hex()[:12], landed.blank_lines)
    if landed.repaired:
        log.warning(
            "csv %s: %s of %s rows have bytes invalid in %s; kept with their raw bytes for quarantine",
            target.sha256.hex()[:12],
            landed.repaired,
            landed.rows,
            target.encoding.name,
        )
    return landed


def _check_encoding_share(target: _Target, counts: LandedRows) -> None:
    """Reject the file when too many rows do not decode: its encoding, not a few rows, is wrong."""
    limit = target.fmt.encoding_error_limit
    if counts.repaired < MIN_ENCODING_ERRORS_TO_REJECT or counts.repaired <= limit * counts.rows:
        return
    with target.file.path.open("rb") as handle:
        guess = charset_normalizer.from_bytes(handle.read(SAMPLE_BYTES)).best()
    suggestion = f"; charset-normalizer suggests {guess.encoding}" if guess is not None else ""
    raise CsvFileError(
        target.file.path.name,
        f"{counts.repaired} of {counts.rows} rows have bytes invalid in {target.encoding.name} "
        f"(limit {limit:.0%}){suggestion}",
        code="wrong_encoding",
        field="encoding",
        format_name=target.fmt.name,
    )
