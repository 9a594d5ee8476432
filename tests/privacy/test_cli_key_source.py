"""The ``donor-sync`` CLI finds the privacy keys where the tasks do, and never invents its own.

With only ``$AIRFLOW_CONN_PRIVACY_KEYS`` (no ``$DONOR_SYNC_PRIVACY_KEYS``, no development key
file) the CLI hashes an erasure's subject as the ``privacy_requests`` task does and opens a dead
letter a task sealed; with nothing configured it fails, naming where it looked, and writes no file.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from donor_sync.cli import main
from donor_sync.hooks.privacy_keys import airflow_configured, install, install_for_cli
from donor_sync.privacy.crypto import fields, key_id_of
from donor_sync.privacy.keys import ENV_VAR, LOCAL_ENV_VAR, PURPOSES
from donor_sync.privacy.requests.identifiers import hash_entries, normalize

EMAIL = "Erase.Me@Example.org"
TOMBSTONE_KEY = b"t" * 32
KEYS = {
    purpose: {"current": f"{purpose[:4]}1", "keys": {f"{purpose[:4]}1": base64.b64encode(key).decode()}}
    for purpose, key in zip(PURPOSES, (TOMBSTONE_KEY, b"p" * 32, b"e" * 32, b"l" * 32), strict=True)
}
#: Airflow's JSON form of a connection, as a Kubernetes secret would give it to every pod.
CONNECTION = json.dumps({"conn_type": "generic", "extra": KEYS})


def _forget_lookups() -> None:
    install().forget()
    install_for_cli()  # installed once, its cached lookup dropped
    fields.configure(None)


@pytest.fixture
def state(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """No ``$DONOR_SYNC_PRIVACY_KEYS`` and an empty local state folder (no development key file)."""
    folder = tmp_path / "state"
    monkeypatch.setenv("DONOR_SYNC_DB_URL", db_url)
    monkeypatch.setenv("DONOR_SYNC_STATE_DIR", str(folder))
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.delenv(LOCAL_ENV_VAR, raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_PRIVACY_KEYS", raising=False)
    _forget_lookups()
    yield folder
    _forget_lookups()


def _stored_hashes(db: psycopg.Connection, request_id: str) -> list[dict[str, str]]:
    row = db.execute(
        "SELECT subject_hashes FROM sync.privacy_requests WHERE request_id = %s", (request_id,)
    ).fetchone()
    assert row is not None
    hashes: list[dict[str, str]] = row[0]
    return hashes


def _donor_sync(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``donor-sync ARGS`` in a process of its own, as from a shell on a worker pod."""
    return subprocess.run(
        [sys.executable, "-m", "donor_sync", *args],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_uses_the_privacy_keys_connection_as_the_tasks_do(
    db: psycopg.Connection, state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from donor_sync.operators.privacy_tasks import privacy_keys
    from tests.delivery.dlq.test_store import dead_letter

    monkeypatch.setenv("AIRFLOW_CONN_PRIVACY_KEYS", CONNECTION)

    recorded = _donor_sync("privacy", "erase", "--email", EMAIL)
    assert recorded.returncode == 0, recorded.stderr
    assert recorded.stdout.startswith("erasure request ")  # nothing of Airflow's own on stdout
    request_id = recorded.stdout.split()[2]
    identifier = normalize("email", EMAIL)
    task_ring = privacy_keys().require("tombstone")  # the privacy_requests task's key source
    assert _stored_hashes(db, request_id) == hash_entries(task_ring, [identifier])
    expected = hmac.new(TOMBSTONE_KEY, identifier.value.encode(), hashlib.sha256).hexdigest()
    assert _stored_hashes(db, request_id) == [{"kind": "email", "key_id": "tomb1", "hash": expected}]

    # A dead letter sealed on the task side (the connection's encryption key) opens in the CLI.
    letter = dead_letter(db, "cli-keys-1", payload={"Email": "jane@example.org"})
    sealed = db.execute(
        "SELECT payload FROM sync.dead_letters WHERE dead_letter_id = %s", (letter,)
    ).fetchone()
    assert sealed is not None
    assert key_id_of(sealed[0]) == "encr1"
    shown = _donor_sync("dlq", "show", str(letter))
    assert shown.returncode == 0, shown.stderr
    assert "jane@example.org" in shown.stdout

    assert not state.joinpath("privacy_keys.json").exists()
    printed = recorded.stdout + recorded.stderr + shown.stdout + shown.stderr
    for ring in KEYS.values():
        for key in ring["keys"].values():
            assert key not in printed


def test_with_no_keys_configured_the_cli_fails_clearly_and_writes_no_file(
    db: psycopg.Connection, state: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A shell with no Airflow configuration at all: Airflow is not even asked.
    airflow_home = tmp_path / "airflow-home"
    airflow_home.mkdir()
    monkeypatch.setenv("AIRFLOW_HOME", str(airflow_home))
    monkeypatch.delenv("AIRFLOW_CONFIG", raising=False)
    monkeypatch.delenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", raising=False)
    assert not airflow_configured()

    result = CliRunner().invoke(main, ["privacy", "erase", "--email", EMAIL])
    assert result.exit_code == 1
    assert "error: no 'tombstone' key ring; looked in: " in result.output
    assert "the privacy_keys Airflow connection (not looked up: " in result.output
    assert f"${ENV_VAR} (not set)" in result.output
    assert f"the development key file {state / 'privacy_keys.json'} (none: " in result.output
    assert "donor-sync keys init" in result.output
    assert EMAIL not in result.output
    assert db.execute("SELECT count(*) FROM sync.privacy_requests").fetchone() == (0,)
    assert not state.exists() or list(state.iterdir()) == []
    assert list(airflow_home.iterdir()) == []  # no SQLite database or logs of Airflow's own


def test_with_airflow_configured_but_no_connection_the_error_names_the_connection(
    db: psycopg.Connection, state: Path
) -> None:
    # The suite's Airflow (a metadata database without a privacy_keys connection) is asked, in vain.
    assert airflow_configured()
    made = CliRunner().invoke(main, ["privacy", "erase", "--email", EMAIL])
    assert made.exit_code == 1
    assert (
        "the privacy_keys Airflow connection (secrets backend, $AIRFLOW_CONN_PRIVACY_KEYS or metadata "
        "database)" in made.output
    )
    assert not state.joinpath("privacy_keys.json").exists()


@pytest.mark.parametrize(
    ("environ", "configured"),
    [
        ({}, False),
        ({"AIRFLOW_CONN_PRIVACY_KEYS": CONNECTION}, True),
        ({"AIRFLOW_CONN_OTHER": "{}"}, False),
        ({"AIRFLOW__SECRETS__BACKEND": "airflow.providers.amazon.aws.secrets.SecretsManagerBackend"}, True),
        ({"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_SECRET": "airflow-metadata-db"}, True),
    ],
)
def test_airflow_is_asked_only_when_configured(
    environ: dict[str, str], configured: bool, tmp_path: Path
) -> None:
    home = {"AIRFLOW_HOME": str(tmp_path)}
    assert airflow_configured(environ={**home, **environ}) is configured
    (tmp_path / "airflow.cfg").write_text("[core]\n", encoding="utf-8")
    assert airflow_configured(environ=home)
