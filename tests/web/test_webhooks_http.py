"""The receiver on real sockets: signed deliveries from the sandbox Stripe emulator over HTTPS,
oversized uploads cut off mid-stream, and ``donor-sync webhooks serve`` with the documented
curl/openssl example."""

from __future__ import annotations

import json
import os
import re
import select
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
import requests
from fastapi import FastAPI

from donor_sync.sources.stripe import extract_stripe
from donor_sync.sources.stripe.helpers import StripeApi
from donor_sync.sources.webhook_inbox import drain_webhook_inbox
from donor_sync.web.webhooks.secret_sources import StaticSecrets
from sandbox.common.runner import Running, Sandbox
from sandbox.common.tls import TlsFiles
from sandbox.emulators.stripe import StripeEmulator
from tests.conftest import REPO_ROOT
from tests.web.conftest import Served, inbox_count, settings_with

MakeApp = Callable[..., FastAPI]


@pytest.fixture(scope="module")
def stripe_api(start_emulators: Callable[..., Sandbox]) -> Running:
    return start_emulators(StripeEmulator({"read_requests_per_second": 10_000}))["stripe"]


@pytest.fixture
def emulator(stripe_api: Running) -> Iterator[StripeEmulator]:
    stripe_api.emulator.reset()
    assert isinstance(stripe_api.emulator, StripeEmulator)
    yield stripe_api.emulator
    stripe_api.emulator.reset()


def _emit(
    https: requests.Session, api: Running, event_type: str, obj: dict[str, object]
) -> dict[str, object]:
    response = https.post(
        f"{api.admin_url}/events", json={"type": event_type, "object": obj, "deliver": True}, timeout=30
    )
    response.raise_for_status()
    answer: dict[str, object] = response.json()
    return answer


def test_stripe_emulator_deliveries_over_https_are_verified_deduplicated_and_rotated(
    stripe_api: Running,
    emulator: StripeEmulator,
    sandbox_tls: TlsFiles,
    make_app: MakeApp,
    served: Callable[..., Served],
    db: psycopg.Connection,
    https: requests.Session,
) -> None:
    secrets = StaticSecrets({"stripe_webhook": "whsec_sandbox"})
    receiver = served(make_app(secret_source=secrets), tls=sandbox_tls)
    # The emulator posts with requests and verify=<webhook_ca_cert>: it trusts our certificate only
    # through the sandbox CA.
    emulator.settings.update(
        {"webhook_endpoint_url": f"{receiver.base_url}/stripe", "webhook_ca_cert": str(sandbox_tls.ca_cert)}
    )
    answer = _emit(
        https, stripe_api, "charge.succeeded", {"object": "charge", "id": "ch_hook", "amount": 4200}
    )
    event = answer["event"]
    assert isinstance(event, dict)
    assert answer["delivery"] == {**answer["delivery"], "status": 200}  # type: ignore[dict-item]
    row = db.execute(
        "SELECT event_id, event_type, signature_scheme, signature_verified, host(remote_addr), body,"
        " headers->>'user-agent' FROM raw.webhook_inbox"
    ).fetchone()
    assert row is not None
    assert row[:5] == (event["id"], "charge.succeeded", "stripe_v1", True, "127.0.0.1")
    assert row[5]["data"]["object"]["amount"] == 4200
    assert row[6].startswith("Stripe/")

    # Stripe redelivers (its retries, or a person pressing "resend"): stored once.
    again = https.post(f"{stripe_api.admin_url}/events/{event['id']}/deliver", timeout=30).json()
    assert again["status"] == 200
    assert inbox_count(db) == 1

    # Rolling the secret: Stripe signs with the new and the previous one; we still hold the previous.
    emulator.settings.update(
        {"webhook_signing_secret": "whsec_next", "webhook_previous_secret": "whsec_sandbox"}
    )
    rolled = _emit(
        https, stripe_api, "charge.refunded", {"object": "charge", "id": "ch_hook", "amount": 4200}
    )
    assert rolled["delivery"]["status"] == 200  # type: ignore[index]
    secrets.set("stripe_webhook", "whsec_next")  # we move to the new one
    moved = _emit(https, stripe_api, "customer.created", {"object": "customer", "id": "cus_hook"})
    assert moved["delivery"]["status"] == 200  # type: ignore[index]
    # A sender that does not know our secret.
    emulator.settings.update({"webhook_signing_secret": "whsec_rogue", "webhook_previous_secret": ""})
    rogue = _emit(https, stripe_api, "charge.succeeded", {"object": "charge", "id": "ch_rogue"})
    assert rogue["delivery"]["status"] == 401  # type: ignore[index]
    assert inbox_count(db) == 3


def test_a_delivered_stripe_event_and_the_same_event_listed_by_the_api_are_one_object(
    stripe_api: Running,
    emulator: StripeEmulator,
    sandbox_tls: TlsFiles,
    make_app: MakeApp,
    served: Callable[..., Served],
    db: psycopg.Connection,
    https: requests.Session,
) -> None:
    receiver = served(
        make_app(secret_source=StaticSecrets({"stripe_webhook": "whsec_sandbox"})), tls=sandbox_tls
    )
    emulator.settings.update(
        {"webhook_endpoint_url": f"{receiver.base_url}/stripe", "webhook_ca_cert": str(sandbox_tls.ca_cert)}
    )
    event = _emit(
        https, stripe_api, "charge.succeeded", {"object": "charge", "id": "ch_both", "amount": 990}
    )["event"]
    assert isinstance(event, dict)
    (drained,) = drain_webhook_inbox(db, run_id=None)
    assert (drained.read, drained.loaded) == (1, 1)
    api = StripeApi(stripe_api.base_url, "sk_test_sandbox", verify=str(sandbox_tls.ca_cert))
    extract_stripe(db, api, run_id=None, streams=("events",))
    rows = db.execute(
        "SELECT entity, source_id, channel, webhook_event_id IS NOT NULL FROM raw.records"
        " WHERE source = 'stripe' AND entity = 'event' ORDER BY channel"
    ).fetchall()
    # Same (source, entity, source_id): standardization sees one event. Stripe's copy listed after
    # delivery differs in pending_webhooks, so it is kept as a second version of that event.
    assert {(r[0], r[1]) for r in rows} == {("event", event["id"])}
    assert [(r[2], r[3]) for r in rows] == [("api", False), ("webhook", True)]


