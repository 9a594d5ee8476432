"""Quarantine operations: list, show, fix, release as is, discard — each audited.

- **fix**: the raw record is standardized again with field overrides ``{intake_field: value}``
  (the raw payload is never changed); it is staged, or stays quarantined with the new reasons.
- **release as is**: an operator accepts the record: it is staged with what parses; values that
  failed become empty with a review flag. A record that breaks a record rule (no amount, say)
  cannot be released as it is and must be fixed.
- **discard**: the quarantine row is closed; the disposition stays 'quarantined'.

A later re-standardization of the batch honours these decisions (see
:mod:`donor_sync.standardize.pipeline`). Every operation writes ``sync.audit_log`` with who and
why; the details hold ids, field names and outcomes, never the values (PII).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from donor_sync.errors import DonorSyncError
from donor_sync.privacy.crypto.fields import open_value
from donor_sync.standardize.intake import INTAKE_FIELDS
from donor_sync.standardize.pipeline import default_csv_formats, restandardize_record
from donor_sync.standardize.projections import CsvFormatLike, all_projections
from donor_sync.standardize.settings import StandardizeSettings
from donor_sync.standardize.writer import refresh_batches


class QuarantineError(DonorSyncError):
    """A quarantine operation cannot be done (unknown or closed row, unknown field...)."""


@dataclass(frozen=True)
class QuarantinedRecord:
    """One quarantine row (``reasons`` hold the offending values: show them, never log them)."""

    quarantine_id: int
    raw_record_id: int
    batch_id: int
    source: str
    entity: str
    source_id: str
    reasons: list[dict[str, Any]]
    quarantined_at: datetime
    released_at: datetime | None
    released_by: str | None
    resolution: str | None
    fix: dict[str, Any] | None
    note: str | None

    @property
    def codes(self) -> list[str]:
        """Return the reason codes."""
        return [str(r.get("code")) for r in self.reasons]


@dataclass(frozen=True)
class Outcome:
    """What a fix or a release did: the record's disposition now, and its reasons if still quarantined."""

    quarantine_id: int
    raw_record_id: int
    disposition: str
    reasons: list[dict[str, Any]]


_COLUMNS = (
    "quarantine_id, raw_record_id, batch_id, source, entity, source_id, reasons, quarantined_at, "
    "released_at, released_by, resolution, fix, note"
)


#: encrypted at rest (include/mappings/privacy/encryption.yaml)
FIX_COLUMN = "staging.quarantine.fix"


def _record(row: Sequence[Any]) -> QuarantinedRecord:
    """Build a record from a row of ``_COLUMNS``, opening its encrypted fix."""
    values = list(row)
    values[11] = open_value(FIX_COLUMN, values[11], values[0])
    return QuarantinedRecord(*values)


