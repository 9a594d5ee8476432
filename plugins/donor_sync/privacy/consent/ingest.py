"""Staged consent signals of resolved records to consent events (resolve calls it once per run).

Standardize fills ``staging.donors.consent_signals`` (``[{purpose, channel, status, occurred_at,
evidence}]``) from contact-preference text and consent flags. Once resolve has mapped a staged
row to its donor, each signal becomes one event of that donor:

* ``source`` is the staged row's source; ``source_ref`` is
  ``sig:<hex sha256 of source, source id, purpose, channel, status, occurred_at>``: stable, so a
  re-run or a re-staged copy of the same record adds nothing, and free of the source id itself
  (a derived source id can carry an identifier). A later version of the record that ticks the
  same box again at a later time is a new choice, and a new event.
* ``lawful_basis`` is ``consent`` for an opt-in, ``legitimate_interests`` for a soft opt-in.
* ``evidence`` is the signal's own (the form field that carried it) plus the staged row's
  ``raw_record_id``.

Signals without a time or outside the vocabulary are skipped (standardize never makes them).
Set-based: one INSERT ... SELECT for the whole run, then one state refresh.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from donor_sync.privacy.consent.state import StateRefresh, refresh_consent_state

__all__ = ["IngestResult", "ingest_staged_signals"]

_INGEST = """
WITH signals AS (
    SELECT s.donor_id, s.source, s.source_id, s.raw_record_id,
           sig->>'purpose' AS purpose, sig->>'channel' AS channel, sig->>'status' AS status,
           (sig->>'occurred_at')::timestamptz AS occurred_at,
           CASE WHEN jsonb_typeof(sig->'evidence') = 'object' THEN sig->'evidence' ELSE '{}'::jsonb END
               AS evidence
    FROM staging.donors s
    CROSS JOIN LATERAL jsonb_array_elements(s.consent_signals) AS sig
    WHERE s.batch_id = ANY(%(batches)s::bigint[])
      AND s.consent_signals <> '[]'::jsonb
      AND s.resolved_at IS NOT NULL AND s.donor_id IS NOT NULL
      AND jsonb_typeof(sig) = 'object'
      AND sig->>'purpose' IN ('marketing', 'fundraising', 'profiling', 'sharing')
      AND sig->>'channel' IN ('email', 'sms', 'phone', 'mail', 'all')
      AND sig->>'status' IN ('opt_in', 'soft_opt_in', 'opt_out')
      AND coalesce(sig->>'occurred_at', '') <> ''
)
INSERT INTO core.consent_events
    (donor_id, purpose, channel, status, lawful_basis, source, source_ref, occurred_at, evidence,
     recorded_by)
SELECT g.donor_id, g.purpose, g.channel, g.status,
       CASE g.status WHEN 'opt_in' THEN 'consent' WHEN 'soft_opt_in' THEN 'legitimate_interests' END,
       g.source,
       'sig:' || encode(sha256(convert_to(concat_ws(chr(31), g.source, g.source_id, g.purpose, g.channel,
           g.status, (extract(epoch FROM g.occurred_at) * 1000000)::bigint::text), 'UTF8')), 'hex'),
       g.occurred_at,
       g.evidence || jsonb_build_object('raw_record_id', g.raw_record_id),
       %(by)s
FROM signals g
JOIN core.donors d ON d.donor_id = g.donor_id AND d.erased_at IS NULL
ON CONFLICT (source, source_ref) WHERE source_ref IS NOT NULL DO NOTHING
RETURNING donor_id::text
"""


@dataclass(frozen=True)
class IngestResult:
    """What :func:`ingest_staged_signals` did (counts and ids)."""

    events_recorded: int
    donors: tuple[str, ...]
    state: StateRefresh | None


def ingest_staged_signals(
    conn: psycopg.Connection,
    batch_ids: Sequence[int],
    *,
    actor: str,
    now: datetime | None = None,
    run_id: Any = None,
) -> IngestResult:
    """Record the consent signals of the batches' resolved staged donors; refresh their state.

    Not committed (resolve commits its run as one transaction).
    """
    if not batch_ids:
        return IngestResult(0, (), None)
    rows = conn.execute(_INGEST, {"batches": list(batch_ids), "by": actor}).fetchall()
    donors = tuple(sorted({str(r[0]) for r in rows}))
    state = None
    if donors:
        state = refresh_consent_state(conn, donors, actor=actor, now=now or datetime.now(UTC), run_id=run_id)
    return IngestResult(len(rows), donors, state)
