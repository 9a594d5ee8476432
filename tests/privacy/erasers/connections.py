"""Airflow connections to every emulator a privacy erasure reaches (H5's end-to-end test uses them)."""

from __future__ import annotations

from typing import Any

from sandbox.common.runner import Sandbox
from sandbox.emulators.braze import DEFAULT_API_KEY as BRAZE_KEY
from sandbox.emulators.mailchimp import DEFAULT_API_KEY as MAILCHIMP_KEY
from sandbox.emulators.mailchimp import DEFAULT_LIST_ID
from tests.integration.crm import crm_connections

#: The signing secret of the ``outbound_receiver`` connection (the sandbox receiver does not check it;
#: tests verify the signature with it).
OUTBOUND_SECRET = "sandbox-outbound-signing-secret"


def privacy_connections(box: Sandbox) -> dict[str, dict[str, Any]]:
    """Return the connections of the emulators running in ``box``.

    ``salesforce_npsp`` and ``hubspot`` (:func:`crm_connections`, when both run), ``mailchimp``
    (with its audience), ``braze`` and ``outbound_receiver`` (the outbound subscriber of
    ``include/mappings/privacy/erasure.yaml``). Pass them to ``use_connections``.
    """
    ca = str(box.tls.ca_cert)
    running = set(box.running)
    connections: dict[str, dict[str, Any]] = {}
    if {"salesforce", "hubspot"} <= running:
        connections.update(crm_connections(box))
    if "mailchimp" in running:
        connections["mailchimp"] = {
            "conn_type": "http",
            "host": box["mailchimp"].base_url,
            "password": MAILCHIMP_KEY,
            "extra": {"list_id": DEFAULT_LIST_ID, "ca_bundle": ca},
        }
    if "braze" in running:
        connections["braze"] = {
            "conn_type": "http",
            "host": box["braze"].base_url,
            "password": BRAZE_KEY,
            "extra": {"ca_bundle": ca},
        }
    if "receiver" in running:
        connections["outbound_receiver"] = {
            "conn_type": "generic",
            "host": box["receiver"].base_url,
            "password": OUTBOUND_SECRET,
            "extra": {"ca_bundle": ca},
        }
    return connections
