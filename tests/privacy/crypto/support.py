"""Key rings and crypto instances for the encryption tests (no real key material)."""

from __future__ import annotations

import base64
from pathlib import Path

from donor_sync.privacy.crypto import FieldCipher, FieldCrypto, load_encryption_settings
from donor_sync.privacy.keys import LocalKeyFile, StaticKeys

K1 = base64.b64encode(b"\x01" * 32).decode()
K2 = base64.b64encode(b"\x02" * 32).decode()


def ring_document(current: str = "k1", **keys: str) -> dict[str, object]:
    """A keys document with an encryption ring (k1 by default)."""
    return {"encryption": {"current": current, "keys": keys or {"k1": K1}}}


def static_crypto(current: str = "k1", **keys: str) -> FieldCrypto:
    """A FieldCrypto over encryption.yaml and a static ring."""
    return FieldCrypto(load_encryption_settings(), FieldCipher(StaticKeys(ring_document(current, **keys))))


def key_file(tmp_path: Path) -> LocalKeyFile:
    """A local key file in ``tmp_path`` whose encryption ring holds k1 only (other rings random)."""
    keys = LocalKeyFile(tmp_path / "privacy_keys.json")
    keys.init()
    document = {
        p: {"current": r.current, "keys": {k: base64.b64encode(v).decode() for k, v in r.keys.items()}}
        for p in ("tombstone", "pseudonym", "links")
        if (r := keys.ring(p)) is not None
    }
    keys.write({**document, **ring_document()})
    return keys
