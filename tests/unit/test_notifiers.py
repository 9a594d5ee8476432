"""Slack notifiers without a staging database: a failure is still posted (plainly), the deadline
alert is the project's async Slack webhook notifier, and importing them is cheap."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import SimpleNamespace
from typing import ClassVar

import pytest

from donor_sync.local_airflow import connection_json_from_url
from donor_sync.observability.notifiers import SLACK_CONN_ID, deadline_alert, failure_notifier
from tests.conftest import REPO_ROOT


class _Webhook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, object]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Webhook.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def slack(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, object]]]:
    server = HTTPServer(("127.0.0.1", 0), _Webhook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}/services/T0/B0/x"
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{SLACK_CONN_ID.upper()}", json.dumps({"conn_type": "slackwebhook", "password": url})
    )
    # No staging database: the notifier cannot record the incident and posts the failure plainly.
    monkeypatch.setenv(
        "AIRFLOW_CONN_DONOR_SYNC_DB", connection_json_from_url("postgresql://etl@127.0.0.1:1/x")
    )
    _Webhook.received = []
    yield _Webhook.received
    server.shutdown()


def test_failure_posts_ids_and_exception_class_but_not_its_message(slack: list[dict[str, object]]) -> None:
    ti = SimpleNamespace(
        dag_id="donations_hourly", task_id="push_hubspot", try_number=7, log_url="http://localhost:8080/log"
    )
    context = {"ti": ti, "run_id": "scheduled__2026", "exception": ValueError("jane@example.org is bad")}
    failure_notifier()(context)
    assert len(slack) == 1
    text = str(slack[0]["text"])
    assert "*donations_hourly.push_hubspot* failed on try 7 (ValueError)" in text
    assert "scheduled__2026" in text
    assert "http://localhost:8080/log" in text
    assert "jane@example.org" not in text, "exception messages may hold PII and must not reach Slack"
    assert "docs/runbooks/sync-failure.md" in text


def test_deadline_alert_is_an_async_slack_callback_with_templated_text() -> None:
    alert = deadline_alert(timedelta(minutes=50), "gifts are late")
    assert alert.interval == timedelta(minutes=50)
    assert alert.callback.path == "donor_sync.observability.notifiers.DeadlineSlackWebhookNotifier"
    assert alert.callback.kwargs["slack_webhook_conn_id"] == SLACK_CONN_ID
    text = alert.callback.kwargs["text"]
    assert "{{ dag_run.dag_id }}" in text
    assert "{{ dag_run.dag_run_id }}" in text, "the simplified deadline context names the run dag_run_id"
    assert "{{ deadline.deadline_time }}" in text
    assert text.endswith("gifts are late")


def test_importing_the_notifiers_loads_neither_the_database_nor_the_alerting_library() -> None:
    """DAG files import them: parsing stays cheap."""
    code = (
        "import sys\n"
        "import donor_sync.observability.notifiers\n"
        "heavy = ('donor_sync.observability.alerting', 'psycopg', 'donor_sync.db')\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "plugins")},
        check=True,
    )
    assert result.stdout.strip() == "[]"
