"""Webhook receiver fixtures: settings and secrets for tests, httpx against the ASGI app, and the app
served by uvicorn on a real socket (HTTP or HTTPS with the sandbox CA)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn
from fastapi import FastAPI

from donor_sync.web.webhooks.app import create_app
from donor_sync.web.webhooks.config import WebhookSettings, load_settings
from donor_sync.web.webhooks.secret_sources import StaticSecrets
from donor_sync.web.webhooks.signatures import hmac_signature_headers, stripe_signature_header
from sandbox.common.tls import TlsFiles

STRIPE_SECRET = "whsec_test_current"
DONORBOX_SECRET = "dbx-shared-secret"
CLASSY_SECRET = "classy-shared-secret"
PLATFORM_IP = "203.0.113.9"


def settings_with(**endpoint_changes: Any) -> WebhookSettings:
    """The repo's webhooks.yaml with some endpoint fields changed (validated again)."""
    raw = load_settings().model_dump(mode="json")
    for source, changes in endpoint_changes.items():
        if source == "trusted_proxies":
            raw["trusted_proxies"] = changes
        else:
            raw["endpoints"][source].update(changes)
    return WebhookSettings.model_validate(raw)


@pytest.fixture
def secrets() -> StaticSecrets:
    return StaticSecrets(
        {
            "stripe_webhook": STRIPE_SECRET,
            "donorbox_webhook": DONORBOX_SECRET,
            "classy_webhook": CLASSY_SECRET,
        }
    )


def stripe_event(event_id: str = "evt_1", *, created: int = 1_767_225_600, **extra: Any) -> dict[str, Any]:
    """A Stripe event shaped as Stripe sends it (charge.succeeded)."""
    return {
        "id": event_id,
        "object": "event",
        "api_version": "2023-08-16",
        "created": created,
        "type": "charge.succeeded",
        "data": {"object": {"id": "ch_1", "object": "charge", "amount": 2500, "currency": "usd"}},
        **extra,
    }


def envelope(event_id: str, event: str, data: dict[str, Any]) -> dict[str, Any]:
    """The documented envelope for hmac_sha256 platforms (Donorbox, Classy, others)."""
    return {"id": event_id, "event": event, "created_at": "2026-01-01T00:00:00Z", "data": data}


def signed_stripe(
    body: bytes, *, secrets: tuple[str, ...] = (STRIPE_SECRET,), at: int | None = None
) -> dict[str, str]:
    return {
        "Content-Type": "application/json; charset=utf-8",
        "Stripe-Signature": stripe_signature_header(body, secrets, int(time.time()) if at is None else at),
    }


def signed_hmac(body: bytes, secret: str, *, at: int | None = None) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        **hmac_signature_headers(body, [secret], int(time.time()) if at is None else at),
    }


def dumps(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def post(
    app: FastAPI,
    path: str,
    content: bytes,
    headers: Mapping[str, str],
    *,
    client: tuple[str, int] = (PLATFORM_IP, 41234),
) -> httpx.Response:
    """POST to the ASGI app in-process with httpx, as if from ``client``."""

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=client)
        async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as http:
            return await http.post(path, content=content, headers=dict(headers))

    return asyncio.run(go())


def inbox_count(db: psycopg.Connection) -> int:
    row = db.execute("SELECT count(*) FROM raw.webhook_inbox").fetchone()
    db.commit()
    assert row is not None
    return int(row[0])


@pytest.fixture
def make_app(db_url: str, secrets: StaticSecrets) -> Callable[..., FastAPI]:
    """Build the receiver on this test's database (settings, secrets and clock overridable)."""

    def make(
        settings: WebhookSettings | None = None,
        *,
        secret_source: Any = None,
        conninfo: Any = None,
        clock: Callable[[], float] = time.time,
    ) -> FastAPI:
        return create_app(
            settings or load_settings(),
            secret_source or secrets,
            conninfo=conninfo or db_url,
            clock=clock,
        )

    return make


@dataclass
class Served:
    """An app served by uvicorn in a thread."""

    base_url: str
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def serve_app(app: FastAPI, tls: TlsFiles | None = None) -> Served:
    """Serve ``app`` on a free loopback port (HTTPS when ``tls``) and wait until it accepts."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_config=None,
        log_level="warning",
        lifespan="off",
        proxy_headers=False,
        access_log=False,
        timeout_graceful_shutdown=1,
        ssl_certfile=str(tls.server_cert) if tls else None,
        ssl_keyfile=str(tls.server_key) if tls else None,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive(), "receiver did not start"
        assert time.monotonic() < deadline, "receiver did not start in time"
        time.sleep(0.02)
    return Served(f"{'https' if tls else 'http'}://127.0.0.1:{port}", server, thread)


@pytest.fixture
def served() -> Iterator[Callable[..., Served]]:
    """Start apps on real sockets; all are stopped after the test."""
    started: list[Served] = []

    def start(app: FastAPI, tls: TlsFiles | None = None) -> Served:
        running = serve_app(app, tls)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()
