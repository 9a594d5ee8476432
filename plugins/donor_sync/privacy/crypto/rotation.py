"""Key rotation without downtime: add a key, re-encrypt in batches, retire the old key.

1. **rotate** -- a new key joins the ring as current (:func:`rotate_local_key` for the local
   development key file; in production the secrets backend's ring is edited, see
   :data:`PRODUCTION_STEPS`). New values are sealed with it; readers accept every key of the ring.
2. **reencrypt** -- :func:`reencrypt` walks every configured column in row-key order and seals
   again, under the current key, each value that is not under it (older keys, and plaintext
   written before encryption was turned on). Each batch locks its rows ``FOR UPDATE SKIP LOCKED``
   and commits, so writers and readers keep working and an interrupted run resumes where the
   values still need it. Rows locked by a writer are passed over and counted as remaining.
3. **retire** -- :func:`retire_local_key` drops a key from the ring once no value uses it
   (:func:`key_usage`); it refuses while one does, and refuses the current key.

Counts are audited (``keys.rotated``, ``keys.reencrypted``, ``keys.retired``); never values or keys.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from donor_sync.errors import ConfigError, DonorSyncError
from donor_sync.observability import audit
from donor_sync.privacy.crypto.cipher import TEXT_PREFIX, DecryptionError, is_encrypted
from donor_sync.privacy.crypto.fields import FieldCrypto, as_param
from donor_sync.privacy.crypto.settings import EncryptedColumn
from donor_sync.privacy.keys import PURPOSES, LocalKeyFile, new_key

__all__ = [
    "PRODUCTION_STEPS",
    "ColumnReport",
    "KeyInUseError",
    "ReencryptReport",
    "key_usage",
    "reencrypt",
    "retire_local_key",
    "rotate_local_key",
]

PLAINTEXT = "(plaintext)"

PRODUCTION_STEPS = """\
In production the key ring lives in the secrets backend (the privacy_keys connection's extra, or
$DONOR_SYNC_PRIVACY_KEYS), not in the local file. Rotate there without downtime:
  1. add the new key to the {purpose} ring under a new id, leaving "current" as it is, and let
     every worker and the webserver pick it up (readers must know a key before values use it);
  2. set "current" to the new id;
  3. encryption: run `donor-sync keys reencrypt` (or let it run from a maintenance task) until
     it reports 0 remaining; pseudonym: destinations receive new pseudonyms at the next full
     push; links: links signed with the old key stay valid while it is in the ring;
     tombstone: never remove old keys (a tombstone cannot be re-hashed);
  4. `donor-sync keys retire OLD_ID` checks nothing uses the old key; then remove it from the
     backend's ring.
A new key: python -c "from donor_sync.privacy.keys import new_key; print(new_key())\""""


class KeyInUseError(DonorSyncError):
    """A key cannot be retired: values or tombstones still use it, or it is the current key."""


@dataclass
class ColumnReport:
    """What a re-encryption did to one column."""

    column: str
    reencrypted: int = 0  # envelopes moved from an older key to the current one
    sealed_plaintext: int = 0  # plaintext values (written before encryption) sealed
    failed: int = 0  # envelopes that did not open (altered, or key gone): left as they are
    remaining: int = 0  # values not under the current key after the run (locked or failed)
    batches: int = 0


@dataclass
class ReencryptReport:
    """Per column counts of a :func:`reencrypt` run, and the key it moved values to."""

    key_id: str
    columns: list[ColumnReport] = field(default_factory=list)

    @property
    def remaining(self) -> int:
        """Values still not under the current key."""
        return sum(c.remaining for c in self.columns)

    def details(self) -> dict[str, Any]:
        """Return the audit details (counts only)."""
        return {
            "key_id": self.key_id,
            "columns": {
                c.column: {
                    "reencrypted": c.reencrypted,
                    "sealed_plaintext": c.sealed_plaintext,
                    "failed": c.failed,
                    "remaining": c.remaining,
                }
                for c in self.columns
            },
        }


def _stale_predicate(column: EncryptedColumn) -> sql.Composable:
    """SQL: the column's value is not an envelope under the current key (``%(current)s``)."""
    col = sql.Identifier(column.column)
    if column.kind == "jsonb":
        return sql.SQL(
            "{c} IS NOT NULL AND NOT coalesce(jsonb_typeof({c}) = 'object' AND {c} ->> '$enc' = 'v1'"
            " AND {c} ->> 'kid' = %(current)s, false)"
        ).format(c=col)
    return sql.SQL("{c} IS NOT NULL AND NOT starts_with({c}, %(prefix)s)").format(c=col)


