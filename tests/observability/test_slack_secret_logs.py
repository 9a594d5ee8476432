"""A Slack incoming webhook's URL is its secret: no retry or failure of a send may log it."""

from __future__ import annotations

import json
import logging
import socket

import pytest

from donor_sync.observability.alerts import slack_sender
from donor_sync.observability.notifiers import SLACK_CONN_ID, failure_notifier

SECRET = "WebhookSecretTokenXyz123"


def _refused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again: connections are refused


@pytest.fixture
def unreachable_slack(monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"https://127.0.0.1:{_refused_port()}/services/T0/B0/{SECRET}"
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{SLACK_CONN_ID.upper()}", json.dumps({"conn_type": "slackwebhook", "password": url})
    )


@pytest.mark.usefixtures("unreachable_slack")
def test_a_failing_send_is_retried_without_logging_the_webhook_url(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    assert slack_sender()("a test alert") is False
    notifier = failure_notifier()
    with pytest.raises(OSError, match="refused"):  # the notifiers' hook: the same client, the same logger
        notifier.hook.send(text="a test alert")
    out, err = capfd.readouterr()
    logged = "\n".join(r.getMessage() for r in caplog.records) + out + err
    assert "could not send a Slack alert" in logged, "the failure itself is logged"
    assert SECRET not in logged
