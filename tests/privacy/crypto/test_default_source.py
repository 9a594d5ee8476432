"""The process-wide field encryption follows the key source as it is now, not as it was first used."""

from __future__ import annotations

import base64
import json

import pytest

from donor_sync.privacy.crypto import fields
from donor_sync.privacy.keys import ENV_VAR


def test_a_temporary_key_environment_does_not_stick(monkeypatch: pytest.MonkeyPatch) -> None:
    fields.configure(None)  # the default, built on next use
    ring = {"current": "tmp1", "keys": {"tmp1": base64.b64encode(b"q" * 32).decode()}}
    with monkeypatch.context() as temporary:
        temporary.setenv(ENV_VAR, json.dumps({"encryption": ring}))
        temporary.setenv("DONOR_SYNC_PRIVACY_KEYS_LOCAL", "0")
        sealed = fields.seal("sync.dead_letters.payload", {"a": 1}, 7)
        assert sealed["kid"] == "tmp1"
        assert fields.open_value("sync.dead_letters.payload", sealed, 7) == {"a": 1}
    # The environment is gone: the local development ring seals now, without a stale cache.
    again = fields.seal("sync.dead_letters.payload", {"a": 2}, 8)
    assert again["kid"] != "tmp1"
    assert fields.open_value("sync.dead_letters.payload", again, 8) == {"a": 2}
    fields.configure(None)
