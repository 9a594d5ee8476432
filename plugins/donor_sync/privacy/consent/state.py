"""Derived consent state: ``core.consent_state`` computed from ``core.consent_events``.

The rules (docs/consent.md states them with examples). For a live donor ``S`` (not merged away,
not erased), its *members* are ``S`` itself and every donor whose ``merged_into`` is ``S`` (merges
are never chained: resolve re-points a merged donor's own members to the final survivor). For
each purpose and each concrete channel (email, sms, phone, mail):

1. **Applicable events**: the member's events of that purpose on that channel or on ``all`` (an
   ``all`` choice is a choice on every channel), whose ``expires_at`` is unset or later than now.
   An expired event is as if it had never been made.
2. **Member state**: the latest applicable event by ``occurred_at`` (the latest explicit choice
   wins). Choices made at the very same instant are ranked by restrictiveness (opt_out >
   soft_opt_in > opt_in), then by event id: so an opt-out outranks an opt-in of the same or an
   older time, and an ``all`` opt-out beats channel opt-ins of older or equal time.
3. **Merged donors take the most restrictive**: the survivor's state is the most restrictive of
   its members' states (ties: the latest, then the highest event id)... except a member state
   *superseded after its merge*: a merged-away member ``M`` (``merged_at`` set) whose state is
   older than a choice made (on any member) after ``M`` was merged. A choice made after a merge is
   a choice of the merged donor itself, so it is compared by time like any other: a donor merged
   with an old opted-out record can still opt back in, say through the preference centre. Before
   that, the old record's opt-out holds.
4. **Channel ``all``**: a row on channel ``all`` means "every channel": it exists only when all
   four channel rows exist, with the most restrictive of them (ties: latest, then highest event
   id), and expires with the first of them to expire. A gate asking about one channel reads that
   channel's row.
5. No applicable event: no row (no consent). Merged-away and erased donors have no rows.

:func:`derive` is the same rules in plain Python, the reference the property tests compare the
SQL with. :func:`refresh_consent_state` recomputes the rows of a set of donors set-based, writes
only rows that changed, and audits ``consent.changed`` per donor whose status changed (ids and
vocabulary only).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from donor_sync.events.producers import produce_consent_events
from donor_sync.observability import audit
from donor_sync.privacy.consent.vocabulary import CONCRETE_CHANNELS, RESTRICTIVENESS

__all__ = [
    "DerivedState",
    "DonorLink",
    "EventRow",
    "StateRefresh",
    "derive",
    "refresh_consent_state",
    "refresh_expired",
]


# -- the reference ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventRow:
    """One consent event as the derivation reads it."""

    event_id: int
    donor_id: str
    purpose: str
    channel: str
    status: str
    occurred_at: datetime
    expires_at: datetime | None = None
    lawful_basis: str | None = None


@dataclass(frozen=True)
class DonorLink:
    """A donor's place in merges: ``merged_into`` (the survivor) and when, and whether erased."""

    merged_into: str | None = None
    merged_at: datetime | None = None
    erased: bool = False


@dataclass(frozen=True)
class DerivedState:
    """One ``core.consent_state`` row's values."""

    status: str
    event_id: int
    effective_at: datetime
    expires_at: datetime | None
    lawful_basis: str | None


def _latest_key(e: EventRow) -> tuple[datetime, int, int]:
    return (e.occurred_at, RESTRICTIVENESS[e.status], e.event_id)


def _restrictive_key(e: EventRow) -> tuple[int, datetime, int]:
    return (RESTRICTIVENESS[e.status], e.occurred_at, e.event_id)


