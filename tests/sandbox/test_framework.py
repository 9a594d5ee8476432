"""The emulator framework: real TLS, the admin API, and each kind of injected fault."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import pytest
import requests

from sandbox.common.runner import Running, Sandbox


@pytest.fixture(scope="module")
def box(start_sandbox: Callable[..., Sandbox]) -> Sandbox:
    return start_sandbox("slack", "receiver")


@pytest.fixture
def slack(box: Sandbox) -> Iterator[Running]:
    running = box["slack"]
    running.emulator.reset()
    yield running
    running.emulator.reset()


def test_served_over_https_that_only_the_sandbox_ca_vouches_for(slack: Running) -> None:
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{slack.admin_url}/state", timeout=5)  # system trust store only
    assert slack.base_url.startswith("https://127.0.0.1:")


def test_admin_state_settings_reset_and_request_log(slack: Running, https: requests.Session) -> None:
    assert https.post(f"{slack.base_url}/services/T1/B1/x", json={"text": "hi"}, timeout=5).text == "ok"
    state = https.get(f"{slack.admin_url}/state", timeout=5).json()
    assert state["name"] == "slack"
    assert [m["payload"] for m in state["messages"]] == [{"text": "hi"}]
    log = https.get(f"{slack.admin_url}/requests", timeout=5).json()
    assert [(e["method"], e["path"], e["status"]) for e in log] == [("POST", "/services/T1/B1/x", 200)]

    bad = https.patch(f"{slack.admin_url}/settings", json={"no_such_setting": 1}, timeout=5)
    assert bad.status_code == 400
    assert https.patch(f"{slack.admin_url}/settings", json={"burst": 10}, timeout=5).json()["burst"] == 10

    https.post(f"{slack.admin_url}/reset", timeout=5)
    assert https.get(f"{slack.admin_url}/state", timeout=5).json()["messages"] == []
    assert https.get(f"{slack.admin_url}/requests", timeout=5).json() == []


def _fault(https: requests.Session, running: Running, **rule: object) -> None:
    response = https.put(f"{running.admin_url}/faults", json=[rule], timeout=5)
    assert response.status_code == 200, response.text


def test_status_fault_uses_the_vendor_error_shape_and_respects_count(
    slack: Running, https: requests.Session
) -> None:
    _fault(https, slack, kind="status", status=503, count=2, path="^/services/")
    url = f"{slack.base_url}/services/T1/B1/x"
    statuses = [https.post(url, json={"text": str(i)}, timeout=5) for i in range(3)]
    assert [r.status_code for r in statuses] == [503, 503, 200]
    assert statuses[0].text == "rollup_error"
    assert statuses[0].headers["content-type"].startswith("text/plain")
    assert https.get(f"{slack.admin_url}/faults", timeout=5).json()[0]["fired"] == 2


def test_rate_fault_is_seeded_and_repeatable(slack: Running, https: requests.Session) -> None:
    url = f"{slack.base_url}/services/T1/B1/x"
    https.patch(f"{slack.admin_url}/settings", json={"burst": 1000, "messages_per_second": 1000}, timeout=5)

    def pattern() -> list[int]:
        https.put(
            f"{slack.admin_url}/faults?seed=7",
            json=[{"kind": "status", "status": 500, "rate": 0.3}],
            timeout=5,
        )
        return [https.post(url, json={"text": "x"}, timeout=5).status_code for _ in range(40)]

    first, second = pattern(), pattern()
    assert first == second
    assert 4 <= first.count(500) <= 20


def test_timeout_fault_holds_the_request_past_the_client_timeout(
    slack: Running, https: requests.Session
) -> None:
    _fault(https, slack, kind="timeout", delay_s=2.0, count=1)
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        https.post(f"{slack.base_url}/services/T1/B1/x", json={"text": "x"}, timeout=0.5)
    assert time.monotonic() - started < 1.5


def test_slow_fault_delays_then_serves(slack: Running, https: requests.Session) -> None:
    _fault(https, slack, kind="slow", delay_s=0.4, count=1)
    started = time.monotonic()
    response = https.post(f"{slack.base_url}/services/T1/B1/x", json={"text": "x"}, timeout=5)
    assert response.text == "ok"
    assert time.monotonic() - started >= 0.4


def test_reset_fault_drops_the_connection(slack: Running, https: requests.Session) -> None:
    _fault(https, slack, kind="reset", count=1)
    with pytest.raises(requests.exceptions.ConnectionError):
        https.post(f"{slack.base_url}/services/T1/B1/x", json={"text": "x"}, timeout=5)
    assert https.post(f"{slack.base_url}/services/T1/B1/x", json={"text": "x"}, timeout=5).text == "ok"


def test_malformed_fault_returns_truncated_json(slack: Running, https: requests.Session) -> None:
    _fault(https, slack, kind="malformed", count=1)
    response = https.post(f"{slack.base_url}/services/T1/B1/x", json={"text": "x"}, timeout=5)
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.text)


def test_expired_token_fault_is_a_401(slack: Running, https: requests.Session) -> None:
    _fault(https, slack, kind="expired_token", count=1, method="POST")
    assert https.post(f"{slack.base_url}/services/T1/B1/x", json={"text": "x"}, timeout=5).status_code == 401


def test_admin_api_is_never_faulted(slack: Running, https: requests.Session) -> None:
    _fault(https, slack, kind="status", status=500)
    assert https.get(f"{slack.admin_url}/state", timeout=5).status_code == 200


def test_invalid_fault_rule_is_refused(slack: Running, https: requests.Session) -> None:
    response = https.put(f"{slack.admin_url}/faults", json=[{"kind": "explode"}], timeout=5)
    assert response.status_code == 422
