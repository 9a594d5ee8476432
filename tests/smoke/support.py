"""A whole sandbox as a deployment sees it: every emulator and the Airflow connections to each.

Connections reach the hooks as ``AIRFLOW_CONN_*`` variables, exactly as in a deployment whose
secrets come from the environment. :func:`writes` lists what reached an emulator other than a
read (token requests are authentication, not writes).
"""

from __future__ import annotations

import copy
from typing import Any

from sandbox.common.runner import Sandbox
from tests.integration.source_connections import platform_connections
from tests.privacy.erasers.connections import privacy_connections

#: Every emulator a deployment's connections point at.
EMULATORS = (
    "salesforce",
    "hubspot",
    "mailchimp",
    "braze",
    "stripe",
    "donorbox",
    "classy",
    "slack",
    "receiver",
)
SLACK_PATH = "/services/T0SANDBOX/B0SANDBOX/smokesmokesmoke1"
READS = frozenset({"GET", "HEAD", "OPTIONS"})
#: OAuth token requests: a POST that authenticates and changes no vendor data.
TOKEN_PATHS = frozenset({"/services/oauth2/token", "/oauth2/auth"})
#: Snapshot entries that count requests (reads included) or access tokens issued, not vendor data.
USAGE_COUNTERS = frozenset({"daily_requests_used", "api_usage", "sessions", "live_tokens"})


def sandbox_connections(box: Sandbox) -> dict[str, dict[str, Any]]:
    """Return the Airflow connections (JSON form, by id) of every emulator in ``box``."""
    connections = privacy_connections(box)  # salesforce_npsp, hubspot, mailchimp, braze, outbound_receiver
    connections.update(
        {
            **platform_connections(box, stripe_key="rk_test_sandbox"),
            "slack_alerts": {"conn_type": "slackwebhook", "password": box["slack"].base_url + SLACK_PATH},
        }
    )
    return connections


def secrets_of(connections: dict[str, dict[str, Any]]) -> list[str]:
    """Return every password and secret extra of ``connections`` (what the output must never show)."""
    found = [str(c["password"]) for c in connections.values() if c.get("password")]
    found.append(SLACK_PATH.rsplit("/", 1)[1])
    for conn in connections.values():
        found += [str(v) for k, v in (conn.get("extra") or {}).items() if "secret" in k or "key" in k]
    return [s for s in found if "ca.pem" not in s]


def reset(box: Sandbox) -> None:
    """Bring every emulator back to its start (state, settings, faults and request log)."""
    for running in box.running.values():
        running.emulator.reset()


def writes(box: Sandbox) -> list[tuple[str, str, str]]:
    """Return (emulator, method, path) of every request since the last reset that was not a read."""
    return [
        (name, entry["method"], entry["path"])
        for name, running in box.running.items()
        for entry in list(running.emulator.request_log)
        if entry["method"] not in READS and entry["path"] not in TOKEN_PATHS
    ]


def snapshots(box: Sandbox) -> dict[str, Any]:
    """Return every emulator's state summary, request counters left out."""
    taken: dict[str, Any] = {}
    for name, running in box.running.items():
        with running.emulator.lock:
            state = copy.deepcopy(running.emulator.snapshot())
        taken[name] = {k: v for k, v in state.items() if k not in USAGE_COUNTERS}
    return taken
