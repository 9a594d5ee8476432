"""The standardize stage: raw batches → staging.donors / staging.gifts, quarantine, dispositions.

:func:`standardize_batches` runs the three steps of :mod:`donor_sync.standardize.intake` over
loaded batches, in chunks of raw_record_id ranges so memory stays bounded whatever the batch
size:

1. scope (SQL, all batches at once, :mod:`~donor_sync.standardize.scope`): the kinds of records
   the batches hold, the versions superseded by a newer one in the run, and the chunks; kinds
   deliberately not staged are skipped and unknown kinds quarantined, set-based;
2. per chunk: each projection's rows read through COPY, standardized, routed by the rules,
   flagged (email_shared, outlier_amount, ...), and written (COPY + upsert), then committed;
3. batch counts recomputed from the dispositions, batches marked 'standardized'.

Operator decisions survive a re-run: a record fixed in the quarantine is re-standardized with its
fix, one released as it is stays released, one discarded stays discarded.

Chunks overlap in three threads (read the next, standardize this one, write the previous); the
measured effect is in bench/results/standardize.json.

Hook for erasure: ``erased`` (see :class:`ErasedFilter`) is asked, per chunk, which standardized
records belong to erased donors; those are skipped with reason 'erased' and never staged.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import psycopg
from psycopg.conninfo import make_conninfo

from donor_sync.privacy.crypto.fields import open_value
from donor_sync.standardize import review_flags, scope
from donor_sync.standardize.fields.result import STRING, concat_issues
from donor_sync.standardize.projections import (
    CsvFormatLike,
    Projection,
    all_projections,
    ensure_columns,
    read_frame,
)
from donor_sync.standardize.routing import Routed, route, staged_parts
from donor_sync.standardize.settings import StandardizeSettings
from donor_sync.standardize.transform import CLEANED_FIELDS, standardize_frame
from donor_sync.standardize.writer import refresh_batches, write_chunk, write_entity_outcomes

log = logging.getLogger(__name__)

#: Given a chunk's standardized records (raw_record_id, source, donor_source_id, email), return
#: the raw_record_ids of erased donors' records. The privacy stage provides it.
ErasedFilter = Callable[[psycopg.Connection, pd.DataFrame], set[int]]

_WORK_MEM = "256MB"


@dataclass(frozen=True)
class BatchCounts:
    """What standardization decided for one batch (from its dispositions)."""

    batch_id: int
    source: str
    staged: int
    quarantined: int
    skipped: int


@dataclass(frozen=True)
class StandardizeResult:
    """Counts per batch, and the staging rows written by this call."""

    batches: dict[int, BatchCounts] = field(default_factory=dict)
    donors: int = 0
    gifts: int = 0

    @property
    def staged(self) -> int:
        """Return the records staged across the batches."""
        return sum(b.staged for b in self.batches.values())

    @property
    def quarantined(self) -> int:
        """Return the records quarantined across the batches."""
        return sum(b.quarantined for b in self.batches.values())

    @property
    def skipped(self) -> int:
        """Return the records skipped across the batches."""
        return sum(b.skipped for b in self.batches.values())

    def per_source(self) -> dict[str, dict[str, int]]:
        """Return ``{source: {staged, quarantined, skipped}}``."""
        out: dict[str, dict[str, int]] = {}
        for b in self.batches.values():
            totals = out.setdefault(b.source, {"staged": 0, "quarantined": 0, "skipped": 0})
            totals["staged"] += b.staged
            totals["quarantined"] += b.quarantined
            totals["skipped"] += b.skipped
        return out


@dataclass(frozen=True)
class Decision:
    """An operator's earlier decision on a quarantined record, honoured when it is standardized again."""

    resolution: str
    fix: Mapping[str, Any]


@dataclass
class _Part:
    """One projection frame of a chunk on its way to the writer."""

    projection: Projection
    frame: pd.DataFrame
    routed: Routed | None
    skipped: pd.DataFrame
    discarded: pd.DataFrame


