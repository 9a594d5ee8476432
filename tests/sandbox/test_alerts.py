"""Task-failure alerts reach Slack over HTTPS, trusting the sandbox CA through the local trust bundle."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest

from donor_sync.observability.notifiers import SLACK_CONN_ID, failure_notifier
from sandbox.common.runner import Sandbox


def test_failure_notifier_posts_to_the_slack_emulator(
    start_sandbox: Callable[..., Sandbox], sandbox_tls_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    box = start_sandbox("slack")
    slack = box["slack"]
    slack.emulator.reset()
    import certifi

    bundle = sandbox_tls_dir / "bundle.pem"
    bundle.write_text(Path(certifi.where()).read_text() + (sandbox_tls_dir / "ca.pem").read_text())
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    url = f"{slack.base_url}/services/T0SANDBOX/B0SANDBOX/secret"
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{SLACK_CONN_ID.upper()}", json.dumps({"conn_type": "slackwebhook", "password": url})
    )
    ti = SimpleNamespace(dag_id="donations_hourly", task_id="open_run", try_number=7, log_url="http://x/log")
    failure_notifier()({"ti": ti, "run_id": "manual__1", "exception": RuntimeError("boom")})
    messages = slack.emulator.snapshot()["messages"]
    assert len(messages) == 1
    assert messages[0]["webhook"] == "/services/T0SANDBOX/B0SANDBOX/secret"
    assert "*donations_hourly.open_run* failed on try 7 (RuntimeError)" in messages[0]["payload"]["text"]
