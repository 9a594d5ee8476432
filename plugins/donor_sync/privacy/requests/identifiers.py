"""Identifiers a request names its subject by: normalized, hashed, and looked up in core.

Kinds: ``email`` (lower-cased, trimmed), ``phone`` (E.164, US numbering unless it starts with +),
``source_id`` (``system:external_id``, e.g. ``stripe:cus_123``) and ``donor_id`` (a uuid; never
hashed, it is not PII). Values live in memory only; ``repr`` never shows them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import psycopg

from donor_sync.errors import DonorSyncError
from donor_sync.privacy.keys import KeyRing

IdentifierKind = Literal["email", "phone", "source_id", "donor_id"]
HASHED_KINDS: tuple[str, ...] = ("email", "phone", "source_id")
_SYSTEM = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class InvalidIdentifierError(DonorSyncError):
    """An identifier given with a request cannot be normalized (the message names the kind only)."""


@dataclass(frozen=True)
class Identifier:
    """One identifier of a request's subject, normalized."""

    kind: IdentifierKind
    value: str = field(repr=False)

    def __repr__(self) -> str:
        return f"Identifier(kind={self.kind!r})"


def normalize_email(value: str) -> str:
    """Return the email's matching form: trimmed and lower-cased (as ``email_key`` in standardize)."""
    text = value.strip().lower()
    if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", text):
        raise InvalidIdentifierError("email: not an email address")
    return text


def normalize_phone(value: str, default_region: str = "US") -> str:
    """Return the phone in E.164, parsed as standardize parses phones."""
    import pandas as pd

    from donor_sync.standardize.fields.phones import to_e164

    result = to_e164(pd.Series([value]), None, default_region=default_region).values["phone"]
    out = result.iloc[0]
    if out is None or (isinstance(out, float)) or pd.isna(out):
        raise InvalidIdentifierError("phone: not a valid phone number")
    return str(out)


def normalize_source_id(value: str) -> str:
    """Return ``system:external_id`` with the system lower-cased and the id trimmed."""
    system, sep, external = value.strip().partition(":")
    system = system.strip().lower()
    external = external.strip()
    if not sep or not _SYSTEM.match(system) or not external:
        raise InvalidIdentifierError("source_id: expected system:id (for example stripe:cus_123)")
    return f"{system}:{external}"


def normalize(kind: str, value: str) -> Identifier:
    """Return the identifier of ``kind`` in normalized form.

    :raises InvalidIdentifierError: the value cannot be read as that kind.
    """
    if kind == "email":
        return Identifier("email", normalize_email(value))
    if kind == "phone":
        return Identifier("phone", normalize_phone(value))
    if kind == "source_id":
        return Identifier("source_id", normalize_source_id(value))
    if kind == "donor_id":
        try:
            return Identifier("donor_id", str(UUID(value.strip())))
        except ValueError:
            raise InvalidIdentifierError("donor_id: not a uuid") from None
    raise InvalidIdentifierError(f"unknown identifier kind {kind!r} (email, phone, source_id, donor_id)")


def hash_entries(ring: KeyRing, identifiers: Iterable[Identifier]) -> list[dict[str, str]]:
    """Return ``subject_hashes`` entries (current key) for the hashed identifiers."""
    return [
        {"kind": i.kind, "key_id": ring.current, "hash": ring.hmac_hex(i.value)}
        for i in identifiers
        if i.kind in HASHED_KINDS
    ]


def _survivor(conn: psycopg.Connection, donor_ids: Iterable[Any]) -> UUID | None:
    ids = sorted({str(d) for d in donor_ids if d is not None})
    if not ids:
        return None
    rows = conn.execute(
        "SELECT DISTINCT coalesce(merged_into, donor_id) FROM core.donors WHERE donor_id = ANY(%s::uuid[])",
        (ids,),
    ).fetchall()
    found = sorted({r[0] for r in rows}, key=str)
    if len(found) > 1:
        raise DonorSyncError(
            f"the identifiers name {len(found)} different donors ({', '.join(str(f) for f in found)});"
            " make one request per donor"
        )
    return found[0] if found else None


def find_donor(conn: psycopg.Connection, identifiers: Sequence[Identifier]) -> UUID | None:
    """Return the surviving donor the identifiers name (core donors, merged members, source rows).

    Emails and phones are matched against ``core.donors`` (live donors and donors merged away)
    and the source records' attributes; source ids against ``core.donor_sources``. Erased donors
    are not found (nothing is left to act on).

    :raises DonorSyncError: the identifiers name more than one donor.
    """
    donors: list[Any] = []
    for ident in identifiers:
        if ident.kind == "donor_id":
            donors.append(ident.value)
        elif ident.kind == "email":
            donors += [
                r[0]
                for r in conn.execute(
                    "SELECT donor_id FROM core.donors WHERE lower(email) = %(v)s AND erased_at IS NULL"
                    " UNION SELECT ds.donor_id FROM core.donor_sources ds"
                    " WHERE lower(ds.attributes ->> 'email') = %(v)s",
                    {"v": ident.value},
                ).fetchall()
            ]
        elif ident.kind == "phone":
            donors += [
                r[0]
                for r in conn.execute(
                    "SELECT donor_id FROM core.donors WHERE phone = %(v)s AND erased_at IS NULL"
                    " UNION SELECT ds.donor_id FROM core.donor_sources ds WHERE ds.attributes ->> 'phone' ="
                    " %(v)s",
                    {"v": ident.value},
                ).fetchall()
            ]
        else:
            system, _, external = ident.value.partition(":")
            donors += [
                r[0]
                for r in conn.execute(
                    "SELECT donor_id FROM core.donor_sources WHERE system = %s AND external_id = %s",
                    (system, external),
                ).fetchall()
            ]
    survivor = _survivor(conn, donors)
    if survivor is None:
        return None
    erased = conn.execute("SELECT erased_at FROM core.donors WHERE donor_id = %s", (survivor,)).fetchone()
    return None if erased is None or erased[0] is not None else survivor


def find_donor_by_hashes(
    conn: psycopg.Connection, ring: KeyRing, hashes: Sequence[dict[str, Any]], *, since: datetime
) -> UUID | None:
    """Return the donor the request's keyed hashes name, among records that arrived since ``since``.

    A request made before its donor existed names it only by hashes; the donor can only have
    appeared after the request was received, so only donors and source rows changed since then are
    hashed and compared (the work follows what arrived, not the size of the base).
    """
    wanted: dict[str, set[str]] = {}
    for entry in hashes:
        wanted.setdefault(str(entry.get("kind")), set()).add(str(entry.get("hash")))
    if not wanted:
        return None
    rows = conn.execute(
        "SELECT d.donor_id, lower(d.email), d.phone, NULL::text FROM core.donors d"
        " WHERE d.updated_at >= %(since)s AND d.erased_at IS NULL"
        " UNION ALL SELECT ds.donor_id, lower(ds.attributes ->> 'email'), ds.attributes ->> 'phone',"
        "        ds.system || ':' || ds.external_id FROM core.donor_sources ds WHERE ds.updated_at >="
        " %(since)s",
        {"since": since},
    ).fetchall()
    found: list[Any] = []
    for donor_id, email, phone, source_id in rows:
        for kind, value in (("email", email), ("phone", phone), ("source_id", source_id)):
            if value and kind in wanted and {h.hex() for h in ring.hmac_all(value).values()} & wanted[kind]:
                found.append(donor_id)
    return _survivor(conn, found)