def default_csv_formats() -> list[CsvFormatLike]:
    """Return the CSV export formats of include/mappings/csv_formats (none when the folder is absent)."""
    from donor_sync.paths import include_dir
    from donor_sync.sources.csv_drop.formats import load_formats

    folder = include_dir() / "mappings" / "csv_formats"
    if not folder.is_dir():
        return []
    return list(load_formats(folder).values())


def standardize_batches(
    conn: psycopg.Connection,
    batch_ids: Sequence[int],
    *,
    settings: StandardizeSettings,
    now: datetime,
    csv_formats: Iterable[CsvFormatLike] | None = None,
    utm_config: Any = None,
    erased: ErasedFilter | None = None,
    actor: str = "standardize",
    parallel: bool = True,
) -> StandardizeResult:
    """Standardize the raw records of ``batch_ids`` and return the counts per batch.

    Each chunk is committed as it is written; the batches are marked 'standardized' at the end.
    With ``parallel`` (the default), three threads overlap: one reads the next chunk's projections
    (Postgres works), this one standardizes the current chunk (Python works), and one writes the
    previous chunk through a second connection with the same parameters (Postgres works).

    :param now: the run's reference time (gift times after it, beyond the tolerance, are errors).
    :param csv_formats: the CSV export formats (default: include/mappings/csv_formats).
    :param utm_config: the UTM rules (default: include/mappings/utm.yaml).
    :param erased: see :data:`ErasedFilter`.
    :param actor: recorded as who closed quarantine rows this run closes.
    """
    if not batch_ids:
        return StandardizeResult()
    formats = default_csv_formats() if csv_formats is None else list(csv_formats)
    projections = all_projections(formats)
    by_key = {p.key: p for p in projections}
    if utm_config is None:
        from donor_sync.standardize.fields import load_utm_config

        utm_config = load_utm_config()
    previous_mem = _tune(conn)
    writer_conn = _sibling(conn) if parallel else None
    if writer_conn is not None:
        _tune(writer_conn)
    try:
        parts = scope.discover(conn, batch_ids)
        projected = [p for p in parts if p.key in by_key]
        skipped = [
            (p.batch_id, p.source, p.entity, settings.skip_entities[p.source][p.entity])
            for p in parts
            if p.key not in by_key and p.entity in settings.skip_entities.get(p.source, {})
        ]
        unknown = [
            (p.batch_id, p.source, p.entity)
            for p in parts
            if p.key not in by_key and p.entity not in settings.skip_entities.get(p.source, {})
        ]
        rerun = _seen_before(conn, batch_ids)
        conn.commit()
        batches_of = {key: sorted({p.batch_id for p in projected if p.key == key}) for key in by_key}
        job = _Job(settings, now, utm_config, erased, actor, rerun)

        def kinds_not_staged(w: psycopg.Connection) -> _Written:
            write_entity_outcomes(
                w, skipped_parts=skipped, unknown_parts=unknown, superseded=(), actor=actor, cleanup=rerun
            )
            return _Written()

        def plan() -> tuple[list[tuple[int, int]], Callable[[psycopg.Connection], _Written]]:
            scope.find_superseded(conn, projections, projected)
            superseded = scope.superseded_ids(conn)

            def superseded_versions(w: psycopg.Connection) -> _Written:
                write_entity_outcomes(
                    w, skipped_parts=(), unknown_parts=(), superseded=superseded, actor=actor, cleanup=rerun
                )
                return _Written()

            return scope.chunk_ranges(projected, settings.chunk_size), superseded_versions

        def read(low: int, high: int) -> tuple[list[tuple[Projection, pd.DataFrame]], dict[int, Decision]]:
            chunk = scope.chunk_scope
            frames = [
                (
                    by_key[key],
                    read_frame(conn, by_key[key].query(chunk(batches_of[key], low, high), (low, high))),
                )
                for key in sorted(by_key)
                if any(p.key == key and p.high >= low and p.low <= high for p in projected)
            ]
            return frames, (_decisions(conn, batch_ids, low, high) if rerun else {})

        written = _run_chunks(conn, writer_conn, plan=plan, read=read, job=job, first_write=kinds_not_staged)
        touched = set(batch_ids) | written.touched
        refresh_batches(conn, touched, mark_standardized=False)
        refresh_batches(conn, batch_ids, mark_standardized=True)
        conn.commit()
    finally:
        for c in (conn, writer_conn):
            if c is not None and c.info.transaction_status == psycopg.pq.TransactionStatus.INERROR:
                c.rollback()
        if writer_conn is not None:
            writer_conn.close()
        conn.execute("SELECT set_config('work_mem', %s, false), set_config('jit', %s, false)", previous_mem)
        conn.commit()
    return StandardizeResult(batch_counts(conn, batch_ids), written.donors, written.gifts)


