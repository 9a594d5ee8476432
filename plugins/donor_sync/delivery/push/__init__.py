"""The push engine: claim due outbox rows, push them through a connector, write the results back.

``push_destination`` is the entry point (the push operator, the CLI and the benchmarks call it);
the modules under it each do one step: ``claim`` (leases, priority, dependencies), ``splitting``
(isolating records that poison a batch), ``results`` (retry ladder, dead letters, remote ids),
``breaker`` (circuit breaker per destination), ``quota`` (quota reserve, API usage).
"""

from __future__ import annotations

from donor_sync.delivery.push.breaker import BreakerState, BreakerTransition
from donor_sync.delivery.push.engine import EntityReport, PushReport, push_destination
from donor_sync.delivery.push.settings import PushSettings, load_push_settings

__all__ = [
    "BreakerState",
    "BreakerTransition",
    "EntityReport",
    "PushReport",
    "PushSettings",
    "load_push_settings",
    "push_destination",
]
