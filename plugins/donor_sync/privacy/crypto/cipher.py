"""AES-256-GCM field encryption with the ``encryption`` key ring, in self-describing envelopes.

Two envelope shapes, both naming the envelope version and the key id, so a reader knows which
key of the ring opens a value and a rotation knows which values are not yet under the current key:

* text columns: ``enc:v1:<key id>:<base64(nonce || ciphertext+tag)>``;
* jsonb columns: ``{"$enc": "v1", "kid": "<key id>", "ct": "<base64(nonce || ciphertext+tag)>"}``
  (the plaintext is the value's compact JSON text).

The associated data binds a ciphertext to the column it was written to (``schema.table.column``)
and, when given, to its row key: a value copied to another column or another row does not open.

A value that is not an envelope is plaintext written before encryption was turned on (or a
column that is not encrypted): :meth:`FieldCipher.decrypt` returns it unchanged, so turning
encryption on needs no migration and no downtime. Every key of the ring opens values; the
current key seals new ones.

Errors never carry the value, the plaintext or key material: only the column, the row key and
the key id.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import threading
import time
from typing import Any, Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from donor_sync.errors import ConfigError, DonorSyncError
from donor_sync.privacy.keys import KeyRing, KeySource, missing_ring_error

__all__ = [
    "ENVELOPE_VERSION",
    "JSON_MARKER",
    "TEXT_PREFIX",
    "DecryptionError",
    "FieldCipher",
    "Kind",
    "associated_data",
    "is_encrypted",
    "key_id_of",
]

Kind = Literal["text", "jsonb"]
ENVELOPE_VERSION = "v1"
TEXT_PREFIX = f"enc:{ENVELOPE_VERSION}:"
JSON_MARKER = "$enc"
NONCE_BYTES = 12
PURPOSE = "encryption"


class DecryptionError(DonorSyncError):
    """An envelope does not open: altered, moved to another column or row, or its key is gone."""


def associated_data(column: str, row_key: object | None) -> bytes:
    """Return the associated data binding a ciphertext to ``column`` (and ``row_key`` when given)."""
    key = "" if row_key is None else str(row_key)
    return f"donor-sync:{ENVELOPE_VERSION}:{column}:{key}".encode()


def is_encrypted(value: object) -> bool:
    """Return whether ``value`` is an envelope (text or jsonb shape); plaintext is not."""
    if isinstance(value, str):
        return value.startswith(TEXT_PREFIX)
    if isinstance(value, dict):
        return value.get(JSON_MARKER) == ENVELOPE_VERSION and "kid" in value and "ct" in value
    return False


def key_id_of(value: object) -> str | None:
    """Return the key id an envelope names; ``None`` for plaintext."""
    if not is_encrypted(value):
        return None
    if isinstance(value, str):
        return value[len(TEXT_PREFIX) :].split(":", 1)[0]
    assert isinstance(value, dict)
    return str(value["kid"])


class FieldCipher:
    """Seal and open field values with the ``encryption`` ring of a key source.

    The ring is read from ``source`` and kept for ``ttl`` seconds; a value naming a key id the
    kept ring lacks makes it read the source again first (a key added by a rotation elsewhere).

    :param source: a key source (``default_key_source()``, ``StaticKeys`` in tests) or a ring.
    :param ttl: seconds a ring read from the source is reused.
    """

    def __init__(self, source: KeySource | KeyRing, *, ttl: float = 30.0) -> None:
        self._source = source
        self._ttl = ttl
        self._lock = threading.Lock()
        self._ring: KeyRing | None = source if isinstance(source, KeyRing) else None
        self._read_at = time.monotonic()

    # -- keys ------------------------------------------------------------------------------------

    def ring(self, *, refresh: bool = False) -> KeyRing:
        """Return the ``encryption`` ring (read again when stale or when ``refresh``).

        :raises ConfigError: when the source has no ``encryption`` ring.
        """
        if isinstance(self._source, KeyRing):
            return self._source
        with self._lock:
            stale = time.monotonic() - self._read_at > self._ttl
            if self._ring is None or refresh or stale:
                found = self._source.ring(PURPOSE)
                if found is None:
                    raise missing_ring_error(PURPOSE, self._source)
                self._ring = found
                self._read_at = time.monotonic()
            return self._ring

    def _key(self, key_id: str, *, column: str, row_key: object | None) -> bytes:
        ring = self.ring()
        if key_id not in ring.keys:
            ring = self.ring(refresh=True)
        if key_id not in ring.keys:
            raise DecryptionError(
                f"{column} (row {row_key}): sealed with key {key_id!r}, which the encryption ring no "
                "longer holds; put it back (docs/encryption.md, 'retire')"
            )
        return _aes_key(ring, key_id)

    @property
    def current_key_id(self) -> str:
        """Return the id of the key new values are sealed with."""
        return self.ring().current

    # -- raw seal / open ---------------------------------------------------------------------------

    def _seal(self, data: bytes, *, column: str, row_key: object | None) -> tuple[str, str]:
        ring = self.ring()
        key_id = ring.current
        if ":" in key_id:
            raise ConfigError(f"privacy keys: encryption key id {key_id!r} must not contain ':'")
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(_aes_key(ring, key_id)).encrypt(nonce, data, associated_data(column, row_key))
        return key_id, base64.b64encode(nonce + sealed).decode("ascii")

    def _open(self, key_id: str, blob: str, *, column: str, row_key: object | None) -> bytes:
        try:
            raw = base64.b64decode(blob, validate=True)
        except (binascii.Error, ValueError):
            raise DecryptionError(f"{column} (row {row_key}): the envelope is not valid base64") from None
        if len(raw) < NONCE_BYTES + 16:
            raise DecryptionError(f"{column} (row {row_key}): the envelope is truncated")
        key = self._key(key_id, column=column, row_key=row_key)
        try:
            return AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], associated_data(column, row_key))
        except InvalidTag:
            raise DecryptionError(
                f"{column} (row {row_key}): the value does not authenticate under key {key_id!r} "
                "(altered, or copied from another column or row)"
            ) from None

    # -- text --------------------------------------------------------------------------------------

    def encrypt_text(self, value: str, *, column: str, row_key: object | None = None) -> str:
        """Return the text envelope of ``value``; an envelope already is returned unchanged."""
        if is_encrypted(value):
            return value
        key_id, blob = self._seal(value.encode("utf-8"), column=column, row_key=row_key)
        return f"{TEXT_PREFIX}{key_id}:{blob}"

    def decrypt_text(self, value: str, *, column: str, row_key: object | None = None) -> str:
        """Return the plaintext of a text envelope; plaintext is returned unchanged."""
        if not is_encrypted(value):
            return value
        key_id, sep, blob = value[len(TEXT_PREFIX) :].partition(":")
        if not sep or not key_id:
            raise DecryptionError(f"{column} (row {row_key}): malformed text envelope")
        return self._open(key_id, blob, column=column, row_key=row_key).decode("utf-8")

    # -- json --------------------------------------------------------------------------------------

    def encrypt_json(self, value: Any, *, column: str, row_key: object | None = None) -> dict[str, str]:
        """Return the jsonb envelope of ``value`` (any JSON value); an envelope is returned unchanged."""
        if is_encrypted(value):
            return dict(value)
        data = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8")
        key_id, blob = self._seal(data, column=column, row_key=row_key)
        return {JSON_MARKER: ENVELOPE_VERSION, "kid": key_id, "ct": blob}

    def decrypt_json(self, value: Any, *, column: str, row_key: object | None = None) -> Any:
        """Return the JSON value inside a jsonb envelope; plaintext is returned unchanged."""
        if not is_encrypted(value):
            return value
        data = self._open(str(value["kid"]), str(value["ct"]), column=column, row_key=row_key)
        return json.loads(data.decode("utf-8"))

    # -- either ------------------------------------------------------------------------------------

    def encrypt(self, value: Any, *, kind: Kind, column: str, row_key: object | None = None) -> Any:
        """Seal ``value`` as ``kind``; ``None`` stays ``None``."""
        if value is None:
            return None
        if kind == "text":
            return self.encrypt_text(str(value), column=column, row_key=row_key)
        return self.encrypt_json(value, column=column, row_key=row_key)

    def decrypt(self, value: Any, *, column: str, row_key: object | None = None) -> Any:
        """Open ``value`` whatever its shape; plaintext and ``None`` are returned unchanged."""
        if isinstance(value, str):
            return self.decrypt_text(value, column=column, row_key=row_key)
        return self.decrypt_json(value, column=column, row_key=row_key)

    def reencrypt(self, value: Any, *, kind: Kind, column: str, row_key: object | None = None) -> Any:
        """Open ``value`` (any key of the ring, or plaintext) and seal it under the current key."""
        if value is None:
            return None
        plain = self.decrypt(value, column=column, row_key=row_key)
        if kind == "text":
            return self.encrypt_text(str(plain), column=column, row_key=row_key)
        return self.encrypt_json(plain, column=column, row_key=row_key)


def _aes_key(ring: KeyRing, key_id: str) -> bytes:
    key = ring.key(key_id)
    if len(key) != 32:
        raise ConfigError(
            f"privacy keys: encryption key {key_id!r} must be 32 bytes (AES-256), not {len(key)}"
        )
    return key
