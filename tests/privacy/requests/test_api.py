"""The privacy-request API with Airflow's real auth manager and tokens (as the dashboard tests)."""

from __future__ import annotations

import psycopg
from fastapi.testclient import TestClient

from donor_sync.web.dashboard.auth import COOKIE_NAME, AirflowAuthenticator
from donor_sync.web.privacy_api.app import PRIVACY_DAG_ID, create_app
from tests.privacy.erasure.support import EMAIL, KEYS
from tests.web.dashboard.conftest import Tokens


def _client(db_url: str) -> TestClient:
    return TestClient(
        create_app(conninfo=db_url, auth=AirflowAuthenticator(dag_id=PRIVACY_DAG_ID), keys=KEYS)
    )


def test_requests_are_created_and_read_with_an_airflow_token(
    db_url: str, db: psycopg.Connection, tokens: Tokens
) -> None:
    client = _client(db_url)
    headers = {"Authorization": f"Bearer {tokens.valid()}"}
    created = client.post("/requests", json={"kind": "erasure", "email": EMAIL}, headers=headers)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["status"] == "received"
    assert body["channel"] == "api"
    assert EMAIL not in created.text
    assert body["requested_by"] == "api:alex"
    shown = client.get(f"/requests/{body['request_id']}", headers=headers)
    assert shown.status_code == 200
    assert shown.json()["request_id"] == body["request_id"]
    assert db.execute("SELECT count(*) FROM sync.privacy_requests WHERE channel = 'api'").fetchone() == (1,)
    assert client.get("/requests/00000000-0000-0000-0000-000000000000", headers=headers).status_code == 404


def test_requests_without_a_valid_token_or_role_are_refused(
    db_url: str, db: psycopg.Connection, tokens: Tokens
) -> None:
    client = _client(db_url)
    body = {"kind": "export", "email": EMAIL}
    assert client.post("/requests", json=body).status_code == 401
    assert (
        client.post(
            "/requests", json=body, headers={"Authorization": f"Bearer {tokens.forged()}"}
        ).status_code
        == 401
    )
    assert (
        client.post(
            "/requests", json=body, headers={"Authorization": f"Bearer {tokens.expired()}"}
        ).status_code
        == 401
    )
    viewer = {"Authorization": f"Bearer {tokens.valid('vic', 'viewer')}"}
    assert client.post("/requests", json=body, headers=viewer).status_code == 403
    cookie_only = TestClient(client.app, cookies={COOKIE_NAME: tokens.valid()})
    refused = cookie_only.post("/requests", json=body)
    assert refused.status_code == 403
    assert refused.json()["error"] == "header_token_required"
    two = {"kind": "erasure", "email": EMAIL, "phone": "+16175550199"}
    assert (
        client.post("/requests", json=two, headers={"Authorization": f"Bearer {tokens.valid()}"}).status_code
        == 422
    )
    assert db.execute("SELECT count(*) FROM sync.privacy_requests").fetchone() == (0,)
