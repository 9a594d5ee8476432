"""Field-level encryption at rest: AES-256-GCM envelopes, the configured columns, key rotation.

* :mod:`.cipher` -- seal and open values with the ``encryption`` key ring (envelopes name their key).
* :mod:`.settings` -- ``include/mappings/privacy/encryption.yaml``: which columns are encrypted.
* :mod:`.fields` -- the one function pair every reader and writer of those columns calls.
* :mod:`.rotation` -- re-encrypt under the current key in batches, retire old keys.

See docs/encryption.md.
"""

from __future__ import annotations

from donor_sync.privacy.crypto.cipher import DecryptionError, FieldCipher, is_encrypted, key_id_of
from donor_sync.privacy.crypto.fields import FieldCrypto, field_crypto, open_value, seal, seal_rows, using
from donor_sync.privacy.crypto.settings import EncryptedColumn, EncryptionSettings, load_encryption_settings

__all__ = [
    "DecryptionError",
    "EncryptedColumn",
    "EncryptionSettings",
    "FieldCipher",
    "FieldCrypto",
    "field_crypto",
    "is_encrypted",
    "key_id_of",
    "load_encryption_settings",
    "open_value",
    "seal",
    "seal_rows",
    "using",
]