@dataclass(frozen=True)
class _Job:
    """What every chunk of one standardization shares."""

    settings: StandardizeSettings
    now: datetime
    utm_config: Any
    erased: ErasedFilter | None
    actor: str
    rerun: bool


@dataclass
class _Written:
    """Staging rows written, and batches whose counts other records changed."""

    donors: int = 0
    gifts: int = 0
    touched: set[int] = field(default_factory=set)

    def add(self, other: _Written) -> None:
        """Add another chunk's figures."""
        self.donors += other.donors
        self.gifts += other.gifts
        self.touched |= other.touched


_Reader = Callable[[int, int], tuple[list[tuple[Projection, pd.DataFrame]], dict[int, "Decision"]]]


_Plan = Callable[[], tuple[list[tuple[int, int]], Callable[[psycopg.Connection], "_Written"]]]


def _run_chunks(
    conn: psycopg.Connection,
    writer_conn: psycopg.Connection | None,
    *,
    plan: _Plan,
    read: _Reader,
    job: _Job,
    first_write: Callable[[psycopg.Connection], _Written],
) -> _Written:
    """Plan, read, standardize and write every chunk; overlapped in three threads with a writer connection.

    ``first_write`` needs no plan (kinds not staged) and starts at once; ``plan`` (superseded
    versions, chunks) runs on the reading connection meanwhile and returns the chunks and the write
    that records what it found.
    """
    total = _Written()
    if writer_conn is None:
        total.add(first_write(conn))
        chunks, planned_write = plan()
        total.add(planned_write(conn))
        conn.commit()
        for low, high in chunks:
            frames, decisions = read(low, high)
            parts = [_standardize_part(p, frame, job, decisions) for p, frame in frames]
            total.add(_finish_chunk(conn, parts, job))
            conn.commit()
        return total

    def write(fn: Callable[[psycopg.Connection], _Written]) -> _Written:
        try:
            result = fn(writer_conn)
            writer_conn.commit()
            return result
        except BaseException:
            writer_conn.rollback()
            raise

    with (
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="standardize-read") as reader,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="standardize-write") as writer,
    ):
        pending: Future[_Written] = writer.submit(write, first_write)
        chunks, planned_write = reader.submit(plan).result()
        conn.commit()
        total.add(pending.result())
        pending = writer.submit(write, planned_write)
        next_read = reader.submit(read, *chunks[0]) if chunks else None
        waited_read = working = waited_write = 0.0
        for i in range(len(chunks)):
            assert next_read is not None
            began = time.perf_counter()
            frames, decisions = next_read.result()
            next_read = reader.submit(read, *chunks[i + 1]) if i + 1 < len(chunks) else None
            started = time.perf_counter()
            parts = [_standardize_part(p, frame, job, decisions) for p, frame in frames]
            del frames
            done = time.perf_counter()
            total.add(pending.result())  # at most one chunk waits to be written
            pending = writer.submit(write, functools.partial(_finish_chunk, parts=parts, job=job))
            waited_read += started - began
            working += done - started
            waited_write += time.perf_counter() - done
            log.info("standardized raw records %s..%s", *chunks[i])
        began = time.perf_counter()
        total.add(pending.result())
        waited_write += time.perf_counter() - began
    log.info(
        "standardize: %.1f s standardizing, %.1f s waiting for reads, %.1f s waiting for writes",
        working,
        waited_read,
        waited_write,
    )
    return total


