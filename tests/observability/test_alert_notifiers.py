"""Airflow's notifiers as incidents, through a real webhook and a real staging database: a task that
keeps failing posts once and its success posts the resolution; a missed deadline posts once."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import SimpleNamespace
from typing import Any, ClassVar

import psycopg
import pytest

from donor_sync.local_airflow import connection_json_from_url
from donor_sync.observability.alerting import Links, open_incidents, resolve_deadline_incident
from donor_sync.observability.notifiers import (
    DEADLINE_TEXT,
    SLACK_CONN_ID,
    DeadlineSlackWebhookNotifier,
    failure_notifier,
    success_notifier,
)
from tests.observability.test_alert_engine import new_run


class _Webhook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Webhook.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def slack(monkeypatch: pytest.MonkeyPatch, db_url: str) -> Iterator[list[dict[str, Any]]]:
    """A webhook receiving the alerts, and the staging database as the ``donor_sync_db`` connection."""
    server = HTTPServer(("127.0.0.1", 0), _Webhook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}/services/T0/B0/x"
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{SLACK_CONN_ID.upper()}", json.dumps({"conn_type": "slackwebhook", "password": url})
    )
    monkeypatch.setenv("AIRFLOW_CONN_DONOR_SYNC_DB", connection_json_from_url(db_url))
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.org")
    _Webhook.received = []
    yield _Webhook.received
    server.shutdown()


def _texts(slack: list[dict[str, Any]]) -> list[str]:
    return [str(m["text"]) for m in slack]


def _context(run_id: str, *, try_number: int = 7, failed: bool = True) -> dict[str, Any]:
    ti = SimpleNamespace(
        dag_id="donations_hourly",
        task_id="push_hubspot",
        run_id=run_id,
        try_number=try_number,
        log_url=f"https://airflow.example.org/dags/donations_hourly/runs/{run_id}/tasks/push_hubspot",
    )
    context: dict[str, Any] = {"ti": ti, "run_id": run_id}
    if failed:
        context["exception"] = ValueError("jane@example.org is not a valid contact")
    return context


def test_a_task_failing_every_run_posts_once_and_its_success_posts_the_resolution(
    slack: list[dict[str, Any]], db: psycopg.Connection
) -> None:
    failure_notifier()(_context("scheduled__2026-03-01T10:00:00+00:00"))
    failure_notifier()(_context("scheduled__2026-03-01T11:00:00+00:00"))
    texts = _texts(slack)
    assert len(texts) == 1
    assert texts[0].startswith(
        ":red_circle: *Task failed*: *donations_hourly.push_hubspot* failed on try 7 (ValueError)"
    )
    assert (
        "https://airflow.example.org/dags/donations_hourly/runs/scheduled__2026-03-01T10%3A00%3A00%2B00%3A00"
        in texts[0]
    )
    assert "Runbook: `docs/runbooks/sync-failure.md`" in texts[0]
    assert "Incident `task_failed:donations_hourly.push_hubspot`" in texts[0]
    assert "jane@example.org" not in texts[0], "exception messages may hold PII and must not reach Slack"
    [incident] = open_incidents(db)
    assert incident.times_seen == 2
    assert incident.airflow_run_id == "scheduled__2026-03-01T11:00:00+00:00"

    success_notifier()(_context("scheduled__2026-03-01T12:00:00+00:00", failed=False))
    success_notifier()(_context("scheduled__2026-03-01T13:00:00+00:00", failed=False))
    texts = _texts(slack)
    assert len(texts) == 2
    assert texts[1].startswith(
        ":white_check_mark: *Resolved: Task failed*: *donations_hourly.push_hubspot* succeeded"
    )
    assert "runs/scheduled__2026-03-01T12%3A00%3A00%2B00%3A00" in texts[1]
    assert open_incidents(db) == []

    failure_notifier()(_context("scheduled__2026-03-01T14:00:00+00:00"))
    assert len(_texts(slack)) == 3, "a new failure after the resolution is a new incident"


def test_a_success_with_nothing_open_posts_nothing(
    slack: list[dict[str, Any]], db: psycopg.Connection
) -> None:
    success_notifier()(_context("manual__1", failed=False))
    assert slack == []
    assert db.execute("SELECT count(*) FROM sync.alert_incidents").fetchone() == (0,)


def test_without_the_staging_database_a_failure_is_still_posted(
    slack: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_DONOR_SYNC_DB", connection_json_from_url("postgresql://etl@127.0.0.1:1/stage")
    )
    failure_notifier()(_context("manual__2"))
    failure_notifier()(_context("manual__3"))
    texts = _texts(slack)
    assert len(texts) == 2, "unrecorded, each failure is posted: better twice than never"
    assert "*donations_hourly.push_hubspot* failed on try 7 (ValueError)" in texts[0]
    assert "not recorded as an incident" in texts[0]
    assert "jane@example.org" not in texts[0]
    success_notifier()(_context("manual__4", failed=False))  # does not raise, posts nothing
    assert len(_texts(slack)) == 2


def _deadline_context(run_id: str) -> dict[str, Any]:
    """The simplified context the triggerer gives deadline callbacks (models/deadline.py)."""
    return {
        "dag_run": {"dag_id": "donations_hourly", "dag_run_id": run_id, "state": "running"},
        "deadline": {
            "id": "0195f0c4-0000-7000-8000-000000000001",
            "deadline_time": "2026-03-01 10:50:00+00:00",
        },
    }


async def _fire(context: dict[str, Any]) -> None:
    """Run the callback as the triggerer's CallbackTrigger does: build it with the context, await it."""
    notifier = DeadlineSlackWebhookNotifier(
        slack_webhook_conn_id=SLACK_CONN_ID,
        text=DEADLINE_TEXT + "gifts are not in the CRMs yet",
        context=context,
    )
    await notifier


