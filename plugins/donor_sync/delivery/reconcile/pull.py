"""Pull staff edits and merges back from one CRM into core (donors_nightly's reconcile stage).

For every CRM record changed since the destination's watermark:

1. Find its donor: by the CRM id we stored when the record landed (``sync.destination_state``),
   else by the donor id the CRM holds in ``key_field``; a donor merged since is followed to its
   survivor. Records of no known donor (created by staff in the CRM) are counted, not imported.
2. Merges made in the CRM become merges in core: a HubSpot contact listing merged ids, or a
   Salesforce contact deleted with a master record, whose donors differ, merges the loser's donor
   into the winner's (``manual_merge`` by ``crm:<destination>``: reversible with
   ``donor-sync review unmerge``), and the loser's destination record is marked deleted there.
3. Pulled fields (policy ``pull``) are standardized and stored as the attributes of the donor's
   CRM record in ``core.donor_sources``, dated by the CRM's modification time; survivorship then
   recomputes the golden record, so a staff edit wins where the rules say the CRM wins (names,
   do-not-contact, deceased) and competes by recency elsewhere (address, phone).

The watermark advances to the newest modification seen only when the whole pull succeeded (one
transaction, committed by the caller).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg

from donor_sync.delivery.reconcile.records import RemoteReader, RemoteRecord
from donor_sync.delivery.reconcile.settings import DestinationReconcile
from donor_sync.delivery.reconcile.standardize import standardize_pulled
from donor_sync.privacy.consent import pullback as consent_pullback
from donor_sync.resolve.destination_ids import DestinationId, attach_destination_ids
from donor_sync.resolve.donors import ResolveRules
from donor_sync.resolve.match_store import refresh_match_keys
from donor_sync.resolve.review import ReviewError, merge_donors
from donor_sync.resolve.survivorship import recompute_golden

log = logging.getLogger(__name__)

CHUNK = 1000


@dataclass
class PullReport:
    """What a pull read and changed (counts and ids only)."""

    destination: str
    read: int = 0
    matched: int = 0
    unmatched: int = 0  # no known donor: created in the CRM
    deleted: int = 0
    merges: int = 0
    merge_conflicts: int = 0  # a CRM merge core could not follow (a donor erased, say)
    donors_changed: int = 0  # golden records that changed
    # core field -> donors whose value the CRM changed
    field_changes: Counter[str] = field(default_factory=Counter)
    # core field -> CRM records still holding another value than the golden record after the pull
    # (survivorship kept a source's value): the next push does not change them, so they are drift.
    drift: Counter[str] = field(default_factory=Counter)
    watermark: datetime | None = None
    # consent pull-back counts (donor_sync.privacy.consent.pullback)
    consent: dict[str, int] = field(default_factory=dict)

    def metrics(self) -> dict[str, int]:
        """Counts for ``sync.run_metrics`` (stage ``reconcile``, scope = destination)."""
        out = {
            "read": self.read,
            "matched": self.matched,
            "unmatched": self.unmatched,
            "deleted": self.deleted,
            "merges": self.merges,
            "merge_conflicts": self.merge_conflicts,
            "donors_changed": self.donors_changed,
            "field_changes": sum(self.field_changes.values()),
            "drift_records": sum(self.drift.values()),
        }
        out.update({f"drift_{name}": count for name, count in self.drift.items()})
        out.update(self.consent)
        return out


def _watermark(conn: psycopg.Connection, destination: str, stream: str) -> datetime | None:
    row = conn.execute(
        "SELECT cursor_ts FROM sync.watermarks WHERE source = %s AND stream = %s", [destination, stream]
    ).fetchone()
    return None if row is None else row[0]


def _donors_of(
    conn: psycopg.Connection, destination: str, entity: str, records: list[RemoteRecord]
) -> dict[str, str]:
    """Remote id -> live donor id (merged donors followed to their survivor)."""
    rows = conn.execute(
        "WITH r AS (SELECT * FROM unnest(%s::text[], %s::text[]) AS r(remote_id, key))"
        " SELECT r.remote_id, coalesce(d.merged_into, d.donor_id)::text"
        " FROM r"
        " LEFT JOIN sync.destination_state s"
        "   ON s.destination = %s AND s.entity = %s AND s.remote_id = r.remote_id"
        " JOIN core.donors d ON d.donor_id = coalesce(s.donor_id,"
        "   CASE WHEN r.key ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'"
        "   THEN r.key::uuid END)"
        " WHERE d.erased_at IS NULL",
        [[r.remote_id for r in records], [r.key for r in records], destination, entity],
    ).fetchall()
    return {str(a): str(b) for a, b in rows}


def _donors_of_ids(
    conn: psycopg.Connection, destination: str, entity: str, remote_ids: list[str]
) -> dict[str, str]:
    rows = conn.execute(
        "SELECT s.remote_id, coalesce(d.merged_into, d.donor_id)::text FROM sync.destination_state s"
        " JOIN core.donors d ON d.donor_id = s.donor_id"
        " WHERE s.destination = %s AND s.entity = %s AND s.remote_id = ANY(%s) AND d.erased_at IS NULL",
        [destination, entity, remote_ids],
    ).fetchall()
    return {str(a): str(b) for a, b in rows}


def _current(conn: psycopg.Connection, donor_ids: list[str], columns: list[str]) -> dict[str, dict[str, Any]]:
    if not donor_ids or not columns:
        return {}
    cols = ", ".join(f'"{c}"' for c in columns)
    rows = conn.execute(
        f"SELECT donor_id::text, {cols} FROM core.donors WHERE donor_id = ANY(%s::uuid[])", [donor_ids]
    ).fetchall()
    return {r[0]: dict(zip(columns, r[1:], strict=True)) for r in rows}


def _follow_merges(
    conn: psycopg.Connection,
    settings: DestinationReconcile,
    destination: str,
    pairs: list[tuple[str, str]],
    report: PullReport,
    *,
    rules: ResolveRules,
    actor: str,
    now: datetime,
) -> None:
    """Merge in core what staff merged in the CRM: ``pairs`` of (winner remote id, loser remote id)."""
    if not pairs:
        return
    donors = _donors_of_ids(conn, destination, settings.entity, sorted({i for p in pairs for i in p}))
    for winner, loser in pairs:
        conn.execute(
            "UPDATE sync.destination_state SET remote_deleted_at = %s"
            " WHERE destination = %s AND entity = %s AND remote_id = %s AND remote_deleted_at IS NULL",
            [now, destination, settings.entity, loser],
        )
        survivor, merged = donors.get(winner), donors.get(loser)
        if survivor is None or merged is None or survivor == merged:
            continue
        # Both may have moved by an earlier merge of this pull.
        live = conn.execute(
            "SELECT coalesce(merged_into, donor_id)::text FROM core.donors WHERE donor_id = ANY(%s::uuid[])"
            " ORDER BY array_position(%s::uuid[], donor_id)",
            [[survivor, merged], [survivor, merged]],
        ).fetchall()
        survivor, merged = str(live[0][0]), str(live[1][0])
        if survivor == merged:
            continue
        try:
            with conn.transaction():
                merge_donors(
                    conn,
                    survivor,
                    merged,
                    rules=rules,
                    actor=actor,
                    now=now,
                    explanation={"rule": "crm_merge", "destination": destination},
                )
        except ReviewError:
            report.merge_conflicts += 1
            log.warning("%s merged two records whose donors cannot be merged in core", destination)
            continue
        report.merges += 1
        conn.execute(
            "UPDATE sync.destination_merges SET status = 'merged', resolved_by = %s, resolved_at = %s"
            " WHERE destination = %s AND entity = %s AND merged_key = %s AND status = 'pending'",
            [actor, now, destination, settings.entity, merged],
        )


def pull_destination(
    conn: psycopg.Connection,
    reader: RemoteReader,
    destination: str,
    settings: DestinationReconcile,
    *,
    rules: ResolveRules,
    actor: str,
    now: datetime,
) -> PullReport:
    """Pull one CRM's changes since its watermark into core (see the module docstring). Not committed."""
    stream = f"reconcile_{settings.entity}"
    since = _watermark(conn, destination, stream)
    window_start = since - timedelta(minutes=settings.overlap_minutes) if since else None
    report = PullReport(destination)
    reader, consent = consent_pullback.tap(reader, destination)  # opt-outs and staff flags, applied below
    pulled = settings.pulled()
    touched: set[str] = set()
    newest = since
    batch: list[RemoteRecord] = []
    compared: list[tuple[str, dict[str, Any]]] = []

    def flush() -> None:
        if not batch:
            return
        donors = _donors_of(conn, destination, settings.entity, batch)
        merges = [(r.master_remote_id, r.remote_id) for r in batch if r.deleted and r.master_remote_id]
        merges += [(r.remote_id, m) for r in batch if not r.deleted for m in r.merged_remote_ids]
        _follow_merges(conn, settings, destination, merges, report, rules=rules, actor=actor, now=now)
        live = [r for r in batch if not r.deleted and r.remote_id in donors]
        report.deleted += sum(r.deleted for r in batch)
        report.matched += sum(r.remote_id in donors for r in batch)
        report.unmatched += sum(r.remote_id not in donors and not r.deleted for r in batch)
        if live and pulled:
            donors = {**donors, **_donors_of(conn, destination, settings.entity, live)}  # after merges
            raw = [
                {core: (r.values or {}).get(crm) for crm, core in pulled.items() if crm in (r.values or {})}
                for r in live
            ]
            attributes = standardize_pulled(raw)
            ids = [donors[r.remote_id] for r in live]
            before = _current(conn, ids, sorted({c for a in attributes for c in a if c != "last_name_key"}))
            for attrs, donor in zip(attributes, ids, strict=True):
                for column, value in attrs.items():
                    if (
                        column in before.get(donor, {})
                        and value is not None
                        and value != _plain(before[donor][column])
                    ):
                        report.field_changes[column] += 1
            attach_destination_ids(
                conn,
                [
                    DestinationId(donor, destination, r.remote_id, settings.entity, attrs, r.modified_at)
                    for r, attrs, donor in zip(live, attributes, ids, strict=True)
                ],
                actor=actor,
                now=now,
            )
            touched.update(ids)
            compared.extend(zip(ids, attributes, strict=True))
        batch.clear()

    for record in reader.changed_records(settings, window_start, now):
        report.read += 1
        if newest is None or record.modified_at > newest:
            newest = record.modified_at
        batch.append(record)
        if len(batch) >= CHUNK:
            flush()
    flush()
    if touched:
        report.donors_changed = recompute_golden(conn, sorted(touched), rules.survivorship)
        refresh_match_keys(conn, sorted(touched), rules.dedup, nicknames=rules.nicknames)
        _count_drift(conn, compared, report)
    if newest is not None:
        conn.execute(
            "INSERT INTO sync.watermarks (source, stream, cursor_ts, overlap) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (source, stream) DO UPDATE SET cursor_ts = excluded.cursor_ts",
            [destination, stream, newest, timedelta(minutes=settings.overlap_minutes)],
        )
        report.watermark = newest
    if consent is not None:
        report.consent = consent.apply(conn, actor=actor, now=now)
    conn.execute(
        "INSERT INTO sync.audit_log (actor, action, object_type, object_id, details)"
        " VALUES (%s, 'crm.changes_pulled', 'destination', %s, %s)",
        [
            actor,
            destination,
            json.dumps(
                {
                    "read": report.read,
                    "matched": report.matched,
                    "unmatched": report.unmatched,
                    "merges": report.merges,
                    "donors_changed": report.donors_changed,
                    "field_changes": dict(report.field_changes),
                }
            ),
        ],
    )
    return report


def _plain(value: Any) -> Any:
    """Core values as the standardized attributes spell them (dates as ISO text)."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def _count_drift(
    conn: psycopg.Connection, compared: list[tuple[str, dict[str, Any]]], report: PullReport
) -> None:
    """Count pulled CRM values that still differ from the golden record (after survivorship)."""
    columns = sorted(
        {c for _, attrs in compared for c in attrs if c not in {"last_name_key", "address_validated"}}
    )
    golden = _current(conn, sorted({d for d, _ in compared}), columns)
    for donor, attrs in compared:
        values = golden.get(donor, {})
        for column, value in attrs.items():
            if column in values and value is not None and value != _plain(values[column]):
                report.drift[column] += 1
