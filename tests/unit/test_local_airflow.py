"""Local Airflow settings: airflow_settings.yaml validation, import files, environment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from donor_sync.db.url import DatabaseTarget
from donor_sync.errors import ConfigError
from donor_sync.local_airflow import (
    airflow_environment,
    connection_json_from_url,
    load_settings,
    settings_import_files,
)
from tests.conftest import REPO_ROOT


def test_repo_settings_file_is_valid_and_declares_what_the_dags_need() -> None:
    settings = load_settings(REPO_ROOT / "airflow_settings.yaml")
    conn_ids = {c.conn_id for c in settings.airflow.connections}
    assert {"donor_sync_db", "slack_alerts", "salesforce_npsp", "hubspot", "mailchimp", "braze"} <= conn_ids
    assert {"stripe", "donorbox", "classy"} <= conn_ids
    assert {p.pool_name for p in settings.airflow.pools} >= {"salesforce_api", "hubspot_api", "mailchimp_api"}


@pytest.mark.parametrize(
    ("content", "field"),
    [
        pytest.param(
            "airflow:\n  pools:\n    - pool_name: x\n      pool_slot: 0\n",
            "airflow.pools.0.pool_slot",
            id="zero-slots",
        ),
        pytest.param(
            "airflow:\n  connections:\n    - conn_id: x\n",
            "airflow.connections.0.conn_type",
            id="missing-type",
        ),
        pytest.param(
            "airflow:\n  connections:\n    - conn_id: x\n      conn_type: http\n      conn_hots: h\n",
            "airflow.connections.0.conn_hots",
            id="typo-field",
        ),
        pytest.param("airflow: [\n", "cannot read", id="bad-yaml"),
    ],
)
def test_invalid_settings_name_file_and_field(tmp_path: Path, content: str, field: str) -> None:
    path = tmp_path / "airflow_settings.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError) as exc:
        load_settings(path)
    assert str(path) in str(exc.value)
    assert field in str(exc.value)


def test_import_files_use_airflow_export_formats(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "airflow:\n"
        "  connections:\n"
        "    - {conn_id: api, conn_type: http, conn_host: 'https://h', conn_extra: {a: 1}}\n"
        "  pools:\n    - {pool_name: p, pool_slot: 3, pool_description: d}\n"
        "  variables:\n    - {variable_name: v, variable_value: '5'}\n"
    )
    files = settings_import_files(load_settings(path), tmp_path)
    connections = json.loads(files["connections"].read_text())
    assert connections["api"]["conn_type"] == "http"
    assert json.loads(connections["api"]["extra"]) == {"a": 1}
    assert json.loads(files["pools"].read_text()) == {
        "p": {"slots": 3, "description": "d", "include_deferred": False}
    }
    assert json.loads(files["variables"].read_text()) == {"v": "5"}
    assert oct(files["connections"].stat().st_mode & 0o777) == "0o600"


def test_connection_json_keeps_credentials_and_libpq_extras() -> None:
    conn = json.loads(
        connection_json_from_url("postgresql://etl:s3cret@db.example:6543/stage?sslmode=require")
    )
    assert conn == {
        "conn_type": "postgres",
        "host": "db.example",
        "port": 6543,
        "login": "etl",
        "schema": "stage",
        "password": "s3cret",
        "extra": {"sslmode": "require"},
    }


def test_environment_points_airflow_at_the_repo() -> None:
    target = DatabaseTarget(url="postgresql://postgres@127.0.0.1:5999/donor_sync", embedded=True)
    env = airflow_environment(target, base={"PATH": "/usr/bin"})
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(REPO_ROOT / "dags")
    assert env["AIRFLOW__CORE__PLUGINS_FOLDER"] == str(REPO_ROOT / "plugins")
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == (
        "postgresql+psycopg2://postgres@127.0.0.1:5999/donor_sync_airflow"
    )
    assert str(REPO_ROOT) in env["PYTHONPATH"].split(":")
    assert json.loads(env["AIRFLOW_CONN_DONOR_SYNC_DB"])["schema"] == "donor_sync"


def test_environment_keeps_a_configured_metadata_database() -> None:
    target = DatabaseTarget(url="postgresql://postgres@127.0.0.1:5999/donor_sync", embedded=True)
    env = airflow_environment(target, base={"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "sqlite:////tmp/x.db"})
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == "sqlite:////tmp/x.db"