def derive(
    events: Iterable[EventRow], donors: Mapping[str, DonorLink], *, now: datetime
) -> dict[tuple[str, str, str], DerivedState]:
    """Return ``{(donor_id, purpose, channel): state}`` of every live donor (the module's rules).

    :param donors: every donor the events name and every survivor (only live ones get rows).
    """
    owner_of = {d: (link.merged_into or d) for d, link in donors.items()}
    live = {d for d, link in donors.items() if link.merged_into is None and not link.erased}
    applicable: dict[tuple[str, str, str], list[EventRow]] = {}
    for event in events:
        if event.expires_at is not None and event.expires_at <= now:
            continue
        owner = owner_of.get(event.donor_id, event.donor_id)
        if owner not in live:
            continue
        channels = CONCRETE_CHANNELS if event.channel == "all" else (event.channel,)
        for channel in channels:
            applicable.setdefault((owner, event.purpose, channel), []).append(event)
    out: dict[tuple[str, str, str], DerivedState] = {}
    chosen: dict[tuple[str, str, str], EventRow] = {}
    for (owner, purpose, channel), found in applicable.items():
        last_at = max(e.occurred_at for e in found)
        per_member: dict[str, EventRow] = {}
        for event in found:
            best = per_member.get(event.donor_id)
            if best is None or _latest_key(event) > _latest_key(best):
                per_member[event.donor_id] = event
        standing = []
        for member, state in per_member.items():
            link = donors.get(member, DonorLink())
            merged_at = link.merged_at if member != owner else None
            if merged_at is not None and last_at > merged_at and last_at > state.occurred_at:
                continue  # superseded by a choice made after this member's merge
            standing.append(state)
        chosen[(owner, purpose, channel)] = max(standing, key=_restrictive_key)
    for key, event in chosen.items():
        out[key] = DerivedState(
            event.status, event.event_id, event.occurred_at, event.expires_at, event.lawful_basis
        )
    owners_purposes = {(o, p) for o, p, _ in chosen}
    for owner, purpose in owners_purposes:
        rows = [chosen.get((owner, purpose, c)) for c in CONCRETE_CHANNELS]
        present = [r for r in rows if r is not None]
        if len(present) < len(CONCRETE_CHANNELS):
            continue
        top = max(present, key=_restrictive_key)
        expiries = [r.expires_at for r in present if r.expires_at is not None]
        out[(owner, purpose, "all")] = DerivedState(
            top.status, top.event_id, top.occurred_at, min(expiries) if expiries else None, top.lawful_basis
        )
    return out


# -- the SQL -----------------------------------------------------------------------------------------

_SCOPE = """
DROP TABLE IF EXISTS pg_temp.__donor_sync__consent_scope;
CREATE TEMP TABLE __donor_sync__consent_scope ON COMMIT DROP AS
WITH given AS (SELECT DISTINCT unnest(%(ids)s::uuid[]) AS donor_id),
owners AS (
    SELECT DISTINCT coalesce(d.merged_into, d.donor_id) AS owner
    FROM core.donors d JOIN given g ON g.donor_id = d.donor_id
)
SELECT g.donor_id FROM given g
UNION SELECT o.owner FROM owners o
UNION SELECT d.donor_id FROM core.donors d JOIN owners o ON d.merged_into = o.owner;
"""