# -- oversized uploads over a raw socket --------------------------------------------------------------


def _read_status(sock: socket.socket) -> int:
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    match = re.match(rb"HTTP/1\.1 (\d{3})", data)
    assert match, data[:100]
    return int(match.group(1))


def _open(base_url: str) -> socket.socket:
    parts = urlsplit(base_url)
    return socket.create_connection((parts.hostname, parts.port), timeout=10)


def test_a_chunked_upload_without_content_length_is_cut_off_at_the_limit(
    make_app: MakeApp, served: Callable[..., Served], db: psycopg.Connection
) -> None:
    limit = 4096
    receiver = served(make_app(settings_with(stripe={"max_body_bytes": limit})))
    sent = 0
    with _open(receiver.base_url) as sock:
        sock.sendall(
            b"POST /stripe HTTP/1.1\r\nHost: receiver\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"x" * 2048
        answered = False
        # Up to 2 MiB offered, never the terminating chunk: a server waiting for the whole body
        # would never answer.
        while sent < 2 * 1024 * 1024:
            readable, _, _ = select.select([sock], [], [], 0.01)
            if readable:
                answered = True
                break
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except (BrokenPipeError, ConnectionResetError):
                answered = True
                break
            sent += len(chunk)
        assert answered
        assert _read_status(sock) == 413
    assert sent < 256 * 1024, f"the server read {sent} bytes before refusing a {limit}-byte limit"
    assert inbox_count(db) == 0


def test_a_declared_oversized_body_is_refused_before_it_is_sent(
    make_app: MakeApp, served: Callable[..., Served], db: psycopg.Connection
) -> None:
    receiver = served(make_app(settings_with(stripe={"max_body_bytes": 4096})))
    with _open(receiver.base_url) as sock:
        sock.sendall(
            b"POST /stripe HTTP/1.1\r\nHost: receiver\r\nContent-Type: application/json\r\n"
            b"Content-Length: 104857600\r\n\r\n"
        )
        assert _read_status(sock) == 413  # answered with none of the 100 MB sent
    assert inbox_count(db) == 0


# -- donor-sync webhooks serve, with the example from docs/webhooks.md --------------------------------


def _documented_example() -> str:
    text = (REPO_ROOT / "docs" / "webhooks.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    (example,) = [b for b in blocks if "openssl dgst" in b]
    return str(example)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_cli_serves_https_and_the_documented_curl_example_is_accepted(
    db_url: str, db: psycopg.Connection, sandbox_tls: TlsFiles, tmp_path: Path
) -> None:
    secrets_file = tmp_path / "webhook-secrets.yaml"
    secrets_file.write_text("donorbox_webhook: 'doc-example-secret'\n")
    secrets_file.chmod(0o600)
    port = _free_port()
    server_log = tmp_path / "serve.log"
    log_handle = server_log.open("wb")
    env = {**os.environ, "DONOR_SYNC_DB_URL": db_url}
    env.pop("DONOR_SYNC_WEBHOOK_SECRET_DONORBOX_WEBHOOK", None)
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "donor_sync",
            "webhooks",
            "serve",
            "--port",
            str(port),
            "--ssl-certfile",
            str(sandbox_tls.server_cert),
            "--ssl-keyfile",
            str(sandbox_tls.server_key),
            "--secrets-file",
            str(secrets_file),
        ],
        env=env,
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=log_handle,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, server_log.read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "donor-sync webhooks serve did not start"
                time.sleep(0.2)
        script = re.sub(r"(?m)^SECRET=.*$", "SECRET='doc-example-secret'", _documented_example())
        script = re.sub(r"(?m)^URL=.*$", f"URL='https://127.0.0.1:{port}/donorbox'", script)
        run = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            env={**os.environ, "CURL_CA_BUNDLE": str(sandbox_tls.ca_cert)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert run.returncode == 0, run.stderr
        assert json.loads(run.stdout) == {"status": "stored"}
        # The same command with a wrong secret is refused.
        wrong = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script.replace("doc-example-secret", "not-the-secret")],
            env={**os.environ, "CURL_CA_BUNDLE": str(sandbox_tls.ca_cert)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert wrong.returncode != 0
        assert "invalid_signature" in wrong.stdout + wrong.stderr
    finally:
        server.terminate()
        server.wait(timeout=20)
        log_handle.close()
    log_text = server_log.read_text()
    assert "doc-example-secret" not in log_text
    assert "40000002" not in log_text  # the body's donation id: bodies are never logged
    row = db.execute("SELECT source, event_type, signature_verified FROM raw.webhook_inbox").fetchone()
    assert row == ("donorbox", "donation.created", True)
    assert inbox_count(db) == 1