def as_params(current: str) -> dict[str, str]:
    return {"current": current, "prefix": f"{TEXT_PREFIX}{current}:"}


def _table(column: EncryptedColumn) -> sql.Identifier:
    schema, name = column.table.split(".", 1)
    return sql.Identifier(schema, name)


def reencrypt(
    conn: psycopg.Connection,
    crypto: FieldCrypto,
    *,
    batch: int = 500,
    actor: str,
    progress: Callable[[ColumnReport], None] | None = None,
) -> ReencryptReport:
    """Seal every configured column's values again under the current key, in committed batches.

    :param conn: a connection of its own: each batch is committed on it.
    :param progress: called after each batch with the column's running counts.
    :return: counts per column; ``remaining`` > 0 means run it again (rows were locked or failed).
    """
    if batch < 1:
        raise ConfigError("keys reencrypt: --batch must be at least 1")
    current = crypto.cipher.ring(refresh=True).current
    report = ReencryptReport(current)
    conn.commit()
    for column in crypto.settings.columns:
        col_report = ColumnReport(column.name)
        report.columns.append(col_report)
        key = sql.Identifier(column.row_key)
        first, following = (
            sql.SQL(
                "SELECT {key}, {col} FROM {table} WHERE {stale}{after}"
                " ORDER BY {key} LIMIT %(batch)s FOR UPDATE SKIP LOCKED"
            ).format(
                key=key,
                col=sql.Identifier(column.column),
                table=_table(column),
                stale=_stale_predicate(column),
                after=sql.SQL(after_sql).format(key=key),
            )
            for after_sql in ("", " AND {key} > %(after)s")
        )
        update = sql.SQL("UPDATE {table} SET {col} = %s WHERE {key} = %s").format(
            table=_table(column), col=sql.Identifier(column.column), key=key
        )
        after: Any = None
        while True:
            rows = conn.execute(
                first if after is None else following, {**as_params(current), "after": after, "batch": batch}
            ).fetchall()
            if not rows:
                conn.commit()
                break
            updates = []
            for row_key, value in rows:
                try:
                    sealed = crypto.cipher.reencrypt(
                        value, kind=column.kind, column=column.name, row_key=row_key
                    )
                except DecryptionError:
                    col_report.failed += 1
                    continue
                if is_encrypted(value):
                    col_report.reencrypted += 1
                else:
                    col_report.sealed_plaintext += 1
                updates.append((as_param(column, sealed), row_key))
            if updates:
                with conn.cursor() as cur:
                    cur.executemany(update, updates)
            conn.commit()
            col_report.batches += 1
            after = rows[-1][0]
            if progress is not None:
                progress(col_report)
        count = conn.execute(
            sql.SQL("SELECT count(*) FROM {table} WHERE {stale}").format(
                table=_table(column), stale=_stale_predicate(column)
            ),
            as_params(current),
        ).fetchone()
        col_report.remaining = int(count[0]) if count else 0
        conn.commit()
    audit.record(
        conn,
        actor=actor,
        action="keys.reencrypted",
        object_type="key",
        object_id=current,
        details=report.details(),
    )
    conn.commit()
    return report


def key_usage(conn: psycopg.Connection, crypto: FieldCrypto) -> dict[str, dict[str, int]]:
    """Return, per configured column, how many values each key id seals (and how many are plaintext)."""
    usage: dict[str, dict[str, int]] = {}
    for column in crypto.settings.columns:
        col = sql.Identifier(column.column)
        if column.kind == "jsonb":
            kid = sql.SQL(
                "CASE WHEN jsonb_typeof({c}) = 'object' AND {c} ->> '$enc' = 'v1' THEN {c} ->> 'kid' END"
            ).format(c=col)
        else:
            kid = sql.SQL("CASE WHEN starts_with({c}, %(prefix)s) THEN split_part({c}, ':', 3) END").format(
                c=col
            )
        rows = conn.execute(
            sql.SQL("SELECT {kid}, count(*) FROM {table} WHERE {c} IS NOT NULL GROUP BY 1").format(
                kid=kid, table=_table(column), c=col
            ),
            {"prefix": TEXT_PREFIX},
        ).fetchall()
        usage[column.name] = {(k if k is not None else PLAINTEXT): int(n) for k, n in rows}
    return usage


def _tombstone_usage(conn: psycopg.Connection, key_id: str) -> int:
    row = conn.execute("SELECT count(*) FROM core.erasure_tombstones WHERE key_id = %s", (key_id,)).fetchone()
    return int(row[0]) if row else 0