def _tune(conn: psycopg.Connection) -> tuple[str, str]:
    """Give the session the memory its sorts and hashes need, without JIT; return the previous settings.

    JIT compilation cost 100 ms on each index-probe query of an hourly run (the planner's row
    estimates for expression indexes are high) and saved nothing on the projections.
    """
    row = conn.execute("SELECT current_setting('work_mem'), current_setting('jit')").fetchone()
    conn.execute(f"SET work_mem = '{_WORK_MEM}'")
    conn.execute("SET jit = off")
    conn.commit()
    return (str(row[0]), str(row[1])) if row else ("4MB", "on")


def _sibling(conn: psycopg.Connection) -> psycopg.Connection | None:
    """Open a second connection with ``conn``'s parameters (for the writer thread), or None if it fails."""
    params = {
        o.keyword.decode(): o.val.decode()
        for o in conn.pgconn.info
        if o.val is not None and o.keyword.decode() not in {"application_name"}
    }
    try:
        return psycopg.connect(make_conninfo(**params), application_name="donor-sync standardize writer")
    except psycopg.Error:
        log.warning("no second connection for the writer; standardizing without overlap")
        return None


def restandardize_record(
    conn: psycopg.Connection,
    raw_record_id: int,
    projection: Projection,
    *,
    settings: StandardizeSettings,
    now: datetime,
    utm_config: Any,
    actor: str,
    overrides: Mapping[str, str | None] | None = None,
    release: bool = False,
    resolution: tuple[str, Mapping[str, Any] | None, str | None] = ("fixed", {}, None),
) -> set[int]:
    """Standardize one raw record again (a quarantine fix or release) and write it; not committed.

    Return the batches whose counts changed besides the record's own.

    :param overrides: intake field values replacing the projected ones.
    :param release: stage it as it is (raises CannotReleaseError when a record rule still fails).
    :param resolution: how its open quarantine row is closed if it is staged now.
    """
    frame = read_frame(
        conn, projection.query(scope.records_scope([raw_record_id]), (raw_record_id, raw_record_id))
    )
    routed, skipped = standardize_part(
        frame,
        projection,
        settings,
        now,
        utm_config,
        overrides={raw_record_id: overrides} if overrides else None,
        release=np.ones(int(frame["skip_reason"].isna().sum()), dtype=bool) if release else None,
        strict_release=release,
    )
    job = _Job(settings, now, utm_config, None, actor, rerun=True)
    part = _Part(projection, frame, routed, skipped, frame.iloc[:0])
    return _finish_chunk(conn, [part], job, staged_resolution=resolution, medians=False).touched


def batch_counts(conn: psycopg.Connection, batch_ids: Sequence[int]) -> dict[int, BatchCounts]:
    """Return the recorded counts of each batch."""
    rows = conn.execute(
        "SELECT batch_id, source, records_staged, records_quarantined, records_skipped FROM raw.batches"
        " WHERE batch_id = ANY(%s) ORDER BY batch_id",
        (list(batch_ids),),
    ).fetchall()
    return {int(r[0]): BatchCounts(int(r[0]), str(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in rows}


def _seen_before(conn: psycopg.Connection, batch_ids: Sequence[int]) -> bool:
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM staging.dispositions WHERE batch_id = ANY(%s))", (list(batch_ids),)
    ).fetchone()
    return bool(row and row[0])


def _decisions(
    conn: psycopg.Connection, batch_ids: Sequence[int], low: int, high: int
) -> dict[int, Decision]:
    """Return the latest operator decision on each record of one chunk."""
    rows = conn.execute(
        "SELECT DISTINCT ON (raw_record_id) raw_record_id, resolution, fix, quarantine_id"
        " FROM staging.quarantine"
        " WHERE batch_id = ANY(%s) AND raw_record_id BETWEEN %s AND %s AND released_at IS NOT NULL"
        " AND resolution IN ('fixed', 'released_as_is', 'discarded')"
        " ORDER BY raw_record_id, released_at DESC, quarantine_id DESC",
        (list(batch_ids), low, high),
    ).fetchall()
    fixes = [open_value("staging.quarantine.fix", r[2], r[3]) for r in rows]
    return {int(r[0]): Decision(str(r[1]), dict(fix or {})) for r, fix in zip(rows, fixes, strict=True)}


