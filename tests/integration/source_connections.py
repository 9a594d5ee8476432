"""The Airflow connections of the donation platforms' emulators and a CSV drop folder, for tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sandbox.common.runner import Sandbox


def platform_connections(box: Sandbox, *, stripe_key: str = "sk_test_sandbox") -> dict[str, dict[str, Any]]:
    """Return ``{conn_id: connection}`` for the Stripe, Donorbox and Classy emulators in ``box``."""
    ca = {"ca_bundle": str(box.tls.ca_cert)}
    return {
        "stripe": {
            "conn_type": "http",
            "host": box["stripe"].base_url,
            "password": stripe_key,
            "extra": ca,
        },
        "donorbox": {
            "conn_type": "http",
            "host": box["donorbox"].base_url,
            "login": "api@sandbox.donor-sync.test",
            "password": "sandbox-donorbox-key",
            "extra": ca,
        },
        "classy": {
            "conn_type": "http",
            "host": box["classy"].base_url,
            "login": "sandbox-classy-client",
            "password": "sandbox-classy-secret",
            "extra": {**ca, "organization_id": 1},
        },
    }


def source_connections(
    box: Sandbox, drop: Path, *, quiet_period_seconds: int = 60
) -> dict[str, dict[str, Any]]:
    """Return ``{conn_id: connection}`` for Stripe, Donorbox and Classy in ``box`` and the CSV ``drop``."""
    return {
        **platform_connections(box),
        "csv_drop": {
            "conn_type": "fs",
            "extra": {"path": str(drop), "quiet_period_seconds": quiet_period_seconds},
        },
    }
