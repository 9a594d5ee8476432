"""The staging database connection: Airflow connection fields to a libpq conninfo."""

from __future__ import annotations

import json

import pytest
from psycopg.conninfo import conninfo_to_dict

from donor_sync.hooks.staging_db import StagingDbHook, conninfo_from_connection


def test_fields_and_libpq_extras_are_kept_and_airflow_extras_dropped() -> None:
    extra = {"sslmode": "verify-full", "cursor": "dictcursor", "iam": True}
    info = conninfo_from_connection(
        host="db.internal", port=6432, login="etl", password="p w'd", schema="stage", extra=extra
    )
    assert conninfo_to_dict(info) == {
        "host": "db.internal",
        "port": "6432",
        "user": "etl",
        "password": "p w'd",
        "dbname": "stage",
        "sslmode": "verify-full",
    }
    assert extra == {"sslmode": "verify-full", "cursor": "dictcursor", "iam": True}, "input must not change"


def test_defaults_fill_missing_fields() -> None:
    info = conninfo_from_connection(host=None, port=None, login=None, password=None, schema=None, extra=None)
    assert conninfo_to_dict(info) == {
        "host": "127.0.0.1",
        "port": "5432",
        "user": "postgres",
        "dbname": "postgres",
    }


def test_hook_reads_the_donor_sync_db_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_DONOR_SYNC_DB",
        json.dumps({"conn_type": "postgres", "host": "h", "port": 1234, "login": "u", "schema": "d"}),
    )
    assert conninfo_to_dict(StagingDbHook().conninfo()) == {
        "host": "h",
        "port": "1234",
        "user": "u",
        "dbname": "d",
    }
