"""Slack incoming webhooks and the outbound-webhook receiver behave as documented."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import requests

from sandbox.common.runner import Running, Sandbox


@pytest.fixture(scope="module")
def box(start_sandbox: Callable[..., Sandbox]) -> Sandbox:
    return start_sandbox("slack", "receiver")


@pytest.fixture
def slack(box: Sandbox) -> Running:
    box["slack"].emulator.reset()
    return box["slack"]


@pytest.fixture
def receiver(box: Sandbox) -> Running:
    box["receiver"].emulator.reset()
    return box["receiver"]


@pytest.mark.parametrize(
    ("body", "status", "text"),
    [
        pytest.param(b'{"text": "hello"}', 200, "ok", id="text"),
        pytest.param(b'{"blocks": [{"type": "section"}]}', 200, "ok", id="blocks"),
        pytest.param(b'{"username": "x"}', 400, "no_text", id="no-text"),
        pytest.param(b"not json", 400, "invalid_payload", id="not-json"),
        pytest.param(b"[1, 2]", 400, "invalid_payload", id="not-object"),
    ],
)
def test_webhook_answers_in_plain_text(
    slack: Running, https: requests.Session, body: bytes, status: int, text: str
) -> None:
    response = https.post(
        f"{slack.base_url}/services/T1/B1/x",
        data=body,
        headers={"Content-Type": "application/json"},
        timeout=5,
    )
    assert (response.status_code, response.text) == (status, text)


def test_more_than_one_per_second_beyond_the_burst_is_429_with_retry_after(
    slack: Running, https: requests.Session
) -> None:
    url = f"{slack.base_url}/services/T1/B1/x"
    statuses = [https.post(url, json={"text": str(i)}, timeout=5) for i in range(5)]
    assert [r.status_code for r in statuses[:3]] == [200, 200, 200]
    limited = statuses[3]
    assert limited.status_code == 429
    assert limited.text == "rate_limited"
    assert int(limited.headers["Retry-After"]) >= 1
    other = https.post(f"{slack.base_url}/services/T2/B2/y", json={"text": "x"}, timeout=5)
    assert other.status_code == 200, "limits are per webhook"


def test_revoked_webhook_is_404_no_service(slack: Running, https: requests.Session) -> None:
    https.patch(f"{slack.admin_url}/settings", json={"revoked_webhooks": ["/services/T1/B1/x"]}, timeout=5)
    try:
        response = https.post(f"{slack.base_url}/services/T1/B1/x", json={"text": "x"}, timeout=5)
        assert (response.status_code, response.text) == (404, "no_service")
    finally:
        https.patch(f"{slack.admin_url}/settings", json={"revoked_webhooks": []}, timeout=5)


def test_receiver_records_deliveries_and_can_answer_errors(
    receiver: Running, https: requests.Session
) -> None:
    ok = https.post(
        f"{receiver.base_url}/hooks/crm", data=b'{"a": 1}', headers={"X-Signature": "abc"}, timeout=5
    )
    assert ok.json() == {"received": True}
    https.patch(f"{receiver.admin_url}/settings", json={"respond_status": {"crm": 503}}, timeout=5)
    failing = https.post(f"{receiver.base_url}/hooks/crm", data=b"\xff\xfe", timeout=5)
    assert failing.status_code == 503
    deliveries = https.get(f"{receiver.admin_url}/state", timeout=5).json()["deliveries"]
    assert [d["hook"] for d in deliveries] == ["crm", "crm"]
    assert deliveries[0]["text"] == '{"a": 1}'
    assert deliveries[0]["headers"]["x-signature"] == "abc"
    assert "base64" in deliveries[1]
