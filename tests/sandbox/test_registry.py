"""The registry, the fixed ports the Airflow connections use, and `donor-sync sandbox up`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest
import requests

from donor_sync.local_airflow import load_settings
from sandbox.registry import EMULATORS, build_sandbox, emulator_class
from tests.conftest import REPO_ROOT

#: Which Airflow connection reaches which emulator.
CONNECTIONS = {
    "salesforce_npsp": "salesforce",
    "hubspot": "hubspot",
    "mailchimp": "mailchimp",
    "braze": "braze",
    "stripe": "stripe",
    "donorbox": "donorbox",
    "classy": "classy",
    "slack_alerts": "slack",
}


@pytest.mark.parametrize("name", sorted(EMULATORS))
def test_every_registered_emulator_imports_under_its_name(name: str) -> None:
    assert emulator_class(name).name == name


def test_ports_are_unique_and_match_the_airflow_connections() -> None:
    ports = [port for _, port in EMULATORS.values()]
    assert len(ports) == len(set(ports))
    settings = {c.conn_id: c for c in load_settings(REPO_ROOT / "airflow_settings.yaml").airflow.connections}
    for conn_id, emulator in CONNECTIONS.items():
        conn = settings[conn_id]
        extra = conn.conn_extra or {}
        url = (
            extra.get("login_url") or extra.get("instance_url") or conn.conn_host or conn.conn_password or ""
        )
        parsed = urlparse(url)
        assert parsed.scheme == "https", conn_id
        assert parsed.port == EMULATORS[emulator][1], conn_id


def test_unknown_emulator_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="no emulator named 'nope'"):
        emulator_class("nope")
    with pytest.raises(KeyError, match="no emulator named 'nope'"):
        build_sandbox(["salesforce", "nope"], tls_dir=tmp_path / "tls")
    assert not (tmp_path / "tls" / "salesforce_jwt.key").exists(), "no key made for a sandbox never built"


def test_the_salesforce_emulator_trusts_the_sandbox_jwt_key_made_on_first_build(tmp_path: Path) -> None:
    first = build_sandbox(["salesforce", "slack"], tls_dir=tmp_path / "tls", fixed_ports=False)
    pair = first.jwt_key
    assert pair is not None
    assert pair.private_key == tmp_path / "tls" / "salesforce_jwt.key"
    salesforce = first.emulators[0]
    assert salesforce.settings["jwt_public_key"] == pair.public_pem()
    salesforce.reset()
    assert salesforce.settings["jwt_public_key"] == pair.public_pem(), "a reset keeps the trusted key"
    assert first.describe()["salesforce_jwt_key"] == str(pair.private_key)

    again = build_sandbox(["salesforce"], tls_dir=tmp_path / "tls", fixed_ports=False)
    assert again.jwt_key == pair
    assert again.emulators[0].settings["jwt_public_key"] == pair.public_pem(), "the same key every start"


def test_a_jwt_key_path_and_explicit_emulator_settings_win(tmp_path: Path) -> None:
    box = build_sandbox(
        ["salesforce"],
        tls_dir=tmp_path / "tls",
        jwt_key=tmp_path / "state" / "sf.key",
        settings={"salesforce": {"jwt_public_key": "PINNED", "token_ttl_s": 5.0}},
    )
    assert box.jwt_key is not None
    assert box.jwt_key.private_key == tmp_path / "state" / "sf.key"
    assert box.jwt_key.private_key.exists()
    assert box.emulators[0].settings["jwt_public_key"] == "PINNED"
    assert box.emulators[0].settings["token_ttl_s"] == 5.0


def test_a_sandbox_without_salesforce_makes_no_key(tmp_path: Path) -> None:
    box = build_sandbox(["slack"], tls_dir=tmp_path / "tls")
    assert box.jwt_key is None
    assert "salesforce_jwt_key" not in box.describe()
    assert not list((tmp_path / "tls").glob("salesforce_jwt*"))


def test_sandbox_up_json_serves_until_terminated() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "donor_sync",
            "sandbox",
            "up",
            "--json",
            "--only",
            "slack",
            "--only",
            "receiver",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": f"{REPO_ROOT / 'plugins'}"},
    )
    try:
        assert process.stdout is not None
        description = json.loads(process.stdout.readline())
        assert set(description["emulators"]) == {"slack", "receiver"}
        slack = description["emulators"]["slack"]
        assert slack["base_url"] == f"https://127.0.0.1:{EMULATORS['slack'][1]}"
        with requests.Session() as session:
            session.trust_env = False
            session.verify = description["ca_cert"]
            assert session.get(f"{slack['admin_url']}/state", timeout=5).json()["name"] == "slack"
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