def standardize_part(
    frame: pd.DataFrame,
    projection: Projection,
    settings: StandardizeSettings,
    now: datetime,
    utm_config: Any,
    *,
    overrides: Mapping[int, Mapping[str, str | None]] | None = None,
    release: np.ndarray | None = None,
    strict_release: bool = False,
) -> tuple[Routed | None, pd.DataFrame]:
    """Standardize and route one projection frame; return the routed rows and the skipped ones.

    :param overrides: per raw_record_id, intake field values replacing the projected ones (a fix).
    :param release: per row of the frame (after skipped rows are removed), whether the operator
        released it as it is.
    """
    frame = ensure_columns(frame).reset_index(drop=True)
    if overrides:
        ids = frame["raw_record_id"].to_numpy()
        for raw_id, values in overrides.items():
            rows = np.flatnonzero(ids == raw_id)
            for name, value in values.items():
                frame.loc[rows, name] = value
    skip = frame["skip_reason"].notna().to_numpy(dtype=bool)
    skipped = frame.loc[skip]
    rest = frame[~skip].reset_index(drop=True)
    if not len(rest):
        return None, skipped
    std = standardize_frame(
        rest,
        projection.options,
        settings,
        now=now,
        carries_gift=projection.carries_gift,
        utm_config=utm_config,
    )
    std = replace(
        std,
        issues=concat_issues([std.issues, _encoding_issues(rest, projection)]),
        extra_flags=pd.concat(
            [
                std.extra_flags,
                review_flags.sql_like(rest, settings.review_flags.sql_like_patterns, CLEANED_FIELDS),
            ],
            ignore_index=True,
        ),
    )
    return route(std, settings, release_rows=release, strict_release=strict_release), skipped


def _standardize_part(
    projection: Projection, frame: pd.DataFrame, job: _Job, decisions: Mapping[int, Decision]
) -> _Part:
    """Standardize one projection frame of a chunk, honouring operators' earlier decisions."""
    ids = frame["raw_record_id"].to_numpy() if len(frame) else np.array([], dtype=np.int64)
    discarded_ids = [i for i, d in decisions.items() if d.resolution == "discarded"]
    discarded = frame.iloc[:0]
    if discarded_ids:
        gone = np.isin(ids, discarded_ids)
        discarded = frame[gone]
        frame = frame[~gone]
    overrides = {i: d.fix for i, d in decisions.items() if d.resolution == "fixed" and d.fix}
    released_ids = [i for i, d in decisions.items() if d.resolution == "released_as_is"]
    release = None
    if released_ids:
        kept = frame[frame["skip_reason"].isna()] if "skip_reason" in frame.columns else frame
        release = np.isin(kept["raw_record_id"].to_numpy(), released_ids)
    routed, skipped = standardize_part(
        frame, projection, job.settings, job.now, job.utm_config, overrides=overrides, release=release
    )
    return _Part(projection, frame, routed, skipped, discarded)


def _encoding_issues(frame: pd.DataFrame, projection: Projection) -> pd.DataFrame:
    """Return invalid_encoding issues for CSV cells whose bytes were not valid in the file's encoding."""
    rows = np.flatnonzero(frame["encoding_errors"].notna().to_numpy(dtype=bool))
    if not len(rows):
        return concat_issues([])
    records: list[dict[str, Any]] = []
    for position in rows.tolist():
        try:
            headers = json.loads(str(frame["encoding_errors"].iat[position]))
        except ValueError:
            headers = ["(unreadable list)"]
        for header in headers if isinstance(headers, list) else [headers]:
            intake = projection.encoding_fields.get(str(header))
            field_name = intake or f"row.{header}"
            value = frame[intake].iat[position] if intake and intake in frame.columns else None
            records.append(
                {
                    "row": frame.index[position],
                    "field": field_name,
                    "code": "invalid_encoding",
                    "severity": "error",
                    "message": "The file's bytes for this cell are not valid in its encoding; the original "
                    "line is kept in the raw record (raw_line_b64).",
                    "value": None if value is None or value is pd.NA else str(value),
                }
            )
    out = pd.DataFrame.from_records(records)
    for column in ("field", "code", "severity", "message"):
        out[column] = out[column].astype(STRING)
    out["row"] = out["row"].astype(object)
    out["value"] = out["value"].astype(object)
    return out


