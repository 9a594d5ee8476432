"""Tombstones: keyed hashes of an erased donor's identifiers, and the check that stops re-imports.

Written when an erasure starts (:func:`write_tombstones`), before any destination is asked, so a
record of the donor arriving while the cascade runs is already refused. Checked by resolve
(:func:`screen_staged_donors`, called at the start of
:func:`donor_sync.resolve.donors.resolve_donors`): every unresolved staged donor (from an API
page, a webhook or a CSV row alike: they all pass through ``staging.donors``) whose email, phone or
``source:source_id`` hashes, under any key of the ``tombstone`` ring, to a tombstone

* is attached to the erased donor (tombstone → request → donor): ``donor_id`` and
  ``resolved_at`` set, so resolve neither creates nor updates a donor from it, and its gifts
  (financial records) still count towards the erased donor (resolve's gift side finds the donor
  through the staged row, :func:`erased_source_donor`);
* loses its PII columns, and its raw record's payload is replaced by the erasure stub;
* is accounted for: its disposition becomes ``skipped`` with reason ``erased_subject`` when the
  raw record staged nothing else (a record that also carries a gift stays ``staged``: the gift
  was staged), the batch counts follow, and the audit log gets ``donor.reimport_blocked`` with
  counts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql

from donor_sync.errors import ConfigError
from donor_sync.observability import audit
from donor_sync.privacy.erasure.purge import STAGING_DONOR_KEEP, _blank_assignments, stub_raw
from donor_sync.privacy.keys import KeyRing, KeySource, default_key_source

log = logging.getLogger(__name__)

REASON = "erased_subject"


def tombstone_values(
    emails: Iterable[str], phones: Iterable[str], source_ids: Iterable[tuple[str, str]]
) -> list[tuple[str, str]]:
    """Return ``(hash_kind, normalized value)`` pairs to tombstone."""
    out = {("email", e.strip().lower()) for e in emails if e and e.strip()}
    out |= {("phone", p.strip()) for p in phones if p and p.strip()}
    out |= {("source_id", f"{s}:{e}") for s, e in source_ids if s and e}
    return sorted(out)


def write_tombstones(
    conn: psycopg.Connection,
    ring: KeyRing,
    request_id: UUID,
    values: Iterable[tuple[str, str]],
    subject_hashes: Sequence[dict[str, Any]] = (),
) -> int:
    """Insert tombstones (current key) for the values and the request's own hashes; return how many are new.

    Append-only table: existing tombstones are left as they are. Not committed.
    """
    kinds, hashes, keys = [], [], []
    for kind, value in values:
        kinds.append(kind)
        hashes.append(ring.hmac(value))
        keys.append(ring.current)
    for entry in subject_hashes:
        kinds.append(str(entry["kind"]))
        hashes.append(bytes.fromhex(str(entry["hash"])))
        keys.append(str(entry["key_id"]))
    if not kinds:
        return 0
    return conn.execute(
        "INSERT INTO core.erasure_tombstones (hash_kind, hash_value, key_id, request_id)"
        " SELECT k, h, key, %(rid)s FROM unnest(%(k)s::text[], %(h)s::bytea[], %(key)s::text[]) AS t(k, h,"
        " key)"
        " ON CONFLICT (hash_kind, hash_value) DO NOTHING",
        {"k": kinds, "h": hashes, "key": keys, "rid": request_id},
    ).rowcount


def check_ring_covers(conn: psycopg.Connection, ring: KeyRing) -> None:
    """Refuse a ring missing a key that made tombstones: checks with it would silently miss them.

    :raises ConfigError: naming the missing key id (never a key).
    """
    missing = [
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT key_id FROM core.erasure_tombstones WHERE NOT (key_id = ANY(%s))",
            (list(ring.keys),),
        ).fetchall()
    ]
    if missing:
        raise ConfigError(
            f"privacy keys: the tombstone ring lacks key(s) {', '.join(sorted(missing))} that erased donors'"
            " tombstones were made with; restore them (DONOR_SYNC_PRIVACY_KEYS or the privacy_keys"
            " connection)"
        )


def matching_donors(
    conn: psycopg.Connection, ring: KeyRing, candidates: Sequence[tuple[Any, str, str]]
) -> dict[Any, tuple[UUID | None, UUID]]:
    """Return, per candidate key whose ``(kind, value)`` hits a tombstone, the erased donor and request.

    The donor is ``None`` for a request whose subject never matched a donor.

    :param candidates: ``(key, hash_kind, normalized value)``.
    """
    keys: list[str] = []
    kinds: list[str] = []
    hashes: list[bytes] = []
    for key, kind, value in candidates:
        for digest in ring.hmac_all(value).values():
            keys.append(str(key))
            kinds.append(kind)
            hashes.append(digest)
    if not keys:
        return {}
    rows = conn.execute(
        "SELECT c.key, coalesce(d.merged_into, d.donor_id), p.request_id"
        " FROM unnest(%(keys)s::text[], %(kinds)s::text[], %(hashes)s::bytea[]) AS c(key, kind, hash)"
        " JOIN core.erasure_tombstones t ON t.hash_kind = c.kind AND t.hash_value = c.hash"
        " JOIN sync.privacy_requests p ON p.request_id = t.request_id"
        " LEFT JOIN core.donors d ON d.donor_id = p.donor_id",
        {"keys": keys, "kinds": kinds, "hashes": hashes},
    ).fetchall()
    by_key = {str(k): k for k, _, _ in candidates}
    out: dict[Any, tuple[UUID | None, UUID]] = {}
    for key, donor_id, request_id in rows:
        if donor_id is not None or by_key[key] not in out:
            out[by_key[key]] = (donor_id, request_id)
    return out


@dataclass(frozen=True)
class ScreenResult:
    """What the tombstone check did in one resolve (counts only)."""

    checked: int = 0
    blocked: int = 0
    skipped_records: int = 0
    gifts_blanked: int = 0
    raw_records_stubbed: int = 0


#: An email address anywhere in a payload's JSON text (lower-cased before hashing).
_EMAIL_IN_TEXT = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"


def _screen_raw_records(conn: psycopg.Connection, ring: KeyRing, batch_ids: Sequence[int]) -> int:
    """Stub the batches' other raw records that hold an erased donor's email; return how many.

    Records that stage no donor never reach the staged-donor check, yet hold the person as received:
    superseded versions of a charge, payment intents represented by their charge, events, quarantined
    records. Their payloads (and webhook bodies) become the erasure stub and their quarantine rows
    go, as the erasure's purge does. CSV rows always stage their donor (or are quarantined whole).
    """
    rows = conn.execute(
        "SELECT DISTINCT r.raw_record_id, lower(m[1]) FROM raw.records r"
        " CROSS JOIN LATERAL regexp_matches(r.payload::text, %(re)s, 'g') AS m"
        " WHERE r.batch_id = ANY(%(b)s) AND NOT (r.payload @> '{\"erased\": true}'::jsonb)",
        {"re": _EMAIL_IN_TEXT, "b": list(batch_ids)},
    ).fetchall()
    hits = matching_donors(conn, ring, [(f"{raw_id}|{email}", "email", email) for raw_id, email in rows])
    by_request: dict[UUID, set[int]] = {}
    for key, (_, request_id) in hits.items():
        by_request.setdefault(request_id, set()).add(int(str(key).split("|", 1)[0]))
    for request_id, raw_ids in by_request.items():
        stub_raw(conn, sorted(raw_ids), request_id)
    swept = sorted(r for ids in by_request.values() for r in ids)
    if swept:
        conn.execute("DELETE FROM staging.quarantine WHERE raw_record_id = ANY(%s)", (swept,))
    return len(swept)


def _screen_gifts(conn: psycopg.Connection, ring: KeyRing, batch_ids: Sequence[int]) -> int:
    """Blank unresolved staged gifts of erased source donors (tribute, URLs) and stub their raw records.

    The gift itself stays staged: resolve attaches it to the erased donor (financial record).
    """
    rows = conn.execute(
        "SELECT staging_gift_id, source || ':' || source_donor_id FROM staging.gifts"
        " WHERE batch_id = ANY(%s) AND resolved_at IS NULL AND source_donor_id IS NOT NULL",
        (list(batch_ids),),
    ).fetchall()
    hits = matching_donors(conn, ring, [(gid, "source_id", value) for gid, value in rows])
    if not hits:
        return 0
    by_request: dict[UUID, list[int]] = {}
    for gid, raw_id in conn.execute(
        "UPDATE staging.gifts SET tribute_name = NULL, tribute_notify = NULL, landing_url = NULL,"
        " referrer_url = NULL, review_flags = '[]'::jsonb WHERE staging_gift_id = ANY(%s)"
        " RETURNING staging_gift_id, raw_record_id",
        (sorted(hits),),
    ).fetchall():
        by_request.setdefault(hits[gid][1], []).append(int(raw_id))
    for request_id, raw_ids in by_request.items():
        stub_raw(conn, raw_ids, request_id)
    return len(hits)


def screen_staged_donors(
    conn: psycopg.Connection,
    batch_ids: Sequence[int],
    *,
    now: datetime,
    actor: str,
    keys: KeySource | None = None,
) -> ScreenResult:
    """Attach unresolved staged donors of erased subjects to their erased donor, blanked (module docstring).

    Costs one ``EXISTS`` when no donor was ever erased. Not committed.
    """
    if not batch_ids:
        return ScreenResult()
    if conn.execute("SELECT NOT EXISTS (SELECT 1 FROM core.erasure_tombstones)").fetchone()[0]:  # type: ignore[index]
        return ScreenResult()
    source = keys if keys is not None else default_key_source()
    ring = source.ring("tombstone")
    if ring is None:
        raise ConfigError(
            "privacy keys: no 'tombstone' ring, so re-imports of erased donors cannot be checked"
        )
    check_ring_covers(conn, ring)
    rows = conn.execute(
        "SELECT staging_donor_id, lower(email), phone, source || ':' || source_id FROM staging.donors"
        " WHERE batch_id = ANY(%s) AND resolved_at IS NULL",
        (list(batch_ids),),
    ).fetchall()
    candidates: list[tuple[Any, str, str]] = []
    for sid, email, phone, source_id in rows:
        for kind, value in (("email", email), ("phone", phone), ("source_id", source_id)):
            if value:
                candidates.append((sid, kind, value))
    hits = matching_donors(conn, ring, candidates)
    gifts = _screen_gifts(conn, ring, batch_ids)
    if not hits:
        swept = _screen_raw_records(conn, ring, batch_ids)
        if swept:
            audit.record(
                conn,
                actor=actor,
                action="donor.reimport_blocked",
                object_type="batch",
                object_id=",".join(str(b) for b in sorted(batch_ids)),
                details={"staged_donors": 0, "raw_records_stubbed": swept, "gifts_blanked": gifts},
            )
        return ScreenResult(checked=len(rows), gifts_blanked=gifts, raw_records_stubbed=swept)
    staged_ids = sorted(hits)
    donors = [str(hits[s][0]) if hits[s][0] else None for s in staged_ids]
    raw_by_request: dict[UUID, list[int]] = {}
    for staging_id, raw_id in conn.execute(
        sql.SQL(
            "UPDATE staging.donors s SET {}, donor_id = t.donor, resolved_at = %(now)s"
            " FROM unnest(%(ids)s::bigint[], %(donors)s::uuid[]) AS t(id, donor)"
            " WHERE s.staging_donor_id = t.id RETURNING s.staging_donor_id, s.raw_record_id"
        ).format(
            _blank_assignments(conn, "staging", "donors", STAGING_DONOR_KEEP | {"donor_id", "resolved_at"})
        ),
        {"ids": staged_ids, "donors": donors, "now": now},
    ).fetchall():
        raw_by_request.setdefault(hits[staging_id][1], []).append(int(raw_id))
    for request_id, raw_ids in raw_by_request.items():
        stub_raw(conn, raw_ids, request_id)
    raw = sorted(r for ids in raw_by_request.values() for r in ids)
    # A raw record that staged no gift was only the donor: account for it as skipped.
    skipped = conn.execute(
        "WITH changed AS ("
        "  UPDATE staging.dispositions d SET disposition = 'skipped', reason = %(reason)s, decided_at ="
        " %(now)s"
        "   WHERE d.raw_record_id = ANY(%(raw)s) AND d.disposition = 'staged'"
        "     AND NOT EXISTS (SELECT 1 FROM staging.gifts g WHERE g.raw_record_id = d.raw_record_id)"
        "  RETURNING d.batch_id)"
        " UPDATE raw.batches b SET records_staged = b.records_staged - c.n, records_skipped ="
        " b.records_skipped + c.n"
        " FROM (SELECT batch_id, count(*) AS n FROM changed GROUP BY batch_id) c WHERE b.batch_id ="
        " c.batch_id"
        " RETURNING c.n",
        {"raw": raw, "reason": REASON, "now": now},
    ).fetchall()
    result = ScreenResult(
        checked=len(rows),
        blocked=len(staged_ids),
        skipped_records=sum(int(r[0]) for r in skipped),
        gifts_blanked=gifts,
        raw_records_stubbed=_screen_raw_records(conn, ring, batch_ids),
    )
    audit.record(
        conn,
        actor=actor,
        action="donor.reimport_blocked",
        object_type="batch",
        object_id=",".join(str(b) for b in sorted(batch_ids)),
        details={
            "staged_donors": result.blocked,
            "skipped_records": result.skipped_records,
            "gifts_blanked": result.gifts_blanked,
            "raw_records_stubbed": result.raw_records_stubbed,
            "donor_ids": sorted({d for d in donors if d}),
        },
    )
    log.info("tombstones: %s staged donor(s) of erased donors blocked and blanked", result.blocked)
    return result


def erased_source_donor(conn: psycopg.Connection, source: str, source_donor_id: str) -> UUID | None:
    """Return the erased donor a staged source record was attached to (gift side of resolve)."""
    row = conn.execute(
        "SELECT s.donor_id FROM staging.donors s JOIN core.donors d ON d.donor_id = s.donor_id"
        " WHERE s.source = %s AND s.source_id = %s AND d.erased_at IS NOT NULL LIMIT 1",
        (source, source_donor_id),
    ).fetchone()
    return row[0] if row else None
