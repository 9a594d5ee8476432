"""Access and portability (GDPR Art. 15 and 20): everything held about a donor, as one JSON document.

The document holds the golden record, each source record (its system, id, latest standardized
attributes and every raw payload received for it), gifts, recurring plans, household, consent
events and current state, suppressions, destination ids, and the review and merge history, with a
``sources`` list naming every system the data came from or went to. It is written to a file
readable by its owner only (0600), under ``.local/exports/`` unless a path is given; the request's
``result_ref`` records the path, never the content. Audited as ``donor.exported`` and
``pii.accessed``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row

from donor_sync.observability import audit
from donor_sync.privacy.erasure.subject import donor_family

FORMAT_VERSION = 1


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    raise TypeError(f"cannot export a {type(value).__name__}")


def _rows(conn: psycopg.Connection, query: str, params: Any) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return list(cur.execute(query, params).fetchall())


def build_export(conn: psycopg.Connection, donor_id: UUID | str) -> dict[str, Any]:
    """Return everything held about the donor (and the donors merged into it) as a JSON-ready dict."""
    ids: Sequence[str] = donor_family(conn, donor_id)
    if not ids:
        raise LookupError(f"no donor {donor_id}")
    p = {"ids": list(ids)}
    donors = _rows(
        conn, "SELECT * FROM core.donors WHERE donor_id = ANY(%(ids)s::uuid[]) ORDER BY created_at", p
    )
    sources = _rows(
        conn,
        "SELECT system, external_id, role, id_kind, attributes, attributes_at, first_seen_at, last_seen_at,"
        " retired_at, donor_id FROM core.donor_sources WHERE donor_id = ANY(%(ids)s::uuid[])"
        " ORDER BY role, system, external_id",
        p,
    )
    for source in sources:
        if source["role"] != "source":
            continue
        raw = _rows(
            conn,
            "SELECT raw_record_id, entity, channel, source_updated_at, received_at, payload FROM raw.records"
            " WHERE source = %(s)s AND source_id = %(e)s"
            " UNION SELECT r.raw_record_id, r.entity, r.channel, r.source_updated_at, r.received_at,"
            " r.payload"
            " FROM raw.records r JOIN staging.donors sd ON sd.raw_record_id = r.raw_record_id"
            " WHERE sd.source = %(s)s AND sd.source_id = %(e)s ORDER BY raw_record_id",
            {"s": source["system"], "e": source["external_id"]},
        )
        csv = _rows(
            conn,
            "SELECT sd.raw_record_id, c.format, c.line, c.cells FROM staging.donors sd"
            " CROSS JOIN LATERAL raw.csv_record(sd.raw_record_id) c"
            " WHERE sd.source = %(s)s AND sd.source_id = %(e)s ORDER BY sd.raw_record_id",
            {"s": source["system"], "e": source["external_id"]},
        )
        source["raw_records"] = raw + [{**c, "channel": "csv"} for c in csv]
    gifts = _rows(
        conn,
        "SELECT g.*, (SELECT coalesce(jsonb_agg(jsonb_build_object('source', gs.source, 'entity', gs.entity,"
        " 'source_id', gs.source_id) ORDER BY gs.source, gs.source_id), '[]'::jsonb) FROM core.gift_sources"
        " gs"
        " WHERE gs.gift_id = g.gift_id) AS sources,"
        " (SELECT coalesce(jsonb_agg(jsonb_build_object('destination', gd.destination, 'entity', gd.entity,"
        " 'remote_id', gd.remote_id)), '[]'::jsonb) FROM core.gift_destinations gd WHERE gd.gift_id ="
        " g.gift_id)"
        " AS destinations FROM core.gifts g WHERE g.donor_id = ANY(%(ids)s::uuid[]) ORDER BY g.gift_at",
        p,
    )
    document: dict[str, Any] = {
        "format": "donor-sync.export",
        "version": FORMAT_VERSION,
        "donor_id": ids[0],
        "merged_donor_ids": list(ids[1:]),
        "golden_record": donors[0] if donors else None,
        "merged_records": donors[1:],
        "source_records": [s for s in sources if s["role"] == "source"],
        "destination_records": [s for s in sources if s["role"] == "destination"],
        "destination_state": _rows(
            conn,
            "SELECT destination, entity, record_key, remote_id, last_pushed_at, remote_deleted_at"
            " FROM sync.destination_state WHERE donor_id = ANY(%(ids)s::uuid[]) ORDER BY destination, entity",
            p,
        ),
        "gifts": gifts,
        "recurring_plans": _rows(
            conn,
            "SELECT * FROM core.recurring_plans WHERE donor_id = ANY(%(ids)s::uuid[]) ORDER BY started_at",
            p,
        ),
        "household": _rows(
            conn,
            "SELECT h.*, m.role, m.linked_by, m.linked_at FROM core.household_members m"
            " JOIN core.households h USING (household_id) WHERE m.donor_id = ANY(%(ids)s::uuid[])",
            p,
        ),
        "consent_events": _rows(
            conn,
            "SELECT * FROM core.consent_events WHERE donor_id = ANY(%(ids)s::uuid[]) ORDER BY occurred_at",
            p,
        ),
        "consent_state": _rows(
            conn,
            "SELECT * FROM core.consent_state WHERE donor_id = ANY(%(ids)s::uuid[]) ORDER BY purpose,"
            " channel",
            p,
        ),
        "suppressions": _rows(
            conn,
            "SELECT * FROM core.suppressions WHERE donor_id = ANY(%(ids)s::uuid[]) ORDER BY created_at",
            p,
        ),
        "review_history": _rows(
            conn,
            "SELECT review_id, left_donor_id, right_donor_id, score, band, status, decision, decided_by,"
            " decided_at, created_at FROM sync.review_queue"
            " WHERE left_donor_id = ANY(%(ids)s::uuid[]) OR right_donor_id = ANY(%(ids)s::uuid[]) ORDER BY"
            " created_at",
            p,
        ),
        "merge_history": _rows(
            conn,
            "SELECT decision_id, decision, survivor_id, merged_donor_id, decided_by, decided_at, undone_at"
            " FROM core.merge_decisions WHERE survivor_id = ANY(%(ids)s::uuid[])"
            " OR merged_donor_id = ANY(%(ids)s::uuid[]) ORDER BY decided_at",
            p,
        ),
    }
    systems = {s["system"] for s in sources} | {d["destination"] for d in document["destination_state"]}
    systems |= {g["source"] for g in gifts} | {e["source"] for e in document["consent_events"]}
    document["sources"] = sorted(systems)
    return document


def default_export_path(request_id: UUID | str) -> Path:
    """Return ``.local/exports/<request id>.json``."""
    from donor_sync.paths import local_state_dir

    return local_state_dir() / "exports" / f"{request_id}.json"


def write_export(document: dict[str, Any], path: Path) -> Path:
    """Write the document to ``path``, readable by its owner only (0600), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=2, default=_json_default, sort_keys=True)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path


def export_donor(
    conn: psycopg.Connection,
    request_id: UUID,
    donor_id: UUID,
    *,
    actor: str,
    out: Path | None = None,
) -> Path:
    """Write the donor's export for the request, record ``result_ref`` and audit it. Not committed."""
    document = build_export(conn, donor_id)
    document["request_id"] = str(request_id)
    path = write_export(document, out or default_export_path(request_id))
    conn.execute(
        "UPDATE sync.privacy_requests SET result_ref = %s WHERE request_id = %s", (str(path), request_id)
    )
    details = {
        "request_id": str(request_id),
        "donor_ids": [document["donor_id"], *document["merged_donor_ids"]],
    }
    audit.record(
        conn,
        actor=actor,
        action="donor.exported",
        object_type="donor",
        object_id=str(donor_id),
        details={**details, "sources": document["sources"], "gifts": len(document["gifts"])},
    )
    audit.record(
        conn,
        actor=actor,
        action="pii.accessed",
        object_type="donor",
        object_id=str(donor_id),
        details={**details, "surface": "privacy_export"},
    )
    return path