def _finish_chunk(
    conn: psycopg.Connection,
    parts: list[_Part],
    job: _Job,
    *,
    staged_resolution: tuple[str, Mapping[str, Any] | None, str | None] = ("fixed", {}, None),
    medians: bool = True,
) -> _Written:
    """Flag, assemble and write one chunk's parts (not committed)."""
    settings, erased = job.settings, job.erased
    routed = [p.routed for p in parts if p.routed is not None]
    _flag_outliers(routed, settings, medians=medians)
    _flag_shared_emails(conn, routed, settings)
    erased_ids = _erased(conn, routed, erased) if erased else set()
    donors, gifts, quarantine, dispositions = [], [], [], []
    for part in parts:
        if len(part.skipped):
            dispositions.append(
                _dispositions(
                    part.skipped,
                    np.full(len(part.skipped), "skipped", dtype=object),
                    part.skipped["skip_reason"].to_numpy(dtype=object),
                )
            )
        if len(part.discarded):
            dispositions.append(
                _dispositions(part.discarded, np.full(len(part.discarded), "quarantined", dtype=object), None)
            )
        if part.routed is None:
            continue
        r = part.routed
        rows = r.std.rows
        ids = rows["raw_record_id"].to_numpy()
        gone = np.isin(ids, list(erased_ids)) if erased_ids else np.zeros(len(ids), dtype=bool)
        empty = ~r.std.has_donor & ~r.std.has_gift
        staged_donors, staged_gifts = staged_parts(r)
        staged_donors = staged_donors[~gone[staged_donors["donor_position"].to_numpy()]]
        staged_gifts = staged_gifts[~gone[staged_gifts["gift_position"].to_numpy()]]
        donors.append(staged_donors)
        gifts.append(staged_gifts)
        q = r.quarantined & ~gone
        quarantine.append(
            pd.DataFrame(
                {
                    "raw_record_id": ids[q],
                    "batch_id": rows["batch_id"].to_numpy()[q],
                    "source": rows["source"].to_numpy()[q],
                    "entity": rows["object_entity"].to_numpy()[q],
                    "source_id": rows["object_id"].to_numpy()[q],
                    "reasons": r.reasons.reindex(np.flatnonzero(q)).to_numpy(dtype=object),
                }
            )
        )
        fate = np.where(q, "quarantined", "staged").astype(object)
        reason = np.full(len(ids), None, dtype=object)
        fate[empty & ~q] = "skipped"
        reason[empty & ~q] = "no_donor_or_gift"
        fate[gone] = "skipped"
        reason[gone] = "erased"
        dispositions.append(_dispositions(rows, fate, reason))
    donors_frame = pd.concat(donors, ignore_index=True) if donors else pd.DataFrame()
    gifts_frame = pd.concat(gifts, ignore_index=True) if gifts else pd.DataFrame()
    touched = write_chunk(
        conn,
        donors=donors_frame,
        gifts=gifts_frame,
        quarantine=pd.concat(quarantine, ignore_index=True) if quarantine else pd.DataFrame(),
        dispositions=pd.concat(dispositions, ignore_index=True) if dispositions else pd.DataFrame(),
        actor=job.actor,
        cleanup=job.rerun,
        staged_resolution=staged_resolution,
    )
    return _Written(len(donors_frame), len(gifts_frame), touched)


def _dispositions(rows: pd.DataFrame, fates: np.ndarray, reasons: np.ndarray | None) -> pd.DataFrame:
    """Return disposition rows for ``rows`` (projection rows, with the object identity the writer needs)."""
    return pd.DataFrame(
        {
            "raw_record_id": rows["raw_record_id"].to_numpy(),
            "batch_id": rows["batch_id"].to_numpy(),
            "disposition": fates,
            "reason": reasons if reasons is not None else np.full(len(rows), None, dtype=object),
            "source": rows["source"].to_numpy(),
            "object_entity": rows["object_entity"].to_numpy(),
            "object_id": rows["object_id"].to_numpy(),
            "source_updated_at": rows["source_updated_at"].to_numpy(),
        }
    )


