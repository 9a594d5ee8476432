"""Destination ids of donors in ``core.donor_sources`` (role ``destination``), with their cluster map.

A donor's Salesforce contact id or HubSpot contact id is one more record of that donor, like a
Stripe customer: it moves with the donor when the donor is merged and back when the merge is
undone. Both need a current ``core.cluster_map`` row, which is what this module adds beside the
``core.donor_sources`` row. The push (a record landed) and reconciliation (a record pulled back)
attach ids through :func:`attach_destination_ids`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

_TMP = "__donor_sync__destination_ids"


@dataclass(frozen=True)
class DestinationId:
    """One donor's id in one destination.

    :param attributes: the standardized fields last pulled back from the destination (PII), or
        None to leave what is stored (a push knows the id, not the destination's values).
    """

    donor_id: str
    system: str
    remote_id: str
    id_kind: str
    attributes: dict[str, Any] | None = None
    attributes_at: datetime | None = None


def attach_destination_ids(
    conn: psycopg.Connection, ids: Sequence[DestinationId], *, actor: str, now: datetime
) -> int:
    """Record each id as a destination record of its donor; return how many were new.

    An id already recorded keeps its donor (a merge may have moved it to the survivor since the
    push) and is live again if it had been retired; its attributes are replaced only by a newer
    version. Set-based; not committed.
    """
    if not ids:
        return 0
    conn.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {_TMP} (donor_id uuid, system text, remote_id text, id_kind text,"
        " attributes jsonb, attributes_at timestamptz) ON COMMIT DROP"
    )
    conn.execute(f"TRUNCATE {_TMP}")
    with conn.cursor().copy(
        f"COPY {_TMP} (donor_id, system, remote_id, id_kind, attributes, attributes_at) FROM STDIN"
    ) as copy:
        for i in ids:
            copy.write_row(
                (
                    i.donor_id,
                    i.system,
                    i.remote_id,
                    i.id_kind,
                    None if i.attributes is None else json.dumps(i.attributes, default=str),
                    i.attributes_at,
                )
            )
    decision_id = str(uuid.uuid4())
    new = conn.execute(
        "WITH t AS (SELECT DISTINCT ON (system, remote_id) * FROM " + _TMP + " ORDER BY system, remote_id,"
        " attributes_at DESC NULLS LAST),"
        " ins AS (INSERT INTO core.donor_sources (donor_id, system, external_id, role, id_kind, attributes,"
        " attributes_at, first_seen_at, last_seen_at)"
        " SELECT d.donor_id, t.system, t.remote_id, 'destination', t.id_kind, t.attributes, t.attributes_at,"
        " %(now)s, %(now)s FROM t"
        # A donor merged away since the id was queued: the id belongs to the survivor.
        " JOIN core.donors d0 ON d0.donor_id = t.donor_id"
        " CROSS JOIN LATERAL (SELECT coalesce(d0.merged_into, d0.donor_id) AS donor_id) d"
        " ON CONFLICT (system, external_id) DO UPDATE SET last_seen_at = excluded.last_seen_at,"
        " retired_at = NULL,"
        " attributes = CASE WHEN excluded.attributes IS NOT NULL AND excluded.attributes_at >"
        " coalesce(core.donor_sources.attributes_at, '-infinity') THEN excluded.attributes"
        " ELSE core.donor_sources.attributes END,"
        " attributes_at = CASE WHEN excluded.attributes IS NOT NULL AND excluded.attributes_at >"
        " coalesce(core.donor_sources.attributes_at, '-infinity') THEN excluded.attributes_at"
        " ELSE core.donor_sources.attributes_at END"
        " RETURNING donor_source_id, donor_id, (xmax = 0) AS inserted)"
        " INSERT INTO core.cluster_map (donor_source_id, donor_id, decision, decision_id, match_explanation,"
        " decided_by, valid_from)"
        " SELECT ins.donor_source_id, ins.donor_id, 'deterministic', %(decision)s, %(why)s::jsonb, %(by)s,"
        " %(now)s FROM ins WHERE ins.inserted"
        " AND NOT EXISTS (SELECT 1 FROM core.cluster_map c WHERE c.donor_source_id = ins.donor_source_id"
        " AND c.valid_to IS NULL)",
        {
            "now": now,
            "decision": decision_id,
            "why": json.dumps({"rule": "destination_id"}),
            "by": actor,
        },
    ).rowcount
    return int(new)
