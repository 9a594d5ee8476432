"""What the gate needs to know about a batch's donors, read in one query (plus one for tombstones).

Per donor (the owner of a gift or plan, a household's live members): its consent states (not
expired), the reasons of its active suppressions and of those of the donors merged into it (for
this destination or every one), its own deceased and do-not-contact flags, its residency inputs,
and its email and phone, which are only hashed here to look for an erasure tombstone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from donor_sync.privacy.keys import KeyRing

_FACTS = """
WITH ids AS (SELECT DISTINCT unnest(%(ids)s::uuid[]) AS donor_id),
donors AS (
    -- each donor with the donors merged into it (a short list, read through the merged_into index)
    SELECT d.*, ARRAY(SELECT d.donor_id UNION ALL
                      SELECT m.donor_id FROM core.donors m WHERE m.merged_into = d.donor_id) AS family
    FROM ids i JOIN core.donors d ON d.donor_id = i.donor_id
)
SELECT d.donor_id::text, d.email, d.phone, d.country_code, d.residency_region,
       d.is_deceased, d.do_not_contact, d.erased_at IS NOT NULL,
       (SELECT coalesce(jsonb_agg(jsonb_build_array(cs.purpose, cs.channel, cs.status, cs.effective_at)),
                        '[]'::jsonb)
        FROM core.consent_state cs
        WHERE cs.donor_id = d.donor_id AND (cs.expires_at IS NULL OR cs.expires_at > now())),
       (SELECT coalesce(array_agg(DISTINCT s.reason_code::text), '{}')
        FROM core.suppressions s
        WHERE s.donor_id = ANY(d.family) AND s.lifted_at IS NULL AND s.destination IN ('*', %(d)s)),
       (SELECT jsonb_build_object('region', ce.evidence->>'residency_region',
                                  'country', ce.evidence->>'country_code')
        FROM core.consent_events ce
        WHERE ce.donor_id = ANY(d.family)
          AND (ce.evidence ? 'residency_region' OR ce.evidence ? 'country_code')
        ORDER BY ce.occurred_at DESC, ce.consent_event_id DESC LIMIT 1)
FROM donors d
"""

_HOUSEHOLD_MEMBERS = """
SELECT m.household_id::text, m.donor_id::text
FROM core.household_members m JOIN core.donors d ON d.donor_id = m.donor_id
WHERE m.household_id = ANY(%(ids)s::uuid[]) AND d.merged_into IS NULL AND d.erased_at IS NULL
"""


@dataclass(frozen=True)
class ConsentState:
    """One current consent choice."""

    purpose: str
    channel: str
    status: str
    effective_at: str


@dataclass
class DonorFacts:
    """What the gate decides a donor on."""

    donor_id: str
    consent: list[ConsentState] = field(default_factory=list)
    suppressions: frozenset[str] = frozenset()
    is_deceased: bool = False
    do_not_contact: bool = False
    erased: bool = False
    residency_region: str | None = None
    #: From the latest consent event whose evidence names one: ``{"region": ..., "country": ...}``.
    evidence_residency: Mapping[str, str | None] | None = None
    country_code: str | None = None
    tombstoned: bool = False

    def status(self, purpose: str, channel: str) -> str | None:
        """Return the donor's status for ``purpose`` on ``channel`` (None: no consent).

        A state on channel ``all`` counts for every channel: the later of it and the channel's
        own state decides, and an opt-out wins a tie.
        """
        channels = {channel, "all"}
        found = [c for c in self.consent if c.purpose == purpose and c.channel in channels]
        if not found:
            return None
        found.sort(key=lambda c: (c.effective_at, c.status == "opt_out"))
        return found[-1].status


def _iso(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _without_jit(conn: psycopg.Connection, query: str, params: Mapping[str, Any]) -> list[Any]:
    """Run ``query`` with JIT compilation off: its per-donor subqueries inflate the planner's cost
    estimate past the JIT threshold, and compiling took most of a batch's time (bench/privacy.py)."""
    previous = conn.execute("SELECT current_setting('jit')").fetchone()
    conn.execute("SELECT set_config('jit', 'off', %s)", (not conn.autocommit,))
    try:
        return conn.execute(query, params).fetchall()
    finally:
        if previous is not None:
            conn.execute("SELECT set_config('jit', %s, %s)", (previous[0], not conn.autocommit))