def _flag_outliers(routed: list[Routed], settings: StandardizeSettings, *, medians: bool) -> None:
    config = settings.review_flags.outlier_amount
    if not config.enabled:
        return
    staged = [(r, np.flatnonzero(~r.quarantined & r.std.has_gift)) for r in routed]
    frames = [
        pd.DataFrame(
            {
                "part": k,
                "position": rows,
                "amount": (
                    r.gifts["amount_minor"].astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
                    / 10.0
                    ** r.gifts["currency_exponent"].astype("Float64").to_numpy(dtype=np.float64, na_value=0)
                )[rows],
                "currency": r.gifts["currency"].astype(object).to_numpy(dtype=object)[rows],
                "source": r.std.rows["source"].astype(object).to_numpy(dtype=object)[rows],
            }
        )
        for k, (r, rows) in enumerate(staged)
        if len(rows)
    ]
    if not frames:
        return
    chunk = pd.concat(frames, ignore_index=True)
    flags = review_flags.outlier_amounts(
        chunk.index,
        chunk["amount"],
        chunk["currency"],
        chunk["source"],
        config if medians else config.model_copy(update={"min_sample": 10**12}),
    )
    if not len(flags):
        return
    hits = chunk.loc[flags["row"].to_list()].reset_index(drop=True)
    flags = flags.reset_index(drop=True)
    for k in hits["part"].unique().tolist():
        mask = (hits["part"] == k).to_numpy()
        target = routed[int(k)]
        target.add_flags(flags[mask].assign(row=target.std.rows.index[hits.loc[mask, "position"].to_numpy()]))


def _flag_shared_emails(
    conn: psycopg.Connection, routed: list[Routed], settings: StandardizeSettings
) -> None:
    config = settings.review_flags.email_shared
    if not config.enabled:
        return
    frames = []
    offsets = []
    offset = 0
    for r in routed:
        offsets.append(offset)
        rows = np.flatnonzero(
            ~r.quarantined & r.std.has_donor & r.donors["email"].notna().to_numpy(dtype=bool)
        )
        offset += len(r.std.rows)
        if not len(rows):
            continue
        donors = r.donors.iloc[rows]
        frames.append(
            pd.DataFrame(
                {
                    "row": offsets[-1] + rows,
                    "raw_record_id": r.std.rows["raw_record_id"].to_numpy()[rows],
                    "source": r.std.rows["source"].to_numpy()[rows],
                    "source_id": r.std.rows["donor_source_id"].to_numpy()[rows],
                    "email": donors["email"].to_numpy(),
                    "first_name": donors["first_name"].to_numpy(),
                    "last_name": donors["last_name"].to_numpy(),
                    "organization_name": donors["organization_name"].to_numpy(),
                }
            )
        )
    if not frames:
        return
    flags, staged = review_flags.shared_emails(conn, pd.concat(frames, ignore_index=True), config)
    if staged:
        review_flags.flag_staged_donors(
            conn, staged, "email_shared", "email", review_flags.EMAIL_SHARED_MESSAGE
        )
    if not len(flags):
        return
    global_rows = flags["row"].to_numpy(dtype=np.int64)
    part_of = np.searchsorted(np.asarray(offsets), global_rows, side="right") - 1
    for k in np.unique(part_of).tolist():
        r = routed[k]
        mine = part_of == k
        r.add_flags(flags[mine].assign(row=r.std.rows.index[global_rows[mine] - offsets[k]]))


def _erased(conn: psycopg.Connection, routed: list[Routed], erased: ErasedFilter) -> set[int]:
    frames = [
        pd.DataFrame(
            {
                "raw_record_id": r.std.rows["raw_record_id"].to_numpy(),
                "source": r.std.rows["source"].astype(object).to_numpy(dtype=object),
                "donor_source_id": r.std.rows["donor_source_id"].astype(object).to_numpy(dtype=object),
                "email": r.donors["email"].astype(object).to_numpy(dtype=object),
            }
        )
        for r in routed
    ]
    return erased(conn, pd.concat(frames, ignore_index=True)) if frames else set()