def list_quarantined(
    conn: psycopg.Connection,
    *,
    source: str | None = None,
    code: str | None = None,
    include_closed: bool = False,
    limit: int = 100,
) -> list[QuarantinedRecord]:
    """Return quarantine rows, newest first: open ones unless ``include_closed``."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM staging.quarantine"
        " WHERE (%(closed)s OR released_at IS NULL)"
        " AND (%(source)s::text IS NULL OR source = %(source)s)"
        " AND (%(code)s::text IS NULL"
        "      OR reasons @> jsonb_build_array(jsonb_build_object('code', %(code)s::text)))"
        " ORDER BY quarantined_at DESC, quarantine_id DESC LIMIT %(limit)s",
        {"closed": include_closed, "source": source, "code": code, "limit": limit},
    ).fetchall()
    return [_record(row) for row in rows]


def get_quarantined(
    conn: psycopg.Connection, quarantine_id: int, *, for_update: bool = False
) -> QuarantinedRecord:
    """Return one quarantine row.

    :raises QuarantineError: when there is none with that id.
    """
    lock = " FOR UPDATE" if for_update else ""
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM staging.quarantine WHERE quarantine_id = %s{lock}", (quarantine_id,)
    ).fetchone()
    if row is None:
        raise QuarantineError(f"no quarantine row {quarantine_id}")
    return _record(row)


def _open(conn: psycopg.Connection, quarantine_id: int) -> QuarantinedRecord:
    record = get_quarantined(conn, quarantine_id, for_update=True)
    if record.released_at is not None:
        raise QuarantineError(
            f"quarantine row {quarantine_id} is already closed ({record.resolution} by {record.released_by})"
        )
    return record


def audit(
    conn: psycopg.Connection, *, actor: str, action: str, quarantine_id: int, details: Mapping[str, Any]
) -> None:
    """Append one quarantine operation to sync.audit_log (ids, field names and outcomes only)."""
    conn.execute(
        "INSERT INTO sync.audit_log (actor, action, object_type, object_id, details)"
        " VALUES (%s, %s, 'quarantine', %s, %s::jsonb)",
        (actor, action, str(quarantine_id), json.dumps(dict(details), default=str)),
    )


def fix(
    conn: psycopg.Connection,
    quarantine_id: int,
    overrides: Mapping[str, str | None],
    *,
    actor: str,
    settings: StandardizeSettings,
    now: datetime,
    note: str | None = None,
    csv_formats: Iterable[CsvFormatLike] | None = None,
    utm_config: Any = None,
) -> Outcome:
    """Standardize a quarantined record again with ``overrides`` (intake field -> value); commit.

    :raises QuarantineError: unknown row, closed row, no override, or a field that is not an intake field.
    """
    if not overrides:
        raise QuarantineError("give at least one field=value to fix")
    unknown = sorted(set(overrides) - INTAKE_FIELDS)
    if unknown:
        raise QuarantineError(
            f"not intake fields: {', '.join(unknown)} (see donor_sync.standardize.intake; e.g. email, amount)"
        )
    record = _open(conn, quarantine_id)
    outcome = _restandardize(
        conn,
        record,
        overrides=overrides,
        release=False,
        resolution=("fixed", dict(overrides), note),
        actor=actor,
        settings=settings,
        now=now,
        csv_formats=csv_formats,
        utm_config=utm_config,
    )
    action = "quarantine.fixed" if outcome.disposition == "staged" else "quarantine.fix_failed"
    audit(
        conn,
        actor=actor,
        action=action,
        quarantine_id=quarantine_id,
        details={
            "raw_record_id": record.raw_record_id,
            "fields": sorted(overrides),
            "outcome": outcome.disposition,
            "codes": [str(r.get("code")) for r in outcome.reasons],
            "note": note,
        },
    )
    conn.commit()
    return outcome


def release(
    conn: psycopg.Connection,
    quarantine_id: int,
    *,
    actor: str,
    settings: StandardizeSettings,
    now: datetime,
    note: str | None = None,
    csv_formats: Iterable[CsvFormatLike] | None = None,
    utm_config: Any = None,
) -> Outcome:
    """Stage a quarantined record as it is (what parses; flags kept); commit.

    :raises QuarantineError: unknown or closed row.
    :raises CannotReleaseError: the record breaks a record rule; fix it instead.
    """
    record = _open(conn, quarantine_id)
    try:
        outcome = _restandardize(
            conn,
            record,
            overrides={},
            release=True,
            resolution=("released_as_is", None, note),
            actor=actor,
            settings=settings,
            now=now,
            csv_formats=csv_formats,
            utm_config=utm_config,
        )
    except DonorSyncError:
        conn.rollback()
        raise
    audit(
        conn,
        actor=actor,
        action="quarantine.released",
        quarantine_id=quarantine_id,
        details={"raw_record_id": record.raw_record_id, "outcome": outcome.disposition, "note": note},
    )
    conn.commit()
    return outcome


def discard(conn: psycopg.Connection, quarantine_id: int, *, actor: str, note: str) -> QuarantinedRecord:
    """Close a quarantine row as discarded (the record stays quarantined, for good); commit.

    :raises QuarantineError: unknown or closed row, or no note saying why.
    """
    if not note or not note.strip():
        raise QuarantineError("say why the record is discarded (--note)")
    record = _open(conn, quarantine_id)
    conn.execute(
        "UPDATE staging.quarantine SET released_at = now(), released_by = %s, resolution = 'discarded',"
        " note = %s"
        " WHERE quarantine_id = %s",
        (actor, note, quarantine_id),
    )
    audit(
        conn,
        actor=actor,
        action="quarantine.discarded",
        quarantine_id=quarantine_id,
        details={"raw_record_id": record.raw_record_id, "codes": record.codes, "note": note},
    )
    conn.commit()
    return get_quarantined(conn, quarantine_id)


def _restandardize(
    conn: psycopg.Connection,
    record: QuarantinedRecord,
    *,
    overrides: Mapping[str, str | None],
    release: bool,
    resolution: tuple[str, Mapping[str, Any] | None, str | None],
    actor: str,
    settings: StandardizeSettings,
    now: datetime,
    csv_formats: Iterable[CsvFormatLike] | None,
    utm_config: Any,
) -> Outcome:
    """Project one raw record again, standardize it with overrides (or released), and write the outcome."""
    formats = default_csv_formats() if csv_formats is None else list(csv_formats)
    row = conn.execute(
        "SELECT source::text, entity FROM raw.records WHERE raw_record_id = %(id)s"
        " UNION ALL SELECT source, 'csv_row' FROM raw.csv_record(%(id)s)",
        {"id": record.raw_record_id},
    ).fetchone()
    if row is None:
        raise QuarantineError(
            f"raw record {record.raw_record_id} is gone (purged); discard the quarantine row"
        )
    by_key = {p.key: p for p in all_projections(formats)}
    projection = by_key.get((str(row[0]), str(row[1])))
    if projection is None:
        raise QuarantineError(
            f"no projection reads {row[0]} {row[1]} records; add one (or a skip rule), or discard the row"
        )
    if utm_config is None:
        from donor_sync.standardize.fields import load_utm_config

        utm_config = load_utm_config()
    touched = restandardize_record(
        conn,
        record.raw_record_id,
        projection,
        settings=settings,
        now=now,
        utm_config=utm_config,
        actor=actor,
        overrides=overrides,
        release=release,
        resolution=resolution,
    )
    refresh_batches(conn, {record.batch_id} | touched, mark_standardized=False)
    disposition = conn.execute(
        "SELECT disposition FROM staging.dispositions WHERE raw_record_id = %s", (record.raw_record_id,)
    ).fetchone()
    reopened = conn.execute(
        "SELECT reasons FROM staging.quarantine WHERE raw_record_id = %s AND released_at IS NULL",
        (record.raw_record_id,),
    ).fetchone()
    return Outcome(
        record.quarantine_id,
        record.raw_record_id,
        str(disposition[0]) if disposition else "undecided",
        list(reopened[0]) if reopened else [],
    )
