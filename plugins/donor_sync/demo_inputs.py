"""The demo's inputs beyond the source APIs: CSV exports in the drop folder and signed webhooks.

``make demo`` shows every way gifts arrive. The API emulators are seeded with the sample data
(:mod:`donor_sync.sandbox_support`); this module also drops the sample CSV exports into the drop
folder, and runs the real webhook receiver over HTTPS while the Stripe emulator delivers signed
``charge.refunded`` events to it, so ``donations_hourly`` drains them from the inbox.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

from donor_sync.errors import DonorSyncError

if TYPE_CHECKING:
    from sandbox.common.runner import Sandbox

log = logging.getLogger(__name__)

#: The Stripe emulator's signing secret (its own default; airflow_settings.yaml's stripe_webhook).
SANDBOX_STRIPE_SECRET = "whsec_sandbox"  # noqa: S105 - the emulator's published test value
#: How many charges the demo refunds through webhooks.
DEMO_REFUNDS = 5


def drop_demo_csvs(data_dir: Path, drop_dir: Path, *, settled_for_s: float = 3600.0) -> list[Path]:
    """Copy the sample CSV exports into ``drop_dir``, dated as if they had settled long ago.

    Files already loaded (same bytes) are recognized by their hash and archived as duplicates,
    so running the demo again loads nothing twice.
    """
    drop_dir.mkdir(parents=True, exist_ok=True)
    dropped = []
    settled = time.time() - settled_for_s
    for source in sorted((data_dir / "csv").glob("*.csv")):
        target = drop_dir / source.name
        shutil.copyfile(source, target)
        os.utime(target, (settled, settled))
        dropped.append(target)
    return dropped


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def webhook_receiver(db_url: str, tls_cert: Path, tls_key: Path) -> Iterator[str]:
    """Run the webhook receiver over HTTPS on a free local port; yield its base URL."""
    import uvicorn

    from donor_sync.web.webhooks.app import create_app
    from donor_sync.web.webhooks.config import load_settings
    from donor_sync.web.webhooks.secret_sources import StaticSecrets

    app = create_app(
        load_settings(), StaticSecrets({"stripe_webhook": SANDBOX_STRIPE_SECRET}), conninfo=db_url
    )
    port = _free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        ssl_certfile=str(tls_cert),
        ssl_keyfile=str(tls_key),
        log_level="warning",
        log_config=None,
        lifespan="off",
        access_log=False,
        proxy_headers=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="demo-webhook-receiver", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise DonorSyncError("the demo webhook receiver did not start")
        time.sleep(0.02)
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def deliver_refund_webhooks(running: Sandbox, receiver_url: str, count: int = DEMO_REFUNDS) -> dict[str, int]:
    """Have the Stripe emulator refund the ``count`` newest charges and deliver each event, signed, to
    the receiver.

    Each event is delivered twice, as Stripe sometimes does: the receiver keeps one. Returns the
    delivery outcomes by HTTP status.
    """
    stripe = running["stripe"]
    admin, ca = stripe.admin_url, str(running.tls.ca_cert)
    with requests.Session() as http:
        http.trust_env = False  # REQUESTS_CA_BUNDLE must not override the sandbox CA
        settings = {"webhook_endpoint_url": f"{receiver_url}/stripe", "webhook_ca_cert": ca}
        http.patch(f"{admin}/settings", json=settings, verify=ca, timeout=10).raise_for_status()
        listed = http.get(
            f"{stripe.base_url}/v1/charges",
            # The newest charges that are not dated in the future (the sample's bad records include
            # future-dated ones, which standardization quarantines).
            params={"limit": count, "created[lte]": int(time.time())},
            headers={"Authorization": "Bearer sk_test_sandbox"},
            verify=ca,
            timeout=10,
        )
        listed.raise_for_status()
        outcomes: dict[str, int] = {}
        for charge in listed.json()["data"]:
            refunded: dict[str, Any] = {
                **charge,
                "refunded": True,
                "amount_refunded": charge["amount"],
            }
            created = http.post(
                f"{admin}/events",
                json={"type": "charge.refunded", "object": refunded, "deliver": True},
                verify=ca,
                timeout=30,
            )
            created.raise_for_status()
            body = created.json()
            again = http.post(f"{admin}/events/{body['event']['id']}/deliver", verify=ca, timeout=30)
            again.raise_for_status()
            for delivery in (body["delivery"], again.json()):
                key = str(delivery.get("status"))
                outcomes[key] = outcomes.get(key, 0) + 1
    if set(outcomes) != {"200"}:
        raise DonorSyncError(f"webhook deliveries to the receiver failed: {outcomes}")
    return outcomes
