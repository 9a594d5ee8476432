"""The Airflow plugin: loaded by Airflow's plugin manager from plugins/, mounted by Airflow's own
``init_plugins`` at /donor-sync-webhooks, secrets and database from Airflow connections."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import subprocess
import sys
import time
from types import ModuleType

import httpx
import psycopg
import pytest
from fastapi import FastAPI

from donor_sync.local_airflow import connection_json_from_url
from tests.conftest import REPO_ROOT
from tests.web.conftest import dumps, inbox_count, signed_stripe, stripe_event

PLUGIN_FILE = REPO_ROOT / "plugins" / "donor_sync_webhooks_plugin.py"


def _fresh_plugin_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("donor_sync_webhooks_plugin_under_test", PLUGIN_FILE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _post(app: FastAPI, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 443))
        async with httpx.AsyncClient(transport=transport, base_url="http://airflow") as http:
            return await http.post(path, content=body, headers=headers)

    return asyncio.run(go())


def test_airflow_loads_and_mounts_the_plugin_and_it_stores_with_connection_secrets(
    db_url: str, db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow import plugins_manager
    from airflow.api_fastapi.app import init_plugins
    from airflow.plugins_manager import AirflowPlugin

    plugins, import_errors = plugins_manager._get_plugins()
    assert not [path for path in import_errors if "donor_sync_webhooks_plugin" in str(path)], import_errors
    (plugin,) = [p for p in plugins if p.name == "donor_sync_webhooks"]
    assert isinstance(plugin, AirflowPlugin)
    (mounted,) = plugin.fastapi_apps
    assert (mounted["url_prefix"], mounted["name"]) == ("/donor-sync-webhooks", "donor-sync webhooks")

    # Connections as Airflow reads them (environment backend): two secrets while rolling.
    monkeypatch.setenv(
        "AIRFLOW_CONN_STRIPE_WEBHOOK",
        json.dumps({"conn_type": "generic", "password": "whsec_new\nwhsec_old"}),
    )
    monkeypatch.setenv("AIRFLOW_CONN_DONOR_SYNC_DB", connection_json_from_url(db_url))
    api_server = FastAPI()
    init_plugins(api_server)  # Airflow's own mounting of plugin apps
    for n, secret in enumerate(("whsec_old", "whsec_new")):
        body = dumps(stripe_event(f"evt_airflow_{n}"))
        response = _post(
            api_server, "/donor-sync-webhooks/stripe", body, signed_stripe(body, secrets=(secret,))
        )
        assert response.json() == {"status": "stored"}, response.text
    body = dumps(stripe_event("evt_airflow_bad"))
    refused = _post(
        api_server, "/donor-sync-webhooks/stripe", body, signed_stripe(body, secrets=("whsec_gone",))
    )
    assert refused.status_code == 401
    assert inbox_count(db) == 2


def test_missing_connections_answer_503_and_the_import_opens_no_connection(
    monkeypatch: pytest.MonkeyPatch, db: psycopg.Connection
) -> None:
    # A staging connection pointing nowhere: importing must not notice (nothing is opened at import).
    monkeypatch.setenv(
        "AIRFLOW_CONN_DONOR_SYNC_DB",
        json.dumps({"conn_type": "postgres", "host": "192.0.2.1", "port": 1, "login": "x", "schema": "y"}),
    )
    monkeypatch.delenv("AIRFLOW_CONN_STRIPE_WEBHOOK", raising=False)
    started = time.perf_counter()
    module = _fresh_plugin_module()
    assert time.perf_counter() - started < 2.0
    body = dumps(stripe_event("evt_no_conn"))
    response = _post(module.app, "/stripe", body, signed_stripe(body))
    assert (response.status_code, response.json()["error"]) == (503, "no_secret")
    assert inbox_count(db) == 0


def test_the_library_app_factory_does_not_import_airflow() -> None:
    code = (
        "import sys; import donor_sync.web.webhooks.app as a, donor_sync.sources.webhook_inbox;"
        " assert not [m for m in sys.modules if m.partition('.')[0] == 'airflow'], 'airflow imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT, timeout=60)
