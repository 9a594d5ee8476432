"""The consent and suppression gate before the outbox (see :mod:`.core`), configured by
``include/mappings/privacy/destinations.yaml`` (:mod:`.policy`)."""

from __future__ import annotations

from donor_sync.privacy.gate.core import (
    BLOCKED_METRIC,
    WITHHELD_METRIC,
    DestinationGate,
    GateResult,
    apply,
    block_reason,
    load_gate,
    residency_region,
)
from donor_sync.privacy.gate.policy import DestinationPolicy, PrivacyPolicy, load_policy, policy_path

__all__ = [
    "BLOCKED_METRIC",
    "WITHHELD_METRIC",
    "DestinationGate",
    "DestinationPolicy",
    "GateResult",
    "PrivacyPolicy",
    "apply",
    "block_reason",
    "load_gate",
    "load_policy",
    "policy_path",
    "residency_region",
]