def read_facts(
    conn: psycopg.Connection,
    destination: str,
    donor_ids: Iterable[str],
    *,
    tombstone_ring: KeyRing | None,
) -> dict[str, DonorFacts]:
    """Return the facts of each donor id that exists, by donor id."""
    ids = sorted(set(donor_ids))
    if not ids:
        return {}
    facts: dict[str, DonorFacts] = {}
    identifiers: dict[str, list[tuple[str, str]]] = {}
    rows = _without_jit(conn, _FACTS, {"ids": ids, "d": destination})
    for donor_id, email, phone, country, residency, deceased, dnc, erased, consent, reasons, evidence in rows:
        facts[donor_id] = DonorFacts(
            donor_id=donor_id,
            consent=[ConsentState(p, c, s, _iso(t)) for p, c, s, t in consent],
            suppressions=frozenset(reasons),
            is_deceased=bool(deceased),
            do_not_contact=bool(dnc),
            erased=bool(erased),
            residency_region=residency,
            evidence_residency=evidence,
            country_code=country,
        )
        identifiers[donor_id] = [(k, v) for k, v in (("email", email), ("phone", phone)) if v]
    if tombstone_ring is not None:
        for donor_id in tombstoned(conn, tombstone_ring, identifiers):
            facts[donor_id].tombstoned = True
    return facts


def normalize_identifier(kind: str, value: str) -> str:
    """Return an identifier as tombstones hash it: emails trimmed and lower-case, phones as stored (E.164)."""
    value = value.strip()
    return value.lower() if kind == "email" else value


def tombstoned(
    conn: psycopg.Connection, ring: KeyRing, identifiers: Mapping[str, Sequence[tuple[str, str]]]
) -> set[str]:
    """Return the donors one of whose identifiers matches an erasure tombstone (under any key)."""
    by_hash: dict[tuple[str, bytes], set[str]] = {}
    for donor_id, pairs in identifiers.items():
        for kind, value in pairs:
            for digest in ring.hmac_all(normalize_identifier(kind, value)).values():
                by_hash.setdefault((kind, digest), set()).add(donor_id)
    if not by_hash:
        return set()
    kinds = [k for k, _ in by_hash]
    hashes = [h for _, h in by_hash]
    found = conn.execute(
        "SELECT t.hash_kind, t.hash_value FROM core.erasure_tombstones t"
        " JOIN unnest(%s::text[], %s::bytea[]) AS q(kind, hash)"
        " ON t.hash_kind = q.kind AND t.hash_value = q.hash",
        (kinds, hashes),
    ).fetchall()
    out: set[str] = set()
    for kind, digest in found:
        out |= by_hash.get((kind, bytes(digest)), set())
    return out


def any_tombstones(conn: psycopg.Connection) -> bool:
    """Return whether any erasure tombstone exists (the check is skipped when none does)."""
    row = conn.execute("SELECT EXISTS (SELECT 1 FROM core.erasure_tombstones)").fetchone()
    return bool(row and row[0])


def household_members(conn: psycopg.Connection, household_ids: Iterable[str]) -> dict[str, list[str]]:
    """Return the live members of each household, by household id."""
    ids = sorted(set(household_ids))
    out: dict[str, list[str]] = {h: [] for h in ids}
    if ids:
        for household_id, donor_id in conn.execute(_HOUSEHOLD_MEMBERS, {"ids": ids}).fetchall():
            out[household_id].append(donor_id)
    return out
