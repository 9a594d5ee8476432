"""The one way readers and writers of encrypted columns seal and open values.

Writers call :func:`seal` on a value before writing it (or :func:`seal_rows` right after a
set-based SQL write, in the same transaction, so plaintext is never committed); readers call
:func:`open_value` on what they read. Both look the column up in encryption.yaml, so a column
is turned on or off there, not in the code:

* a column not configured (or encryption disabled) is written as it is;
* every value read is opened when it is an envelope, whatever the configuration says, so
  turning encryption off later never strands ciphertext, and a plaintext value (written before
  encryption was turned on) is returned unchanged.

The process-wide :class:`FieldCrypto` is built lazily from encryption.yaml and
:func:`donor_sync.privacy.keys.default_key_source`, which starts with the ``privacy_keys``
connection in tasks, plugins and the CLI (:mod:`donor_sync.hooks.privacy_keys`); tests use
:func:`using`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from donor_sync.privacy.crypto.cipher import FieldCipher, is_encrypted
from donor_sync.privacy.crypto.settings import EncryptedColumn, EncryptionSettings, load_encryption_settings
from donor_sync.privacy.keys import DefaultKeys, KeySource

__all__ = ["FieldCrypto", "configure", "field_crypto", "open_value", "seal", "seal_rows", "using"]


class FieldCrypto:
    """Encryption settings and a cipher: seal and open the configured columns."""

    def __init__(self, settings: EncryptionSettings, cipher: FieldCipher) -> None:
        self.settings = settings
        self.cipher = cipher

    @classmethod
    def from_source(cls, source: KeySource, settings: EncryptionSettings | None = None) -> FieldCrypto:
        """Build one over a key source (and encryption.yaml unless ``settings`` are given)."""
        return cls(settings or load_encryption_settings(), FieldCipher(source))

    def encrypted(self, name: str) -> EncryptedColumn | None:
        """Return the configuration of ``schema.table.column`` when writers must seal it."""
        if not self.settings.enabled:
            return None
        return self.settings.column(name)

    def seal(self, name: str, value: Any, row_key: object) -> Any:
        """Return ``value`` sealed for column ``name`` and row ``row_key`` (unchanged when not encrypted)."""
        column = self.encrypted(name)
        if column is None or value is None:
            return value
        return self.cipher.encrypt(value, kind=column.kind, column=name, row_key=row_key)

    def open(self, name: str, value: Any, row_key: object) -> Any:
        """Return the plaintext of ``value`` read from column ``name`` of row ``row_key``."""
        if value is None or not is_encrypted(value):
            return value
        return self.cipher.decrypt(value, column=name, row_key=row_key)

    def seal_rows(self, conn: psycopg.Connection, table: str, row_keys: Sequence[object]) -> int:
        """Seal, in place, the plaintext values of ``table``'s encrypted columns in the given rows.

        For writers whose write is set-based SQL (a value copied from another table): call it in
        the same transaction, right after. Returns the values sealed. Not committed.
        """
        sealed = 0
        if not row_keys:
            return 0
        for column in self.settings.of_table(table) if self.settings.enabled else ():
            schema, name = table.split(".", 1)
            rows = conn.execute(
                sql.SQL(
                    "SELECT {key}, {col} FROM {table} WHERE {key} = ANY(%s) AND {col} IS NOT NULL"
                ).format(
                    key=sql.Identifier(column.row_key),
                    col=sql.Identifier(column.column),
                    table=sql.Identifier(schema, name),
                ),
                (list(row_keys),),
            ).fetchall()
            updates = [
                (as_param(column, self.seal(column.name, value, key)), key)
                for key, value in rows
                if not is_encrypted(value)
            ]
            if updates:
                with conn.cursor() as cur:
                    cur.executemany(
                        sql.SQL("UPDATE {table} SET {col} = %s WHERE {key} = %s").format(
                            table=sql.Identifier(schema, name),
                            col=sql.Identifier(column.column),
                            key=sql.Identifier(column.row_key),
                        ),
                        updates,
                    )
            sealed += len(updates)
        return sealed


def as_param(column: EncryptedColumn, value: Any) -> Any:
    """Return ``value`` as a query parameter for ``column`` (jsonb as JSON text)."""
    if column.kind == "jsonb" and value is not None:
        return Jsonb(value)
    return value


_lock = threading.Lock()
_default: FieldCrypto | None = None


def field_crypto() -> FieldCrypto:
    """Return the process-wide :class:`FieldCrypto` (built on first use)."""
    global _default  # noqa: PLW0603 - one lazily built instance per process
    with _lock:
        if _default is None:
            # The default chain is read at each use (no cache here: the Airflow connection source
            # caches for itself), so a change of keys in the environment is seen at once.
            _default = FieldCrypto(load_encryption_settings(), FieldCipher(DefaultKeys(), ttl=0.0))
        return _default


def configure(crypto: FieldCrypto | None) -> None:
    """Set the process-wide instance (``None``: build the default again on next use)."""
    global _default  # noqa: PLW0603
    with _lock:
        _default = crypto


@contextmanager
def using(crypto: FieldCrypto) -> Iterator[FieldCrypto]:
    """Use ``crypto`` as the process-wide instance inside the block (tests)."""
    global _default  # noqa: PLW0603
    with _lock:
        previous, _default = _default, crypto
    try:
        yield crypto
    finally:
        with _lock:
            _default = previous


def seal(name: str, value: Any, row_key: object) -> Any:
    """Seal ``value`` for column ``name`` (``schema.table.column``) of row ``row_key``, if configured."""
    return field_crypto().seal(name, value, row_key)


def open_value(name: str, value: Any, row_key: object) -> Any:
    """Open ``value`` read from column ``name`` of row ``row_key`` (plaintext returned unchanged)."""
    if value is None or not is_encrypted(value):
        return value
    return field_crypto().open(name, value, row_key)


def seal_rows(conn: psycopg.Connection, table: str, row_keys: Sequence[object]) -> int:
    """Seal in place the plaintext values of ``table``'s encrypted columns in these rows (not committed)."""
    return field_crypto().seal_rows(conn, table, row_keys)
