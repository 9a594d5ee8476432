"""The shipped Salesforce and HubSpot connections authenticate against the sandbox.

The chain under test is the one `make up` runs: the sandbox starts as `donor-sync sandbox up`
starts it (making the JWT key pair and handing its public key to the Salesforce emulator, in a
local state folder of the test's own), airflow_settings.yaml is turned into the JSON file
`airflow connections import` reads, and each connection reaches its hook as an Airflow
connection (``AIRFLOW_CONN_*``). The only change made here: the emulators listen on free ports
rather than the fixed ones, so the URLs are pointed at those.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from donor_sync.hooks.hubspot import HubSpotHook
from donor_sync.hooks.salesforce_npsp import SalesforceNpspHook
from donor_sync.local_airflow import load_settings, settings_import_files
from donor_sync.sandbox_support import start_sandbox
from sandbox.common.runner import Sandbox
from sandbox.registry import EMULATORS
from tests.conftest import REPO_ROOT


@pytest.fixture(scope="module")
def sandbox_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Sandbox, Path]]:
    """The Salesforce and HubSpot emulators started by the CLI's code, with a fresh state folder."""
    state = tmp_path_factory.mktemp("local-state")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DONOR_SYNC_STATE_DIR", str(state))
        box = start_sandbox(["salesforce", "hubspot"], fixed_ports=False)
    try:
        yield box, state
    finally:
        box.stop()


def _retarget(value: Any, box: Sandbox) -> Any:
    """Point a fixed sandbox URL at the port the emulator listens on in this test."""
    if not isinstance(value, str):
        return value
    for name, running in box.running.items():
        value = value.replace(f"https://127.0.0.1:{EMULATORS[name][1]}", running.base_url)
    return value


@pytest.fixture
def shipped(sandbox_state: tuple[Sandbox, Path], tmp_path: Path) -> dict[str, dict[str, Any]]:
    """The connections of airflow_settings.yaml as `airflow connections import` would read them."""
    box, state = sandbox_state
    files = settings_import_files(
        load_settings(REPO_ROOT / "airflow_settings.yaml"), tmp_path, state_dir=state
    )
    connections: dict[str, dict[str, Any]] = json.loads(files["connections"].read_text())
    for conn in connections.values():
        conn["host"] = _retarget(conn["host"], box)
        if conn["extra"]:
            conn["extra"] = {k: _retarget(v, box) for k, v in json.loads(conn["extra"]).items()}
    return connections


def _use(monkeypatch: pytest.MonkeyPatch, conn_id: str, conn: dict[str, Any]) -> None:
    fields = {k: v for k, v in conn.items() if v is not None and k != "description"}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))


def test_the_salesforce_connection_signs_with_the_sandbox_key_and_connects(
    shipped: dict[str, dict[str, Any]],
    sandbox_state: tuple[Sandbox, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    box, state = sandbox_state
    conn = shipped["salesforce_npsp"]
    assert conn["conn_type"] == "salesforce_npsp"
    key = Path(conn["extra"]["private_key"])
    assert key == state / "sandbox" / "salesforce_jwt.key", "imported as an absolute path in the state folder"
    assert box.jwt_key is not None
    assert box.jwt_key.private_key == key
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert conn["extra"]["ca_bundle"] == str(box.tls.ca_cert)
    _use(monkeypatch, "salesforce_npsp", conn)

    ok, message = SalesforceNpspHook().test_connection()

    assert ok, message
    assert message.startswith("Connected to Salesforce API v62.0: ")
    emulator = box["salesforce"].emulator
    first = next(iter(emulator.request_log))
    assert (first["path"], first["status"]) == ("/services/oauth2/token", 200)
    assert [s.username for s in emulator.sessions.values()] == ["integration@donor-sync.test"]


def _other_key(path: Path) -> Path:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return path


@pytest.mark.parametrize(
    ("change", "error"),
    [
        pytest.param({"consumer_key": "someone-elses-app"}, "invalid_client_id", id="consumer-key"),
        pytest.param({"private_key": None}, "invalid_grant", id="private-key-not-the-uploaded-one"),
    ],
)
def test_a_wrong_salesforce_secret_fails_the_test_cleanly(
    shipped: dict[str, dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    change: dict[str, Any],
    error: str,
) -> None:
    conn = shipped["salesforce_npsp"]
    wrong = {k: (v if v is not None else str(_other_key(tmp_path / "other.key"))) for k, v in change.items()}
    _use(monkeypatch, "sf_wrong", {**conn, "extra": {**conn["extra"], **wrong}})

    ok, message = SalesforceNpspHook("sf_wrong").test_connection()

    assert not ok
    assert error in message
    assert "BEGIN" not in message, "no key material in the message"
    assert "someone-elses-app" not in message


def test_the_hubspot_connection_uses_its_own_type_and_connects(
    shipped: dict[str, dict[str, Any]],
    sandbox_state: tuple[Sandbox, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    box, _ = sandbox_state
    conn = shipped["hubspot"]
    assert conn["conn_type"] == "hubspot"
    _use(monkeypatch, "hubspot", conn)
    hook = HubSpotHook()

    ok, message = hook.test_connection()

    assert ok, message
    assert "daily API calls left" in message
    connector = hook.get_connector()
    assert connector.settings.verify == str(box.tls.ca_cert)
    assert (connector.settings.api_version, connector.settings.contact_id_property) == ("v3", "donor_sync_id")
    assert connector.settings.base_url == box["hubspot"].base_url


def test_a_wrong_hubspot_token_fails_the_test_cleanly(
    shipped: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    _use(monkeypatch, "hubspot_wrong", {**shipped["hubspot"], "password": "pat-na1-not-this-one"})

    ok, message = HubSpotHook("hubspot_wrong").test_connection()

    assert not ok
    assert "INVALID_AUTHENTICATION" in message, message
    assert "pat-na1-not-this-one" not in message


def test_only_local_state_paths_are_rewritten_on_import(
    sandbox_state: tuple[Sandbox, Path], tmp_path: Path
) -> None:
    _, state = sandbox_state
    settings = load_settings(REPO_ROOT / "airflow_settings.yaml")
    raw = {c.conn_id: c for c in settings.airflow.connections}
    imported = json.loads(
        settings_import_files(settings, tmp_path, state_dir=state)["connections"].read_text()
    )
    for conn_id, conn in raw.items():
        extra = json.loads(imported[conn_id]["extra"]) if imported[conn_id]["extra"] else None
        if conn.conn_extra is None:
            assert extra is None
            continue
        assert set(extra) == set(conn.conn_extra), conn_id
        for key, value in conn.conn_extra.items():
            if isinstance(value, str) and value.startswith(".local/"):
                assert extra[key] == str(state / value.removeprefix(".local/")), (conn_id, key)
            else:
                assert extra[key] == value, (conn_id, key)
    assert raw["salesforce_npsp"].conn_extra is not None
    assert raw["salesforce_npsp"].conn_extra["private_key"] == ".local/sandbox/salesforce_jwt.key", (
        "the settings model is not changed by the import"
    )
