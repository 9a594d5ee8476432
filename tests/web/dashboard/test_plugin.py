"""The Airflow plugin: loaded by Airflow's plugin manager, mounted by Airflow's ``init_plugins`` at
/sync-health behind Airflow's login, linked from the UI's nav, and cheap to import."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from types import ModuleType

import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from donor_sync.local_airflow import connection_json_from_url
from tests.conftest import REPO_ROOT
from tests.web.dashboard.conftest import MONITOR_TOKEN, Seeded, Tokens

pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")

PLUGIN_FILE = REPO_ROOT / "plugins" / "donor_sync_dashboard_plugin.py"


def _fresh_plugin_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("donor_sync_dashboard_plugin_under_test", PLUGIN_FILE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_airflow_loads_mounts_and_links_the_dashboard_behind_its_login(
    seeded: Seeded, tokens: Tokens, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow import plugins_manager
    from airflow.api_fastapi.app import init_plugins

    plugins, import_errors = plugins_manager._get_plugins()
    assert not [p for p in import_errors if "donor_sync_dashboard_plugin" in str(p)], import_errors
    (plugin,) = [p for p in plugins if p.name == "donor_sync_dashboard"]
    (mounted,) = plugin.fastapi_apps
    assert mounted["url_prefix"] == "/sync-health"
    external_views, _ = plugins_manager._get_ui_plugins()
    (view,) = [v for v in external_views if v["url_route"] == "sync-health"]
    assert (view["name"], view["href"], view["destination"]) == ("Sync health", "sync-health/", "nav")

    monkeypatch.setenv("AIRFLOW_CONN_DONOR_SYNC_DB", connection_json_from_url(seeded.url))
    api_server = FastAPI()
    init_plugins(api_server)  # Airflow's own mounting of plugin apps
    client = TestClient(api_server, base_url="http://airflow.test", follow_redirects=False)
    assert client.get("/sync-health/api/summary").status_code == 401
    assert client.get("/sync-health/api/health").status_code == 401
    forged = TestClient(api_server, base_url="http://airflow.test", cookies={"_token": tokens.forged()})
    assert forged.get("/sync-health/").status_code == 401
    browser = client.get("/sync-health/reviews", headers={"Accept": "text/html"})
    assert browser.headers["location"] == "/auth/login?next=%2Fsync-health%2Freviews"

    token = tokens.valid()
    summary = client.get("/sync-health/api/summary", headers={"Authorization": f"Bearer {token}"})
    assert summary.status_code == 200, summary.text
    assert summary.json()["reviews"]["pending"] == 1
    signed_in = TestClient(api_server, base_url="http://airflow.test", cookies={"_token": token})
    page = signed_in.get("/sync-health/")
    assert page.status_code == 200
    # links carry the mount prefix, so they work inside the API server
    assert f'href="/sync-health/reviews/{seeded.review_id}"' in page.text
    assert 'href="/sync-health/dead-letters"' in page.text


def test_importing_the_plugin_opens_nothing_and_a_dead_database_answers_503(
    tokens: Tokens, monkeypatch: pytest.MonkeyPatch, db: psycopg.Connection
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_DONOR_SYNC_DB",
        json.dumps({"conn_type": "postgres", "host": "127.0.0.1", "port": 1, "login": "x", "schema": "y"}),
    )
    started = time.perf_counter()
    module = _fresh_plugin_module()
    assert time.perf_counter() - started < 2.0
    client = TestClient(module.app, base_url="http://airflow.test")
    assert client.get("/api/summary").status_code == 401  # no token: refused before any lookup
    response = client.get("/api/summary", headers={"Authorization": f"Bearer {tokens.valid()}"})
    assert (response.status_code, response.json()["error"]) == (503, "database_unavailable")


def test_the_library_app_does_not_import_airflow() -> None:
    code = (
        "import sys; import donor_sync.web.dashboard.app as a;"
        " assert not [m for m in sys.modules if m.partition('.')[0] == 'airflow'], 'airflow imported';"
        " assert 'pandas' not in sys.modules, 'pandas imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT, timeout=60)


def test_the_monitor_token_is_read_from_its_airflow_connection_and_opens_the_health_endpoint_only(
    seeded: Seeded, tokens: Tokens, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_DONOR_SYNC_DB", connection_json_from_url(seeded.url))
    monkeypatch.delenv("AIRFLOW_CONN_SYNC_HEALTH_MONITOR", raising=False)
    bearer = {"Authorization": f"Bearer {MONITOR_TOKEN}"}
    # no connection: the monitor token is nothing
    unset = TestClient(_fresh_plugin_module().app, base_url="http://airflow.test")
    assert unset.get("/api/health", headers=bearer).status_code == 401

    monkeypatch.setenv(
        "AIRFLOW_CONN_SYNC_HEALTH_MONITOR", json.dumps({"conn_type": "generic", "password": MONITOR_TOKEN})
    )
    client = TestClient(_fresh_plugin_module().app, base_url="http://airflow.test")
    health = client.get("/api/health", headers=bearer)
    assert health.status_code == 200, health.text
    assert health.json()["checks"]["database"]["ok"] is True
    assert client.get("/api/summary", headers=bearer).status_code == 401
    assert client.get("/", headers=bearer).status_code == 401
    wrong = {"Authorization": f"Bearer {MONITOR_TOKEN[::-1]}"}
    assert client.get("/api/health", headers=wrong).status_code == 401
    assert client.get("/api/health").status_code == 401
    airflow = {"Authorization": f"Bearer {tokens.valid()}"}
    assert client.get("/api/health", headers=airflow).status_code == 200