_NEW = """
DROP TABLE IF EXISTS pg_temp.__donor_sync__consent_new;
CREATE TEMP TABLE __donor_sync__consent_new ON COMMIT DROP AS
WITH owners AS (
    SELECT d.donor_id AS owner FROM core.donors d
    JOIN __donor_sync__consent_scope s ON s.donor_id = d.donor_id
    WHERE d.merged_into IS NULL AND d.erased_at IS NULL
), members AS (
    SELECT owner, owner AS member, NULL::timestamptz AS merged_at FROM owners
    UNION ALL
    SELECT o.owner, d.donor_id, d.merged_at FROM owners o JOIN core.donors d ON d.merged_into = o.owner
), ev AS (
    SELECT m.owner, m.member, m.merged_at, e.consent_event_id, e.purpose::text AS purpose, ch.channel,
           e.status::text AS status, e.lawful_basis, e.occurred_at, e.expires_at,
           CASE e.status WHEN 'opt_out' THEN 3 WHEN 'soft_opt_in' THEN 2 ELSE 1 END AS rank
    FROM members m
    JOIN core.consent_events e ON e.donor_id = m.member
    CROSS JOIN LATERAL unnest(CASE WHEN e.channel = 'all' THEN ARRAY['email', 'sms', 'phone', 'mail']
                                   ELSE ARRAY[e.channel::text] END) AS ch(channel)
    WHERE e.expires_at IS NULL OR e.expires_at > %(now)s
), member_state AS (
    SELECT DISTINCT ON (owner, member, purpose, channel) *
    FROM ev ORDER BY owner, member, purpose, channel, occurred_at DESC, rank DESC, consent_event_id DESC
), latest AS (
    SELECT owner, purpose, channel, max(occurred_at) AS last_at FROM ev GROUP BY owner, purpose, channel
), chosen AS (
    SELECT DISTINCT ON (ms.owner, ms.purpose, ms.channel)
           ms.owner, ms.purpose, ms.channel, ms.status, ms.rank, ms.lawful_basis, ms.consent_event_id,
           ms.occurred_at, ms.expires_at
    FROM member_state ms JOIN latest l USING (owner, purpose, channel)
    WHERE ms.merged_at IS NULL OR NOT (l.last_at > ms.merged_at AND l.last_at > ms.occurred_at)
    ORDER BY ms.owner, ms.purpose, ms.channel, ms.rank DESC, ms.occurred_at DESC, ms.consent_event_id DESC
)
SELECT owner AS donor_id, purpose, channel, status, lawful_basis, consent_event_id,
       occurred_at AS effective_at, expires_at
FROM chosen
UNION ALL
(SELECT DISTINCT ON (owner, purpose) owner, purpose, 'all', status, lawful_basis, consent_event_id,
        occurred_at, first_expiry
 FROM (SELECT c.*, count(*) OVER w AS n, min(expires_at) OVER w AS first_expiry
       FROM chosen c WINDOW w AS (PARTITION BY owner, purpose)) x
 WHERE n = 4
 ORDER BY owner, purpose, rank DESC, occurred_at DESC, consent_event_id DESC);
CREATE UNIQUE INDEX ON __donor_sync__consent_new (donor_id, purpose, channel);
"""

# Status changes per donor (rows added, removed or changed status), before anything is written.
_DIFF = """
WITH old AS (
    SELECT cs.* FROM core.consent_state cs JOIN __donor_sync__consent_scope s USING (donor_id)
)
SELECT coalesce(n.donor_id, o.donor_id)::text,
       jsonb_agg(jsonb_build_object(
           'purpose', coalesce(n.purpose, o.purpose), 'channel', coalesce(n.channel, o.channel),
           'from', o.status, 'to', n.status, 'consent_event_id', n.consent_event_id)
           ORDER BY coalesce(n.purpose, o.purpose), coalesce(n.channel, o.channel))
FROM __donor_sync__consent_new n
FULL JOIN old o ON o.donor_id = n.donor_id AND o.purpose = n.purpose AND o.channel = n.channel
WHERE o.status IS DISTINCT FROM n.status
GROUP BY 1
"""

_DELETE = """
DELETE FROM core.consent_state cs USING __donor_sync__consent_scope s
WHERE cs.donor_id = s.donor_id
  AND NOT EXISTS (SELECT 1 FROM __donor_sync__consent_new n
                  WHERE n.donor_id = cs.donor_id AND n.purpose = cs.purpose AND n.channel = cs.channel)
"""

_UPSERT = """
INSERT INTO core.consent_state AS cs
    (donor_id, purpose, channel, status, lawful_basis, consent_event_id, effective_at, expires_at)
SELECT donor_id, purpose, channel, status, lawful_basis, consent_event_id, effective_at, expires_at
FROM __donor_sync__consent_new
ON CONFLICT (donor_id, purpose, channel) DO UPDATE SET
    status = excluded.status, lawful_basis = excluded.lawful_basis,
    consent_event_id = excluded.consent_event_id, effective_at = excluded.effective_at,
    expires_at = excluded.expires_at
WHERE (cs.status, cs.lawful_basis, cs.consent_event_id, cs.effective_at, cs.expires_at)
      IS DISTINCT FROM (excluded.status, excluded.lawful_basis, excluded.consent_event_id,
                        excluded.effective_at, excluded.expires_at)
"""


@dataclass(frozen=True)
class StateRefresh:
    """What :func:`refresh_consent_state` did (ids and counts)."""

    donors_in_scope: int
    rows_deleted: int
    rows_written: int
    #: donors whose status changed somewhere (a row added, removed, or another status)
    changed_donors: tuple[str, ...]


