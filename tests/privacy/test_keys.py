"""Key rings: parsing, sources in order, keyed hashes across rotation, no key material in errors."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import stat
from pathlib import Path

import pytest

from donor_sync.errors import ConfigError
from donor_sync.privacy.keys import (
    ENV_VAR,
    ChainedKeys,
    EnvKeys,
    LocalKeyFile,
    StaticKeys,
    default_key_source,
    new_key,
)

K1 = base64.b64encode(b"1" * 32).decode()
K2 = base64.b64encode(b"2" * 32).decode()


def _doc(current: str = "k2") -> dict[str, object]:
    return {"tombstone": {"current": current, "keys": {"k1": K1, "k2": K2}}}


def test_hmac_uses_the_current_key_and_any_named_key() -> None:
    ring = StaticKeys(_doc()).ring("tombstone")
    assert ring is not None
    assert ring.hmac("a@b.org") == hmac.new(b"2" * 32, b"a@b.org", hashlib.sha256).digest()
    assert ring.hmac("a@b.org", key_id="k1") == hmac.new(b"1" * 32, b"a@b.org", hashlib.sha256).digest()
    assert set(ring.hmac_all("a@b.org")) == {"k1", "k2"}
    assert ring.hmac_all("a@b.org")["k1"] != ring.hmac_all("a@b.org")["k2"]


def test_repr_and_errors_never_show_key_material() -> None:
    ring = StaticKeys(_doc()).ring("tombstone")
    assert K1 not in repr(ring)
    assert K2 not in repr(ring)
    with pytest.raises(ConfigError, match="no key 'gone'") as err:
        ring.key("gone") if ring else None
    assert K1 not in str(err.value)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"tombstone": {"current": "k9", "keys": {"k1": K1}}}, "has no key 'k9'"),
        (
            {"tombstone": {"current": "k1", "keys": {"k1": "not base64!"}}},
            r"tombstone.keys.k1 is not valid base64",
        ),
        (
            {"tombstone": {"current": "k1", "keys": {"k1": base64.b64encode(b"short").decode()}}},
            "shorter than 16",
        ),
        ({"tombstone": {"keys": {"k1": K1}}}, "tombstone.current must name a key id"),
        ({"passwords": {"current": "k1", "keys": {"k1": K1}}}, "unknown purpose"),
        ("[1, 2]", "must be a JSON object"),
        ("{not json", "not a JSON document"),
    ],
)
def test_bad_documents_name_the_field(document: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        StaticKeys(document, where="test keys")  # type: ignore[arg-type]


def test_env_variable_holds_the_document_or_a_file(tmp_path: Path) -> None:
    assert EnvKeys({}).ring("tombstone") is None
    inline = EnvKeys({ENV_VAR: json.dumps(_doc("k1"))}).ring("tombstone")
    assert inline is not None
    assert inline.current == "k1"
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(_doc("k2")), encoding="utf-8")
    from_file = EnvKeys({ENV_VAR: f"@{path}"}).ring("tombstone")
    assert from_file is not None
    assert from_file.current == "k2"
    with pytest.raises(ConfigError, match="cannot read"):
        EnvKeys({ENV_VAR: f"@{tmp_path / 'missing.json'}"}).ring("tombstone")


def test_local_file_is_made_only_by_init_private_and_stable(tmp_path: Path) -> None:
    path = tmp_path / "privacy_keys.json"
    source = LocalKeyFile(path)
    assert source.ring("pseudonym") is None  # reading never makes the file
    assert not path.exists()
    with pytest.raises(ConfigError, match="keys init"):
        source.document()
    assert "keys init" in source.where
    assert source.init() == ["tombstone", "pseudonym", "encryption", "links"]
    first = source.ring("pseudonym")
    assert first is not None
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert LocalKeyFile(path).init() == []  # made once: the keys stay
    again = LocalKeyFile(path).ring("pseudonym")
    assert again is not None
    assert again.current_key == first.current_key
    # Every purpose has its own key.
    rings = [LocalKeyFile(path).ring(p) for p in ("tombstone", "links")]
    assert rings[0] is not None
    assert rings[1] is not None
    assert rings[0].current_key != rings[1].current_key
    assert [p.name for p in tmp_path.iterdir()] == ["privacy_keys.json"]  # no temporary file left


def test_local_file_init_adds_only_missing_rings(tmp_path: Path) -> None:
    path = tmp_path / "privacy_keys.json"
    LocalKeyFile(path).write(_doc("k1"))
    assert LocalKeyFile(path).ring("links") is None
    assert LocalKeyFile(path).init() == ["pseudonym", "encryption", "links"]
    kept = LocalKeyFile(path).ring("tombstone")
    assert kept is not None
    assert kept.current == "k1"
    assert kept.current_key == b"1" * 32


def test_local_file_write_rotates(tmp_path: Path) -> None:
    source = LocalKeyFile(tmp_path / "k.json")
    source.init()
    old = source.ring("encryption")
    assert old is not None
    document = json.loads((tmp_path / "k.json").read_text())
    document["encryption"]["keys"]["dev2"] = new_key()
    document["encryption"]["current"] = "dev2"
    source.write(document)
    rotated = source.ring("encryption")
    assert rotated is not None
    assert rotated.current == "dev2"
    assert rotated.key(old.current) == old.current_key


def test_chain_prefers_earlier_sources_and_require_explains(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    first = StaticKeys(_doc("k1"))
    local = LocalKeyFile(tmp_path / "k.json")
    local.init()
    chain = ChainedKeys(first, local)
    tomb = chain.ring("tombstone")
    assert tomb is not None
    assert tomb.current == "k1"
    links = chain.ring("links")  # not in the static source: the local file has it
    assert links is not None
    assert links.current == "dev1"
    empty = default_key_source(allow_local=False)
    with pytest.raises(ConfigError, match=ENV_VAR):
        empty.require("tombstone")


def test_a_missing_ring_names_every_place_looked_in_and_makes_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.delenv("DONOR_SYNC_PRIVACY_KEYS_LOCAL", raising=False)
    monkeypatch.setenv("DONOR_SYNC_STATE_DIR", str(tmp_path / "state"))
    with pytest.raises(ConfigError) as err:
        default_key_source(StaticKeys(_doc(), where="the test's keys")).require("links")
    message = str(err.value)
    assert message.startswith("no 'links' key ring; looked in: the test's keys; ")
    assert f"${ENV_VAR} (not set)" in message
    assert f"the development key file {tmp_path / 'state' / 'privacy_keys.json'} (none:" in message
    assert "donor-sync keys init" in message
    assert not (tmp_path / "state").exists()  # naming the file made nothing, not even its folder
