"""Alerts reach the Slack emulator over HTTPS (trusting the sandbox CA through the local trust bundle):
one message per incident change, Slack's rate limit waited out, a refused message sent later."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest

from donor_sync.local_airflow import connection_json_from_url
from donor_sync.observability.alerting import Links, evaluate_and_notify, open_incidents
from donor_sync.observability.alerts import slack_sender
from donor_sync.observability.notifiers import SLACK_CONN_ID, failure_notifier
from sandbox.common.runner import Sandbox
from tests.observability.test_alert_engine import new_run, rules

WEBHOOK = "/services/T0SANDBOX/B0SANDBOX/secret"


@pytest.fixture(scope="module")
def slack_box(start_sandbox: Callable[..., Sandbox]) -> Sandbox:
    return start_sandbox("slack")  # stopped by start_sandbox at the end of the session


@pytest.fixture
def slack(slack_box: Sandbox, sandbox_tls_dir: Path, monkeypatch: pytest.MonkeyPatch, db_url: str) -> Any:
    """The Slack emulator as the ``slack_alerts`` connection, the test database as ``donor_sync_db``."""
    import certifi

    emulator = slack_box["slack"].emulator
    emulator.reset()
    bundle = sandbox_tls_dir / "bundle.pem"
    bundle.write_text(Path(certifi.where()).read_text() + (sandbox_tls_dir / "ca.pem").read_text())
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    url = f"{slack_box['slack'].base_url}{WEBHOOK}"
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{SLACK_CONN_ID.upper()}", json.dumps({"conn_type": "slackwebhook", "password": url})
    )
    monkeypatch.setenv("AIRFLOW_CONN_DONOR_SYNC_DB", connection_json_from_url(db_url))
    return emulator


def _texts(emulator: Any) -> list[str]:
    return [m["payload"]["text"] for m in emulator.snapshot()["messages"]]


def test_failure_notifier_posts_to_the_slack_emulator_once_per_incident(slack: Any) -> None:
    ti = SimpleNamespace(dag_id="donations_hourly", task_id="open_run", try_number=7, log_url="http://x/log")
    failure_notifier()({"ti": ti, "run_id": "manual__1", "exception": RuntimeError("boom")})
    failure_notifier()({"ti": ti, "run_id": "manual__2", "exception": RuntimeError("boom")})
    messages = slack.snapshot()["messages"]
    assert len(messages) == 1
    assert messages[0]["webhook"] == WEBHOOK
    assert "*donations_hourly.open_run* failed on try 7 (RuntimeError)" in messages[0]["payload"]["text"]


def test_the_sender_waits_out_slacks_rate_limit(slack: Any) -> None:
    send = slack_sender()
    started = time.monotonic()
    assert all(send(f"message {n}") for n in range(5))  # burst of 3, then 1 a second: two 429s waited out
    assert time.monotonic() - started >= 1.0
    assert _texts(slack) == [f"message {n}" for n in range(5)]


def test_a_check_posts_one_message_per_change_to_the_emulator(slack: Any, db: psycopg.Connection) -> None:
    links = Links(airflow_base_url="https://airflow.example.org")
    run = new_run(db)
    for destination in ("hubspot", "salesforce", "mailchimp", "braze"):
        for name, value in (("pushed", 100), ("failed", 60)):
            db.execute(
                "INSERT INTO sync.run_metrics (run_id, stage, scope, metric, value, unit)"
                " VALUES (%s, 'push', %s, %s, %s, 'records')",
                (run, destination, name, value),
            )
    db.commit()
    report = evaluate_and_notify(db, run_id=run, send=slack_sender(), links=links, rules=rules())
    assert report.delivery.messages == 4  # four at once: past the emulator's burst, 429s waited out
    texts = _texts(slack)
    assert sorted(t.split("Incident `")[1].split("`")[0] for t in texts) == [
        "failed_share:braze",
        "failed_share:hubspot",
        "failed_share:mailchimp",
        "failed_share:salesforce",
    ]
    evaluate_and_notify(db, run_id=run, send=slack_sender(), links=links, rules=rules())
    assert len(_texts(slack)) == 4


def test_a_message_slack_refuses_is_sent_by_the_next_check(slack: Any, db: psycopg.Connection) -> None:
    links = Links()
    db.execute(
        "INSERT INTO sync.circuit_breakers (destination, state, opened_at, next_probe_at)"
        " VALUES ('hubspot', 'open', now(), now() + interval '1 minute')"
    )
    db.commit()
    slack.settings["revoked_webhooks"] = [WEBHOOK]
    try:
        report = evaluate_and_notify(db, run_id=None, send=slack_sender(), links=links, rules=rules())
    finally:
        slack.settings["revoked_webhooks"] = []
    assert report.opened == ["circuit_open:hubspot"]
    assert report.delivery.error == "send_failed"
    assert _texts(slack) == []
    assert open_incidents(db)[0].notified_at is None
    report = evaluate_and_notify(db, run_id=None, send=slack_sender(), links=links, rules=rules())
    [text] = _texts(slack)
    assert text.startswith(":rotating_light: *Circuit breaker open*: hubspot: circuit breaker open since")
