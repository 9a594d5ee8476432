"""CSV drops: export files dropped in a folder, loaded into ``raw`` once each, then archived.

``load_drop_folder`` takes the folder's lock, then for each file at its top level: waits until it
is quiet (and its ready marker, when its format asks for one), hashes it, skips bytes already
loaded (archiving them as duplicates), recognizes its export format, lands every row as one
``csv_row`` record per row in one transaction with its ``raw.csv_files`` row and batch counts,
and moves it to the archive. A file that cannot be loaded goes to ``rejected/`` with a sidecar
naming the file, line and field; the other files go on.

Modules: ``formats`` (YAML export formats), ``readiness`` (quiet period, temp names, markers),
``decoding`` (encodings and rows), ``landing`` (the COPY stream), ``loader`` (one file's
transaction), ``archive`` (moving files), ``locking`` (one loader per folder).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final, Literal
from uuid import UUID

import psycopg
from psycopg import errors as pg_errors

from donor_sync import paths
from donor_sync.errors import ConfigError
from donor_sync.sources.csv_drop import archive as archiving
from donor_sync.sources.csv_drop.errors import CsvFileError, DropFolderBusy, FileChanged
from donor_sync.sources.csv_drop.formats import CsvFormat, load_format, load_formats
from donor_sync.sources.csv_drop.loader import file_sha256, load_file, read_header, read_header_sample
from donor_sync.sources.csv_drop.locking import DEFAULT_LOCK_WAIT, drop_folder_lock
from donor_sync.sources.csv_drop.readiness import DropFile, marker_for, not_ready_reason, scan

__all__ = [
    "DEFAULT_QUIET_PERIOD",
    "CsvFileError",
    "CsvFileResult",
    "CsvFormat",
    "DropFolderBusy",
    "default_drop_dir",
    "formats_dir",
    "load_drop_folder",
    "load_format",
    "load_formats",
]

log = logging.getLogger(__name__)

#: How long a file's size and modification time must stay unchanged before it is read.
DEFAULT_QUIET_PERIOD: Final = timedelta(seconds=60)


def formats_dir() -> Path:
    """Return the folder of export format files (``include/mappings/csv_formats``)."""
    return paths.include_dir() / "mappings" / "csv_formats"


def default_drop_dir() -> Path:
    """Return the local drop folder used when none is configured (``<repo>/.local/csv_drop``)."""
    return paths.local_state_dir() / "csv_drop"


Status = Literal["loaded", "duplicate", "rejected", "not_ready"]


@dataclass(frozen=True)
class CsvFileResult:
    """What one run did with one file of the drop folder.

    :param path: where the file was found.
    :param format: the export format it was recognized as (None when not recognized or not read).
    :param status: ``loaded``; ``duplicate`` (its bytes were loaded before: nothing landed, archived);
        ``rejected`` (moved to rejected/ with an error sidecar); ``not_ready`` (left for a later run).
    :param batch_id: the raw.batches row of this load (of the earlier load, for a duplicate).
    :param rows: data rows in the file; ``loaded``: rows landed in the file's table.
    :param error: why it was rejected, or why archiving failed (file, line, field; never cell content).
    :param detail: why it is not ready, or which load a duplicate repeats.
    :param moved_to: where it was moved (archive or rejected/), if it was.
    :param encoding_errors: rows landed with ``encoding_errors`` (bytes invalid in the encoding).
    """

    path: Path
    format: str | None
    status: Status
    batch_id: int | None = None
    rows: int = 0
    loaded: int = 0
    error: str | None = None
    detail: str | None = None
    moved_to: Path | None = None
    sha256: str | None = None
    encoding_errors: int = 0


def load_drop_folder(
    conn: psycopg.Connection,
    drop_dir: Path,
    formats: dict[str, CsvFormat],
    *,
    run_id: UUID | None,
    quiet_period: timedelta = DEFAULT_QUIET_PERIOD,
    archive_dir: Path | None = None,
    now: datetime | None = None,
    lock_wait: timedelta = DEFAULT_LOCK_WAIT,
) -> list[CsvFileResult]:
    """Load every ready file at the top of ``drop_dir``; return one result per file found.

    :param conn: staging database connection (not in a transaction); this call commits.
    :param formats: export formats by name (:func:`load_formats`).
    :param run_id: sync.runs id; batches carry it and run metrics are recorded when given.
    :param quiet_period: how long a file must be unchanged before it is read.
    :param archive_dir: where loaded files go (default ``<drop_dir>/archive``).
    :param now: the time readiness and archive folders are judged by (default: now).
    :param lock_wait: how long to wait for another loader of the same folder to finish.
    :raises ConfigError: the drop folder does not exist.
    :raises DropFolderBusy: another loader kept the folder for longer than ``lock_wait``.
    :raises ValueError: ``conn`` is in autocommit mode (a file's rows must commit together).
    """
    if conn.autocommit:
        raise ValueError("load_drop_folder needs a connection outside autocommit mode")
    drop_dir = drop_dir.resolve()
    if not drop_dir.is_dir():
        raise ConfigError(f"CSV drop folder {drop_dir} does not exist")
    with drop_folder_lock(conn, drop_dir, wait=lock_wait):
        drop = _DropRun(
            conn,
            formats,
            archive_dir=(archive_dir or drop_dir / "archive").resolve(),
            rejected_dir=drop_dir / "rejected",
            run_id=run_id,
            quiet_period=quiet_period,
            now=now or datetime.now(UTC),  # after the wait for the lock, so quiet is judged now
        )
        results = [drop.process(file) for file in scan(drop_dir)]
    if run_id is not None:
        _record_metrics(conn, run_id, results)
    return results


def recognize(file: DropFile, formats: dict[str, CsvFormat]) -> CsvFormat:
    """Return the one format whose ``recognize`` rules the file meets.

    :raises CsvFileError: no format, or more than one, recognizes it (the message says what each
        format whose file names match lacks).
    """
    sample: bytes | None = None
    matched: list[CsvFormat] = []
    lacking: list[str] = []
    for fmt in formats.values():
        rules = fmt.recognize
        if not rules.name_matches(file.path.name):
            continue
        if rules.headers:
            sample = read_header_sample(file.path) if sample is None else sample
            try:
                absent = rules.absent_headers(read_header(file.path, fmt, sample)[1])
            except CsvFileError as exc:
                # The header it tripped on, when the error knows it ("header written twice": which?).
                lacking.append(f"{fmt.name}: {exc.reason}" + (f" ({exc.field!r})" if exc.field else ""))
                continue
            if absent:
                lacking.append(f"{fmt.name}: lacks header(s) {', '.join(repr(h) for h in absent)}")
                continue
        matched.append(fmt)
    if len(matched) == 1:
        return matched[0]
    if matched:
        names = ", ".join(f.name for f in matched)
        raise CsvFileError(
            file.path.name,
            f"formats {names} all recognize it; make their recognize rules exclusive",
            code="ambiguous_format",
        )
    hint = f" ({'; '.join(lacking)})" if lacking else ""
    raise CsvFileError(
        file.path.name,
        f"no export format recognizes it{hint}; known formats: {', '.join(sorted(formats)) or 'none'}",
        code="unknown_format",
        line=1 if lacking else None,
    )


def _unreadable(file: DropFile, exc: OSError) -> CsvFileError:
    return CsvFileError(
        file.path.name, f"cannot read it: {exc.strerror or type(exc).__name__}", code="unreadable"
    )


@dataclass(frozen=True)
class _Known:
    """A file already in raw.csv_files with the same bytes."""

    csv_file_id: int
    batch_id: int
    path: str
    format: str
    archived: bool


@dataclass(frozen=True)
class _DropRun:
    """One pass over the drop folder: where files go and what time it is."""

    conn: psycopg.Connection
    formats: dict[str, CsvFormat]
    archive_dir: Path
    rejected_dir: Path
    run_id: UUID | None
    quiet_period: timedelta
    now: datetime

    def process(self, file: DropFile) -> CsvFileResult:
        """Deal with one file; only database failures propagate, every file problem is a result."""
        reason = not_ready_reason(file, now=self.now, quiet_period=self.quiet_period)
        if reason:
            return CsvFileResult(file.path, None, "not_ready", detail=reason)
        sha256: bytes | None = None
        try:
            sha256 = file_sha256(file.path)
            if not file.unchanged():
                raise FileChanged(f"{file.path.name} changed while it was hashed")
            known = self._known(sha256)
            if known is not None:
                return self._duplicate(file, sha256, known)
            return self._load(file, sha256)
        except FileChanged as exc:
            return CsvFileResult(file.path, None, "not_ready", detail=str(exc))
        except pg_errors.UniqueViolation as exc:
            known = self._known(sha256) if sha256 else None  # another loader committed these bytes first
            if exc.diag.constraint_name != "csv_files_sha256_key" or sha256 is None or known is None:
                raise
            return self._duplicate(file, sha256, known)
        except (CsvFileError, OSError) as exc:
            error = exc if isinstance(exc, CsvFileError) else _unreadable(file, exc)
            return self._reject(file, error, sha256)

    def _load(self, file: DropFile, sha256: bytes) -> CsvFileResult:
        """Recognize, load and archive a file whose bytes are new."""
        fmt = recognize(file, self.formats)
        marker = marker_for(file.path)
        if fmt.ready_marker and marker is None:
            waiting = f"waiting for {file.path.name}.done or {file.path.name}.ok"
            return CsvFileResult(file.path, fmt.name, "not_ready", detail=waiting)
        outcome = load_file(self.conn, file, fmt, sha256=sha256, run_id=self.run_id)
        log.info(
            "csv %s (%s): %s rows, %s new, batch %s",
            sha256.hex()[:12],
            fmt.name,
            outcome.rows,
            outcome.loaded,
            outcome.batch_id,
        )
        moved_to, error = self._archive(file.path, sha256, outcome.csv_file_id, marker=marker)
        return CsvFileResult(
            file.path,
            fmt.name,
            "loaded",
            batch_id=outcome.batch_id,
            rows=outcome.rows,
            loaded=outcome.loaded,
            error=error,
            moved_to=moved_to,
            sha256=sha256.hex(),
            encoding_errors=outcome.repaired,
        )

    def _known(self, sha256: bytes) -> _Known | None:
        row = self.conn.execute(
            "SELECT csv_file_id, batch_id, path, format, archived_at IS NOT NULL"
            " FROM raw.csv_files WHERE sha256 = %s",
            (sha256,),
        ).fetchone()
        self.conn.commit()
        return _Known(int(row[0]), int(row[1]), str(row[2]), str(row[3]), bool(row[4])) if row else None

    def _duplicate(self, file: DropFile, sha256: bytes, known: _Known) -> CsvFileResult:
        """Archive bytes loaded before: the same file whose archiving failed, or a copy of it."""
        retry = not known.archived and known.path == str(file.path)
        if retry:
            detail = f"loaded before (batch {known.batch_id}); archived now"
            moved_to, error = self._archive(
                file.path, sha256, known.csv_file_id, marker=marker_for(file.path)
            )
        else:
            detail = f"same bytes as a file loaded in batch {known.batch_id}"
            try:
                moved_to = archiving.archive(
                    file.path,
                    self.archive_dir,
                    sha256,
                    self.now,
                    marker=marker_for(file.path),
                    duplicate=True,
                )
                error = None
            except OSError as exc:
                moved_to, error = (
                    None,
                    f"archiving the duplicate failed: {exc.strerror or type(exc).__name__}",
                )
        log.info("csv %s: %s", sha256.hex()[:12], detail)
        return CsvFileResult(
            file.path,
            known.format,
            "duplicate",
            batch_id=known.batch_id,
            error=error,
            detail=detail,
            moved_to=moved_to,
            sha256=sha256.hex(),
        )

    def _archive(
        self, path: Path, sha256: bytes, csv_file_id: int, *, marker: Path | None
    ) -> tuple[Path | None, str | None]:
        """Move a loaded file to the archive and record where; a failure leaves it for the next run."""
        try:
            moved_to = archiving.archive(path, self.archive_dir, sha256, self.now, marker=marker)
        except OSError as exc:
            log.warning(
                "csv %s: archiving failed (%s); the next run retries", sha256.hex()[:12], type(exc).__name__
            )
            return None, f"archiving failed: {exc.strerror or type(exc).__name__}; the next run retries it"
        self.conn.execute(
            "UPDATE raw.csv_files SET archived_to = %s, archived_at = now() WHERE csv_file_id = %s",
            (str(moved_to), csv_file_id),
        )
        self.conn.commit()
        return moved_to, None

    def _reject(self, file: DropFile, error: CsvFileError, sha256: bytes | None) -> CsvFileResult:
        """Move a file that cannot be loaded to rejected/ with its error sidecar."""
        log.warning("csv %s rejected: %s", file.path.name, error.describe())
        try:
            moved_to: Path | None = archiving.reject(
                file.path, self.rejected_dir, error, self.now, sha256=sha256, marker=marker_for(file.path)
            )
            message = error.describe()
        except OSError as exc:
            moved_to = None
            message = (
                f"{error.describe()} (moving it to rejected/ failed: {exc.strerror or type(exc).__name__})"
            )
        return CsvFileResult(
            file.path,
            error.format_name,
            "rejected",
            error=message,
            moved_to=moved_to,
            sha256=sha256.hex() if sha256 else None,
        )


def _record_metrics(conn: psycopg.Connection, run_id: UUID, results: list[CsvFileResult]) -> None:
    """Record the run's CSV figures: rows read and loaded per source (from its batches) and files per status.

    Rows come from raw.batches of this run, so a retried task still counts files an earlier try
    loaded and archived.
    """
    from donor_sync.observability import runs

    rows = conn.execute(
        """
        SELECT source, sum(records_read), sum(records_loaded)
          FROM raw.batches
         WHERE run_id = %s AND channel = 'csv' AND status = 'loaded'
         GROUP BY source
        """,
        (run_id,),
    ).fetchall()
    conn.commit()
    for source, read, loaded in rows:
        runs.record_metric(conn, run_id, stage="extract", scope=source, metric="read", value=int(read))
        runs.record_metric(conn, run_id, stage="extract", scope=source, metric="loaded", value=int(loaded))
    statuses = Counter(r.status for r in results)
    for status in ("loaded", "duplicate", "rejected", "not_ready"):
        runs.record_metric(
            conn,
            run_id,
            stage="extract",
            scope="csv_drop",
            metric=f"files_{status}",
            value=statuses[status],
            unit="count",
        )
    runs.record_metric(
        conn,
        run_id,
        stage="extract",
        scope="csv_drop",
        metric="rows_with_encoding_errors",
        value=sum(r.encoding_errors for r in results),
    )