def new_key_id(now: datetime | None = None) -> str:
    """Return a fresh key id: ``k<UTC timestamp>-<random>`` (no ':', sortable by creation)."""
    moment = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S")
    return f"k{moment}-{secrets.token_hex(2)}"


def rotate_local_key(
    conn: psycopg.Connection, purpose: str, *, key_file: LocalKeyFile, actor: str, key_id: str | None = None
) -> tuple[str, str]:
    """Add a new random key to ``purpose``'s ring in the local key file and make it current.

    The old keys stay in the ring (readers keep opening and verifying with them). Audited
    ``keys.rotated``; committed. Returns (previous current id, new id).
    """
    if purpose not in PURPOSES:
        raise ConfigError(f"keys rotate: unknown purpose {purpose!r}; one of {', '.join(PURPOSES)}")
    document = _local_document(key_file, purpose)
    ring = dict(document[purpose])
    previous = str(ring["current"])
    new_id = key_id or new_key_id()
    keys = dict(ring["keys"])
    if new_id in keys:
        raise ConfigError(f"{key_file.path}: {purpose}.keys already has a key {new_id!r}")
    keys[new_id] = new_key()
    document[purpose] = {"current": new_id, "keys": keys}
    key_file.write(document)
    audit.record(
        conn,
        actor=actor,
        action="keys.rotated",
        object_type="key_ring",
        object_id=purpose,
        details={"purpose": purpose, "previous_key_id": previous, "key_id": new_id, "store": "local_file"},
    )
    conn.commit()
    return previous, new_id


def retire_local_key(
    conn: psycopg.Connection,
    key_id: str,
    *,
    purpose: str,
    key_file: LocalKeyFile,
    crypto: FieldCrypto | None,
    actor: str,
) -> None:
    """Remove ``key_id`` from ``purpose``'s ring in the local key file once nothing uses it.

    :raises KeyInUseError: the key is current, or values (encryption) or tombstones still use it.
    """
    document = _local_document(key_file, purpose)
    ring = dict(document[purpose])
    keys = dict(ring.get("keys") or {})
    if key_id not in keys:
        raise ConfigError(f"{key_file.path}: the {purpose} ring has no key {key_id!r}")
    if ring.get("current") == key_id:
        raise KeyInUseError(f"key {key_id!r} is the current {purpose} key; rotate first")
    _check_unused(conn, key_id, purpose=purpose, crypto=crypto)
    del keys[key_id]
    document[purpose] = {"current": ring["current"], "keys": keys}
    key_file.write(document)
    audit.record(
        conn,
        actor=actor,
        action="keys.retired",
        object_type="key_ring",
        object_id=purpose,
        details={"purpose": purpose, "key_id": key_id, "store": "local_file"},
    )
    conn.commit()


def _check_unused(conn: psycopg.Connection, key_id: str, *, purpose: str, crypto: FieldCrypto | None) -> None:
    if purpose == "encryption":
        if crypto is None:
            raise ConfigError("keys retire: the encryption settings are needed to check the key is unused")
        usage = key_usage(conn, crypto)
        using = {name: counts[key_id] for name, counts in usage.items() if counts.get(key_id)}
        if using:
            listed = ", ".join(f"{name}: {n}" for name, n in sorted(using.items()))
            raise KeyInUseError(
                f"key {key_id!r} still seals values ({listed}); run `donor-sync keys reencrypt` first"
            )
    elif purpose == "tombstone":
        count = _tombstone_usage(conn, key_id)
        if count:
            raise KeyInUseError(
                f"key {key_id!r} made {count} erasure tombstone(s); tombstone keys are never retired "
                "(a tombstone cannot be re-hashed without the erased value)"
            )


def _local_document(key_file: LocalKeyFile, purpose: str) -> dict[str, Any]:
    """Return the local key file's whole document, which must hold ``purpose``'s ring.

    :raises ConfigError: no file, or no such ring (it is never made here: ``donor-sync keys init``).
    """
    document: dict[str, Any] = {}
    for name in PURPOSES:
        ring = key_file.ring(name)
        if ring is not None:
            document[name] = {"current": ring.current, "keys": _encoded(ring.keys)}
    if purpose not in document:
        key_file.document()  # no file at all: its error says so
        raise ConfigError(
            f"{key_file.path}: no {purpose} ring; `donor-sync keys init` adds the missing rings"
        )
    return document


def _encoded(keys: Mapping[str, bytes]) -> dict[str, str]:
    return {key_id: base64.b64encode(key).decode("ascii") for key_id, key in keys.items()}
