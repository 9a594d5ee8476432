"""A missed deadline of donations_hourly reaches Slack, through the real scheduler and triggerer.

Deadline alerts are evaluated only by the scheduler loop and their ``AsyncCallback`` (the Slack
webhook notifier) runs in the triggerer, so ``dag.test()`` cannot prove them. Here the API server,
scheduler (LocalExecutor), dag-processor and triggerer run as subprocesses over a metadata database
of their own, with every emulator reachable over HTTPS.

The run is kept running by a slow vendor: Stripe answers every call 20 s late (inside the client's
30 s timeout, so nothing fails), which holds ``extract_stripe`` and everything after it. The
deadline is 50 minutes after the run is queued; waiting for it is not an option, so the test moves
the run's ``deadline.deadline_time`` to now. That is the only thing faked: the deadline row was made
by Airflow when the run was queued, the scheduler finds it missed and queues its callback, and the
triggerer runs the project's notifier against the Slack emulator.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any
from uuid import uuid4

import pytest

from sandbox.common.faults import FaultRule
from sandbox.common.runner import Sandbox
from tests.integration.source_connections import source_connections
from tests.observability.airflow_services import AirflowServices
from tests.privacy.erasers.connections import privacy_connections

pytestmark = [pytest.mark.airflow, pytest.mark.xdist_group("airflow")]

DAG_ID = "donations_hourly"
#: The DAG's deadline, counted from the moment the run is queued (dags/donations_hourly.py).
DEADLINE_INTERVAL = timedelta(minutes=50)
#: How long the scheduler and triggerer get to deliver the alert once the deadline has passed.
ALERT_TIMEOUT_S = 60.0
SLACK_WEBHOOK_PATH = "/services/T0E2ETEST/B0E2ETEST/deadlinee2e"


@pytest.fixture(scope="module")
def hourly_services(
    start_sandbox: Callable[..., Sandbox],
    start_airflow_services: Callable[..., AirflowServices],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[AirflowServices, Sandbox]]:
    """Every emulator donations_hourly talks to plus Slack, and the Airflow components, DAG parsed."""
    box = start_sandbox(
        "stripe",
        "donorbox",
        "classy",
        "salesforce",
        "hubspot",
        "mailchimp",
        "braze",
        "receiver",
        "slack",
        stripe={"read_requests_per_second": 10_000},
    )
    drop = tmp_path_factory.mktemp("csv-drop")
    connections = {
        **source_connections(box, drop, quiet_period_seconds=0),
        **privacy_connections(box),  # the CRMs, Mailchimp, Braze and the outbound subscriber
        "slack_alerts": {"conn_type": "slackwebhook", "password": box["slack"].base_url + SLACK_WEBHOOK_PATH},
    }
    started = time.monotonic()
    services = start_airflow_services(connections, ca_cert=box.tls.ca_cert)
    services.wait_for_dag(DAG_ID)
    print(
        f"Airflow components healthy after {services.ready_s:.1f}s, {DAG_ID} parsed after "
        f"{time.monotonic() - started:.1f}s"
    )
    yield services, box
    services.stop()  # before the emulators, so no task outlives the servers it talks to
    print(f"Airflow components stopped in {services.stop_s:.1f}s")
    box.stop()


def _slack_messages(box: Sandbox) -> list[dict[str, Any]]:
    emulator = box["slack"].emulator
    with emulator.lock:
        return [dict(m) for m in emulator.messages]  # type: ignore[attr-defined]


def test_a_missed_deadline_posts_one_slack_alert_naming_the_dag_and_run(
    hourly_services: tuple[AirflowServices, Sandbox],
) -> None:
    services, box = hourly_services
    box["stripe"].emulator.faults.set([FaultRule(kind="slow", delay_s=20)])
    run_id = services.trigger(DAG_ID, f"manual__deadline_e2e_{uuid4().hex[:8]}")

    services.wait_for_task_state(DAG_ID, run_id, "extract_stripe", {"running"}, timeout=120)
    [deadline] = services.deadlines(DAG_ID, run_id)
    assert deadline["deadline_time"] - deadline["queued_at"] == DEADLINE_INTERVAL
    assert deadline["missed"] is False
    assert services.run_state(DAG_ID, run_id) == "running"
    assert _slack_messages(box) == [], "nothing is posted while the deadline is ahead"

    assert services.fast_forward_deadline(DAG_ID, run_id) == 1
    moved = time.monotonic()
    services.wait_until(lambda: _slack_messages(box) or None, ALERT_TIMEOUT_S, "the deadline alert in Slack")
    latency = time.monotonic() - moved
    services.wait_until(
        lambda: services.deadlines(DAG_ID, run_id)[0]["callback_state"] in {"success", "failed"},
        30,
        "the deadline callback to finish",
    )
    time.sleep(5)  # several more scheduler loops: a missed deadline is handled once

    messages = _slack_messages(box)
    assert len(messages) == 1, messages
    [message] = messages
    assert message["webhook"] == SLACK_WEBHOOK_PATH
    body = json.dumps(message["payload"])
    assert DAG_ID in body
    assert run_id in body, f"the alert names the run: {message['payload']}"
    [deadline] = services.deadlines(DAG_ID, run_id)
    assert deadline["missed"] is True
    assert deadline["callback_state"] == "success"
    assert services.run_state(DAG_ID, run_id) == "running", "the alert came while the run was still going"
    failed = {
        t: s for t, s in services.task_states(DAG_ID, run_id).items() if s in {"failed", "upstream_failed"}
    }
    assert failed == {}, "only the deadline alert may reach Slack: no task failed"
    print(f"deadline alert in Slack {latency:.1f}s after the deadline passed")
