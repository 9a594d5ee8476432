"""AES-256-GCM envelopes: round trips, tampering and moved values refused, plaintext passed through."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from donor_sync.errors import ConfigError
from donor_sync.privacy.crypto import (
    DecryptionError,
    FieldCipher,
    is_encrypted,
    key_id_of,
    load_encryption_settings,
)
from donor_sync.privacy.keys import StaticKeys
from tests.privacy.crypto.support import K1, K2, ring_document

COLUMN = "sync.dead_letters.payload"
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def cipher(current: str = "k1", **keys: str) -> FieldCipher:
    return FieldCipher(StaticKeys(ring_document(current, **keys)))


@given(json_values)
def test_json_round_trip(value: object) -> None:
    c = cipher()
    sealed = c.encrypt_json(value, column=COLUMN, row_key=7)
    assert is_encrypted(sealed)
    assert set(sealed) == {"$enc", "kid", "ct"}
    assert sealed["kid"] == "k1"
    assert c.decrypt_json(sealed, column=COLUMN, row_key=7) == value


@given(st.text())
def test_text_round_trip_and_envelope_shape(value: str) -> None:
    c = cipher()
    sealed = c.encrypt_text(value, column="t.s.c", row_key="a")
    assert sealed.startswith("enc:v1:k1:")
    assert key_id_of(sealed) == "k1"
    assert c.decrypt_text(sealed, column="t.s.c", row_key="a") == value


def test_plaintext_reads_back_unchanged_and_nothing_leaks() -> None:
    c = cipher()
    assert c.decrypt({"Email": "jane@example.org"}, column=COLUMN, row_key=1) == {"Email": "jane@example.org"}
    assert c.decrypt("jane@example.org", column="a.b.c") == "jane@example.org"
    assert c.decrypt(None, column=COLUMN) is None
    sealed = c.encrypt_json({"Email": "jane@example.org"}, column=COLUMN, row_key=1)
    assert "jane" not in json.dumps(sealed)
    # Two seals of the same value differ (random nonce), and sealing an envelope again is a no-op.
    assert sealed != c.encrypt_json({"Email": "jane@example.org"}, column=COLUMN, row_key=1)
    assert c.encrypt_json(sealed, column=COLUMN, row_key=1) == sealed


def test_altered_ciphertext_fails() -> None:
    c = cipher()
    sealed = c.encrypt_json({"Email": "jane@example.org"}, column=COLUMN, row_key=1)
    raw = bytearray(base64.b64decode(sealed["ct"]))
    raw[-1] ^= 0x01
    tampered = {**sealed, "ct": base64.b64encode(bytes(raw)).decode()}
    with pytest.raises(DecryptionError, match="does not authenticate") as caught:
        c.decrypt_json(tampered, column=COLUMN, row_key=1)
    assert "jane" not in str(caught.value)
    with pytest.raises(DecryptionError, match="truncated"):
        c.decrypt_json({**sealed, "ct": base64.b64encode(b"short").decode()}, column=COLUMN, row_key=1)
    text = c.encrypt_text("secret", column="a.b.c")
    with pytest.raises(DecryptionError):
        c.decrypt_text(text[:-4] + ("AAAA" if not text.endswith("AAAA") else "BBBB"), column="a.b.c")


def test_a_value_moved_to_another_column_or_row_fails() -> None:
    c = cipher()
    sealed = c.encrypt_json({"Email": "jane@example.org"}, column=COLUMN, row_key=1)
    with pytest.raises(DecryptionError, match="another column or row"):
        c.decrypt_json(sealed, column="sync.dead_letters.edited_payload", row_key=1)
    with pytest.raises(DecryptionError):
        c.decrypt_json(sealed, column=COLUMN, row_key=2)


def test_every_key_of_the_ring_opens_and_the_current_one_seals() -> None:
    old = cipher("k1", k1=K1).encrypt_json({"a": 1}, column=COLUMN, row_key=1)
    both = cipher("k2", k1=K1, k2=K2)
    assert both.decrypt_json(old, column=COLUMN, row_key=1) == {"a": 1}
    new = both.reencrypt(old, kind="jsonb", column=COLUMN, row_key=1)
    assert key_id_of(new) == "k2"
    with pytest.raises(DecryptionError, match="no longer holds"):
        cipher("k1", k1=K1).decrypt_json(new, column=COLUMN, row_key=1)


def test_keys_must_be_aes_256() -> None:
    short = base64.b64encode(b"x" * 16).decode()
    with pytest.raises(ConfigError, match="32 bytes"):
        cipher("k1", k1=short).encrypt_text("x", column="a.b.c")
    with pytest.raises(ConfigError, match="must not contain ':'"):
        cipher("a:b", **{"a:b": K1}).encrypt_text("x", column="a.b.c")


def test_the_configuration_names_file_and_field(tmp_path: Path) -> None:
    settings = load_encryption_settings()
    assert settings.column("sync.dead_letters.payload") is not None
    assert settings.column("staging.quarantine.reasons") is None  # computed on in SQL: left plain
    bad = tmp_path / "encryption.yaml"
    bad.write_text(
        "columns:\n  - table: sync.dead_letters\n    column: payload\n    kind: blob\n    row_key: id\n"
    )
    with pytest.raises(ConfigError, match=r"encryption.yaml: line 4, columns.0.kind"):
        load_encryption_settings(bad)
    bad.write_text(
        "columns:\n"
        "  - {table: a.b, column: c, kind: text, row_key: id}\n"
        "  - {table: a.b, column: c, kind: jsonb, row_key: id}\n"
    )
    with pytest.raises(ConfigError, match=r"a\.b\.c is listed twice"):
        load_encryption_settings(bad)
