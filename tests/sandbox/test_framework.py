"""The emulator framework: real TLS, the admin API, each kind of injected fault, and the JWT key pair."""

from __future__ import annotations

import json
import stat
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from sandbox.common.jwt_keys import ensure_jwt_key
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


# -- the Salesforce JWT key pair (sandbox.common.jwt_keys) ------------------------------------------


def test_jwt_key_pair_is_rsa_2048_private_to_its_owner_and_made_once(tmp_path: Path) -> None:
    pair = ensure_jwt_key(tmp_path / "sandbox" / "salesforce_jwt.key")
    private = serialization.load_pem_private_key(pair.private_key.read_bytes(), password=None)
    assert isinstance(private, rsa.RSAPrivateKey)
    assert private.key_size == 2048
    assert stat.S_IMODE(pair.private_key.stat().st_mode) == 0o600
    assert pair.public_key == tmp_path / "sandbox" / "salesforce_jwt.pub"
    public = serialization.load_pem_public_key(pair.public_pem().encode())
    assert public.public_numbers() == private.public_key().public_numbers()
    # A JWT signed with the private key verifies with the public key (what the emulator checks).
    token = jwt.encode({"sub": "x"}, pair.private_key.read_text(), algorithm="RS256")
    assert jwt.decode(token, pair.public_pem(), algorithms=["RS256"]) == {"sub": "x"}

    before = pair.private_key.read_bytes()
    assert ensure_jwt_key(pair.private_key) == pair
    assert pair.private_key.read_bytes() == before, "a second start keeps the pair"


def test_a_private_key_left_alone_gets_its_public_half_back(tmp_path: Path) -> None:
    first = ensure_jwt_key(tmp_path / "k.key")
    public = first.public_pem()
    first.public_key.unlink()  # an interrupted first start
    assert ensure_jwt_key(tmp_path / "k.key").public_pem() == public


def test_a_key_that_is_not_rsa_is_refused_not_replaced(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    ec_key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(
        ec_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    before = path.read_bytes()
    with pytest.raises(ValueError, match="not an RSA private key"):
        ensure_jwt_key(path)
    assert path.read_bytes() == before


def test_processes_starting_at_once_share_one_key_pair(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    gate = threading.Barrier(4)

    def start() -> str:
        gate.wait()
        return ensure_jwt_key(path).public_pem()

    with ThreadPoolExecutor(4) as pool:
        publics = list(pool.map(lambda _: start(), range(4)))
    assert len(set(publics)) == 1
    assert publics[0] == ensure_jwt_key(path).public_pem()