def test_a_missed_deadline_is_recorded_and_posted_once(
    slack: list[dict[str, Any]], db: psycopg.Connection
) -> None:
    asyncio.run(_fire(_deadline_context("scheduled__2026-03-01T10:00:00+00:00")))
    asyncio.run(_fire(_deadline_context("scheduled__2026-03-01T11:00:00+00:00")))
    texts = _texts(slack)
    assert len(texts) == 1
    assert texts[0].startswith(":alarm_clock: *Run missed its deadline*: *donations_hourly* run")
    assert (
        "`scheduled__2026-03-01T10:00:00+00:00` has not succeeded by its deadline (2026-03-01 10:50:00+00:00)"
        in texts[0]
    )
    assert texts[0].rstrip().split("\n")[0].endswith("gifts are not in the CRMs yet")
    assert "Incident `deadline_missed:donations_hourly`" in texts[0]
    [incident] = open_incidents(db)
    assert incident.times_seen == 2

    done = new_run(db)
    links = Links(airflow_base_url="https://airflow.example.org")
    sent: list[str] = []
    assert resolve_deadline_incident(
        db, "donations_hourly", done, send=lambda t: bool(sent.append(t)) or True, links=links
    )
    assert len(sent) == 1
    assert sent[0].startswith(":white_check_mark: *Resolved: Run missed its deadline*")
    asyncio.run(_fire(_deadline_context("scheduled__2026-03-02T10:00:00+00:00")))
    assert len(_texts(slack)) == 2, "the next miss after a success is a new incident"


def test_without_the_staging_database_a_missed_deadline_is_still_posted(
    slack: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_DONOR_SYNC_DB", connection_json_from_url("postgresql://etl@127.0.0.1:1/stage")
    )
    asyncio.run(_fire(_deadline_context("manual__late")))
    [text] = _texts(slack)
    assert "*donations_hourly* run `manual__late` has not succeeded by its deadline" in text
    assert "not recorded as an incident" in text


def test_the_deadline_notifier_also_runs_synchronously(
    slack: list[dict[str, Any]], db: psycopg.Connection
) -> None:
    """As a ``SyncCallback`` (run by the executor) it records the same incident and posts once."""
    for run_id in ("manual__a", "manual__b"):
        notifier = DeadlineSlackWebhookNotifier(
            slack_webhook_conn_id=SLACK_CONN_ID, text=DEADLINE_TEXT + "late"
        )
        notifier(_deadline_context(run_id))
    [text] = _texts(slack)
    assert "*donations_hourly* run `manual__a` has not succeeded by its deadline" in text
    assert open_incidents(db)[0].times_seen == 2
