"""Load one dropped file into ``raw``: its batch, raw.csv_files row and records, in one transaction.

The records are COPYed straight into ``raw.records`` inside a savepoint. That is the fast path: a
new file (new SHA-256) rarely holds a row already landed. When it does (an export that repeats
earlier rows, or a file whose raw.csv_files row was purged), the unique version key refuses the
COPY; the savepoint is rolled back and the file is read again through a temporary table and
``INSERT ... ON CONFLICT DO NOTHING``, so re-landing changes nothing. Either way the file's
raw.csv_files row (unique by hash) commits with its records and the batch counts, or not at all.
"""

from __future__ import annotations

import difflib
import hashlib
import io
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Final
from uuid import UUID

import charset_normalizer
import psycopg
from psycopg import errors as pg_errors

from donor_sync.sources.csv_drop.decoding import SAMPLE_BYTES, FileEncoding, RowReader, resolve_encoding
from donor_sync.sources.csv_drop.errors import CsvFileError, FileChanged
from donor_sync.sources.csv_drop.formats import CsvFormat
from donor_sync.sources.csv_drop.landing import CHANNEL, COLUMNS, StreamCounts, copy_blocks
from donor_sync.sources.csv_drop.readiness import DropFile
from donor_sync.sources.raw_landing import fail_batch, finish_batch, open_batch

log = logging.getLogger(__name__)

#: Fewest rows with invalid bytes that can reject a file as mis-encoded (see CsvFormat.encoding_error_limit).
MIN_ENCODING_ERRORS_TO_REJECT: Final = 10
_READ_BUFFER: Final = 1 << 20
_TEMP_TABLE: Final = "__donor_sync__csv_landing"


@dataclass(frozen=True)
class LoadOutcome:
    """What loading one file did."""

    batch_id: int
    csv_file_id: int
    rows: int
    loaded: int
    repaired: int
    encoding: str


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
) -> LoadOutcome:
    """Land every row of ``file`` as one batch and one raw.csv_files row, committed together.

    :param sha256: the hash read before (the duplicate check); the load re-hashes what it reads.
    :raises CsvFileError: the file cannot be loaded as ``fmt`` (the batch is marked failed).
    :raises FileChanged: the file changed while read (the batch is marked failed; retried next run).
    :raises psycopg.errors.UniqueViolation: on ``csv_files_sha256_key``, another loader landed the
        same bytes first (the batch is marked failed).
    """
    batch_id = open_batch(conn, source=fmt.source, stream=fmt.name, channel=CHANNEL, run_id=run_id)
    try:
        encoding, header = read_header(file.path, fmt, read_header_sample(file.path))
        _check_headers(file, fmt, header)
        row = conn.execute(
            """
            INSERT INTO raw.csv_files (source, format, path, sha256, size_bytes, encoding,
                                       file_modified_at, rows, batch_id)
            VALUES (%s, %s, %s, %s, %s, %s, %s, 0, %s) RETURNING csv_file_id
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
            ),
        ).fetchone()
        assert row is not None
        target = _Target(file, fmt, encoding, batch_id, int(row[0]), datetime.now(UTC), sha256)
        try:
            with conn.transaction():  # a savepoint: the fast path may be refused by the version key
                counts = _copy_file(conn, target, direct=True)
            loaded = counts.rows
        except pg_errors.UniqueViolation as exc:
            if exc.diag.constraint_name != "records_version_key":
                raise
            log.info("csv %s: some rows already landed; loading through ON CONFLICT", sha256.hex()[:12])
            counts = _copy_file(conn, target, direct=False)
            loaded = _insert_new(conn)
        conn.execute(
            "UPDATE raw.csv_files SET rows = %s WHERE csv_file_id = %s", (counts.rows, target.csv_file_id)
        )
        finish_batch(conn, batch_id, read=counts.rows, loaded=loaded, cursor=None, reported=counts.rows)
    except CsvFileError as exc:
        fail_batch(conn, batch_id, exc.code)
        raise
    except (pg_errors.DataError, pg_errors.ProgramLimitExceeded) as exc:
        # A value Postgres cannot store (e.g. an id cell too long for the version key's index).
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
    return LoadOutcome(batch_id, target.csv_file_id, counts.rows, loaded, counts.repaired, encoding.name)


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
    """One file being landed: what it is, how it is read, and the batch and file rows it lands under."""

    file: DropFile
    fmt: CsvFormat
    encoding: FileEncoding
    batch_id: int
    csv_file_id: int
    fetched_at: datetime
    sha256: bytes


def _copy_file(conn: psycopg.Connection, target: _Target, *, direct: bool) -> StreamCounts:
    """COPY every row of the file into raw.records (``direct``) or the temporary landing table."""
    table = "raw.records" if direct else _TEMP_TABLE
    if not direct:
        conn.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {_TEMP_TABLE} (batch_id bigint, source text, entity text,"
            " source_id text, channel text, fetched_at timestamptz, payload jsonb, csv_file_id bigint,"
            " csv_line bigint) ON COMMIT DELETE ROWS"
        )
        conn.execute(f"TRUNCATE {_TEMP_TABLE}")
    file, counts = target.file, StreamCounts()
    with file.path.open("rb", buffering=0) as raw:
        hashing = _HashingReader(raw)
        buffered = io.BufferedReader(hashing, buffer_size=_READ_BUFFER)
        reader = RowReader(buffered, target.encoding, target.fmt, file_name=file.path.name)
        blocks = copy_blocks(
            reader,
            target.fmt,
            batch_id=target.batch_id,
            csv_file_id=target.csv_file_id,
            fetched_at=target.fetched_at,
            sha256_hex=target.sha256.hex(),
            counts=counts,
        )
        with (
            conn.cursor() as cur,
            cur.copy(f"COPY {table} ({', '.join(COLUMNS)}) FROM STDIN (FORMAT BINARY)") as copy,
        ):
            for block in blocks:
                copy.write(block)
            _check_encoding_share(target, counts)
            buffered.read()  # anything after the last row (nothing, for a well-formed file) is hashed too
            if hashing.digest.digest() != target.sha256 or not file.unchanged():
                raise FileChanged(f"{file.path.name} changed while it was read")
    if reader.blank_lines:
        log.info("csv %s: %s blank lines skipped", target.sha256.hex()[:12], reader.blank_lines)
    if counts.repaired:
        log.warning(
            "csv %s: %s of %s rows have bytes invalid in %s; kept with their raw bytes for quarantine",
            target.sha256.hex()[:12],
            counts.repaired,
            counts.rows,
            target.encoding.name,
        )
    return counts


def _check_encoding_share(target: _Target, counts: StreamCounts) -> None:
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


def _insert_new(conn: psycopg.Connection) -> int:
    """Move the landed rows into raw.records, skipping versions already held; return how many were new."""
    columns = ", ".join(COLUMNS)
    return conn.execute(
        f"INSERT INTO raw.records ({columns}) SELECT {columns} FROM {_TEMP_TABLE}"
        " ON CONFLICT (source, entity, source_id, payload_sha256) DO NOTHING"
    ).rowcount