def refresh_consent_state(
    conn: psycopg.Connection,
    donor_ids: Collection[str],
    *,
    actor: str,
    now: datetime | None = None,
    run_id: Any = None,
) -> StateRefresh:
    """Recompute ``core.consent_state`` of ``donor_ids``, their survivors and their survivors' members.

    Call it after recording events, merging, unmerging or erasing donors. Writes only the rows
    that changed, and one ``consent.changed`` audit row per donor whose status changed. Not
    committed (temporary tables live until the caller's commit).
    """
    ids = sorted({str(d) for d in donor_ids})
    if not ids:
        return StateRefresh(0, 0, 0, ())
    now = now or datetime.now(UTC)
    params = {"ids": ids, "now": now}
    with conn.cursor() as cur:
        for statement in (_SCOPE, _NEW):
            for part in (p.strip() for p in statement.split(";")):
                if part:
                    cur.execute(part, params)
        scope = cur.execute("SELECT count(*) FROM __donor_sync__consent_scope").fetchone()
        changes = [(str(r[0]), r[1]) for r in cur.execute(_DIFF).fetchall()]
        deleted = cur.execute(_DELETE).rowcount
        written = cur.execute(_UPSERT).rowcount
    if changes:
        audit.record_many(
            conn,
            actor=actor,
            action="consent.changed",
            object_type="donor",
            rows=[(donor, {"changes": detail}) for donor, detail in changes],
            run_id=run_id,
        )
        produce_consent_events(conn, changes, now=now, run_id=run_id)  # consent.changed to subscribers
    return StateRefresh(
        int(scope[0]) if scope else 0, max(deleted, 0), max(written, 0), tuple(d for d, _ in changes)
    )


def refresh_expired(
    conn: psycopg.Connection, *, actor: str, now: datetime | None = None, run_id: Any = None
) -> StateRefresh:
    """Recompute the donors whose state rests on an event that has expired (nightly). Not committed."""
    now = now or datetime.now(UTC)
    rows = conn.execute(
        "SELECT DISTINCT donor_id::text FROM core.consent_state WHERE expires_at <= %s", (now,)
    ).fetchall()
    return refresh_consent_state(conn, [r[0] for r in rows], actor=actor, now=now, run_id=run_id)


def current_state(conn: psycopg.Connection, donor_id: str) -> dict[tuple[str, str], dict[str, Any]]:
    """Return ``{(purpose, channel): {status, lawful_basis, consent_event_id, effective_at, expires_at}}``."""
    rows = conn.execute(
        "SELECT purpose, channel, status, lawful_basis, consent_event_id, effective_at, expires_at"
        " FROM core.consent_state WHERE donor_id = %s",
        (donor_id,),
    ).fetchall()
    return {
        (str(r[0]), str(r[1])): {
            "status": r[2],
            "lawful_basis": r[3],
            "consent_event_id": r[4],
            "effective_at": r[5],
            "expires_at": r[6],
        }
        for r in rows
    }


def load_history(
    conn: psycopg.Connection, donor_ids: Sequence[str]
) -> tuple[list[EventRow], dict[str, DonorLink]]:
    """Return the events and merge links of ``donor_ids`` (what :func:`derive` needs; tests, CLI)."""
    links = {
        str(r[0]): DonorLink(None if r[1] is None else str(r[1]), r[2], r[3])
        for r in conn.execute(
            "SELECT donor_id, merged_into, merged_at, erased_at IS NOT NULL FROM core.donors"
            " WHERE donor_id = ANY(%s::uuid[])",
            (list(donor_ids),),
        ).fetchall()
    }
    events = [
        EventRow(int(r[0]), str(r[1]), r[2], r[3], r[4], r[5], r[6], r[7])
        for r in conn.execute(
            "SELECT consent_event_id, donor_id, purpose, channel, status, occurred_at, expires_at,"
            " lawful_basis FROM core.consent_events WHERE donor_id = ANY(%s::uuid[])",
            (list(donor_ids),),
        ).fetchall()
    ]
    return events, links
