"""Everything that identifies an erasure's donor: donor ids, emails, phones, names, source and remote ids.

Read from core and staging while they still hold it (before the local purge). Values stay in
memory; nothing here is logged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from uuid import UUID

import psycopg

from donor_sync.privacy.contracts import ErasureSubject, RemoteRef


@dataclass(frozen=True)
class SubjectFacts:
    """The subject of an erasure as the local purge needs it (PII in memory only).

    :ivar donor_ids: the survivor first, then every donor merged into it.
    :ivar source_ids: ``(system, external_id, role)`` of every core.donor_sources row.
    :ivar names: full names and last names seen (for sweeping free text).
    """

    donor_ids: tuple[str, ...]
    emails: tuple[str, ...] = field(default=(), repr=False)
    phones: tuple[str, ...] = field(default=(), repr=False)
    names: tuple[str, ...] = field(default=(), repr=False)
    name_parts: tuple[str, ...] = field(default=(), repr=False)
    source_ids: tuple[tuple[str, str, str], ...] = ()
    remote_ids: dict[str, tuple[RemoteRef, ...]] = field(default_factory=dict)

    def erasure_subject(self, request_id: UUID) -> ErasureSubject:
        """Return what the destination erasers get."""
        return ErasureSubject(
            request_id=request_id,
            donor_ids=self.donor_ids,
            emails=self.emails,
            phones=self.phones,
            remote_ids=dict(self.remote_ids),
        )


def donor_family(conn: psycopg.Connection, donor_id: UUID | str) -> tuple[str, ...]:
    """Return the survivor of ``donor_id`` first, then every donor merged into it."""
    row = conn.execute(
        "SELECT coalesce(merged_into, donor_id)::text FROM core.donors WHERE donor_id = %s", (str(donor_id),)
    ).fetchone()
    if row is None:
        return ()
    survivor = row[0]
    members = [
        r[0]
        for r in conn.execute(
            "SELECT donor_id::text FROM core.donors WHERE merged_into = %s ORDER BY donor_id", (survivor,)
        ).fetchall()
    ]
    return (survivor, *members)


def _distinct(values: Sequence[str | None]) -> tuple[str, ...]:
    return tuple(sorted({v.strip() for v in values if v and v.strip()}))


def collect_subject(conn: psycopg.Connection, donor_id: UUID | str) -> SubjectFacts:
    """Read the subject's identifiers from core.donors, staging.donors and the source rows' attributes."""
    ids = list(donor_family(conn, donor_id))
    if not ids:
        return SubjectFacts(())
    rows = conn.execute(
        """
        SELECT lower(email), phone, first_name, last_name, organization_name FROM core.donors
         WHERE donor_id = ANY(%(ids)s::uuid[])
        UNION
        SELECT lower(email), phone, first_name, last_name, organization_name FROM staging.donors
         WHERE donor_id = ANY(%(ids)s::uuid[])
            OR (source, source_id) IN (SELECT system, external_id FROM core.donor_sources
                                        WHERE donor_id = ANY(%(ids)s::uuid[]) AND role = 'source')
        UNION
        SELECT lower(attributes ->> 'email'), attributes ->> 'phone', attributes ->> 'first_name',
               attributes ->> 'last_name', attributes ->> 'organization_name'
          FROM core.donor_sources WHERE donor_id = ANY(%(ids)s::uuid[]) AND attributes IS NOT NULL
        """,
        {"ids": ids},
    ).fetchall()
    emails = _distinct([r[0] for r in rows])
    phones = _distinct([r[1] for r in rows])
    names = _distinct([f"{r[2]} {r[3]}" if r[2] and r[3] else None for r in rows] + [r[4] for r in rows])
    sources = conn.execute(
        "SELECT system, external_id, role, id_kind FROM core.donor_sources WHERE donor_id = ANY(%s::uuid[])"
        " ORDER BY system, external_id",
        (ids,),
    ).fetchall()
    remote: dict[str, set[RemoteRef]] = {}
    for system, external_id, role, id_kind in sources:
        if role == "destination":
            remote.setdefault(system, set()).add(RemoteRef(id_kind, external_id))
    for destination, entity, remote_id in conn.execute(
        "SELECT destination, entity, remote_id FROM sync.destination_state"
        " WHERE donor_id = ANY(%s::uuid[]) AND remote_id IS NOT NULL",
        (ids,),
    ).fetchall():
        remote.setdefault(destination, set()).add(RemoteRef(entity, remote_id))
    return SubjectFacts(
        donor_ids=tuple(ids),
        emails=emails,
        phones=phones,
        names=names,
        name_parts=_distinct([r[2] for r in rows] + [r[3] for r in rows]),
        source_ids=tuple((s, e, r) for s, e, r, _ in sources),
        remote_ids={k: tuple(sorted(v, key=lambda x: (x.entity, x.remote_id))) for k, v in remote.items()},
    )
