"""Issue 9's "done when": Slack receives exactly the expected messages, through the real Airflow.

The API server, scheduler (LocalExecutor), dag-processor and triggerer run as subprocesses
(:mod:`tests.observability.airflow_services`), every vendor is its HTTPS emulator, and the
``slack_alerts`` connection points at the Slack emulator. Two manual runs of ``donations_hourly``:

1. **An injected failure and a missed deadline.** Classy refuses every call with 401, so
   ``extract_classy`` fails (no retries: ``DONOR_SYNC_FAIL_FAST``) and the run fails. The task's
   failure notifier posts one message. The run's deadline (50 minutes after it was queued) is then
   moved to now — the one thing faked, see test_deadline_e2e.py — and the scheduler and triggerer
   post one missed-deadline message.
2. **A threshold breach, and the resolutions.** Classy is healthy again; HubSpot answers every batch
   write with 503. The push to HubSpot fails record after record, its circuit breaker opens (one message
   from the push task) and the run's ``check_health`` task finds the share of failed records above
   the threshold (one message). The run succeeds otherwise, so ``extract_classy``'s success
   resolves its failure incident and ``close_run`` resolves the missed deadline: one message each.

Nothing else may reach Slack: no repeat of an open incident, no storm.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any
from uuid import uuid4

import pytest

from sandbox.common.faults import FaultRule
from sandbox.common.runner import Sandbox
from sandbox.datagen import GenerationConfig, generate
from sandbox.load import load_sources
from tests.integration.source_connections import source_connections
from tests.observability.airflow_services import AirflowServices
from tests.privacy.erasers.connections import privacy_connections

pytestmark = [pytest.mark.airflow, pytest.mark.xdist_group("airflow")]

DAG_ID = "donations_hourly"
SLACK_WEBHOOK_PATH = "/services/T0E2ETEST/B0E2ETEST/alertse2e"
RUN_TIMEOUT_S = 300.0
#: After the last expected message: more scheduler loops and callbacks, so a repeat would show.
QUIET_S = 8.0
_INCIDENT = re.compile(r"Incident `([^`]+)`")


@pytest.fixture(scope="module")
def alert_services(
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
    sample = tmp_path_factory.mktemp("sample")
    generate(GenerationConfig(donors=150, out=sample, seed=19, workers=1, bad_share=0.0))
    load_sources(box, sample)  # gifts to extract, so the second run has records for HubSpot
    drop = tmp_path_factory.mktemp("csv-drop")
    connections = {
        **source_connections(box, drop, quiet_period_seconds=0),
        **privacy_connections(box),
        "slack_alerts": {"conn_type": "slackwebhook", "password": box["slack"].base_url + SLACK_WEBHOOK_PATH},
    }
    services = start_airflow_services(connections, ca_cert=box.tls.ca_cert)
    services.wait_for_dag(DAG_ID)
    yield services, box
    services.stop()
    box.stop()


def _messages(box: Sandbox) -> list[dict[str, Any]]:
    emulator = box["slack"].emulator
    with emulator.lock:
        return [dict(m) for m in emulator.messages]  # type: ignore[attr-defined]


def _classify(message: dict[str, Any]) -> tuple[str, str]:
    """Return (opened|resolved, incident key) of one Slack message."""
    text = str(message["payload"].get("text", ""))
    found = _INCIDENT.search(text)
    assert found, f"every alert names its incident: {text!r}"
    return ("resolved" if "*Resolved:" in text else "opened"), found.group(1)


def _wait_for_messages(
    services: AirflowServices, box: Sandbox, count: int, what: str
) -> list[dict[str, Any]]:
    services.wait_until(lambda: len(_messages(box)) >= count or None, 90, what)
    time.sleep(QUIET_S)
    return _messages(box)


def test_slack_gets_exactly_one_message_per_incident_change(
    alert_services: tuple[AirflowServices, Sandbox],
) -> None:
    services, box = alert_services
    slack = box["slack"]

    # 1. Injected failure, then a missed deadline.
    box["classy"].emulator.faults.set([FaultRule(kind="status", status=401)])
    first = services.trigger(DAG_ID, f"manual__alerts_e2e_1_{uuid4().hex[:8]}")
    assert services.wait_for_run_state(DAG_ID, first, timeout=RUN_TIMEOUT_S) == "failed"
    states = services.task_states(DAG_ID, first)
    assert states["extract_classy"] == "failed"
    assert states["check_health"] == "success", "the health check runs whatever became of the run"
    messages = _wait_for_messages(services, box, 1, "the task-failure alert")
    assert [_classify(m) for m in messages] == [("opened", f"task_failed:{DAG_ID}.extract_classy")]
    text = str(messages[0]["payload"]["text"])
    assert first in text, "the alert names the run"
    assert "sync-failure.md" in text, "the alert links the runbook"

    assert services.fast_forward_deadline(DAG_ID, first) == 1
    messages = _wait_for_messages(services, box, 2, "the missed-deadline alert")
    assert [_classify(m) for m in messages[1:]] == [("opened", f"deadline_missed:{DAG_ID}")]
    assert first in str(messages[1]["payload"]["text"])

    # 2. A threshold breach; the earlier incidents resolve.
    box["classy"].emulator.faults.clear()
    # HubSpot's batch writes fail (its reads, the properties describe included, still answer).
    box["hubspot"].emulator.faults.set(
        [FaultRule(kind="status", status=503, method="POST", path=r"^/crm/v3/objects/[^/]+/batch/")]
    )
    second = services.trigger(DAG_ID, f"manual__alerts_e2e_2_{uuid4().hex[:8]}")
    final = services.wait_for_run_state(DAG_ID, second, timeout=RUN_TIMEOUT_S)
    not_done = {t: s for t, s in services.task_states(DAG_ID, second).items() if s != "success"}
    assert final == "success", f"{not_done}\n{services.task_log_tails(DAG_ID, second)}"
    messages = _wait_for_messages(services, box, 6, "the threshold and resolution messages")
    changes = Counter(_classify(m) for m in messages[2:])
    assert changes == Counter(
        {
            ("opened", "circuit_open:hubspot"): 1,
            ("opened", "failed_share:hubspot"): 1,
            ("resolved", f"task_failed:{DAG_ID}.extract_classy"): 1,
            ("resolved", f"deadline_missed:{DAG_ID}"): 1,
        }
    ), [m["payload"]["text"] for m in messages]
    for message in messages:
        assert message["webhook"] == SLACK_WEBHOOK_PATH
        assert "docs/runbooks/" in str(message["payload"]["text"]) or "runbooks" in str(
            message["payload"]["text"]
        ), "every alert links its runbook"
    assert slack.emulator.snapshot()["messages"] == messages, "nothing arrived after the quiet period"
