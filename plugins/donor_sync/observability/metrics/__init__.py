"""Run-health metrics (issue 9): what a run read, moved and left behind, recorded per run.

:func:`collect_run_health` computes the figures of the metric contract for one run (latency from
gift to destination, API calls and quota, circuit breakers, consent and suppression gauges,
journey entries, webhook and event delivery rates, dead letters, push success rate, the data
quality scorecard), records them in ``sync.run_metrics`` and returns a :class:`HealthSnapshot`.
:func:`load_health` reads a snapshot back; :func:`format_health` renders one. Plain Python over
psycopg, no Airflow.
"""

from __future__ import annotations

from donor_sync.observability.metrics.collect import (
    RunWindow,
    collect_run_health,
    compute_run_health,
    read_window,
)
from donor_sync.observability.metrics.record import OWNED, Figure, write_figures
from donor_sync.observability.metrics.snapshot import (
    BREAKER_CODES,
    ApiUse,
    ConsentCounts,
    DeadLetters,
    EventDeliveries,
    HealthSnapshot,
    JourneyCounts,
    Latency,
    WebhookDeliveries,
    format_health,
    load_health,
)

__all__ = [
    "BREAKER_CODES",
    "OWNED",
    "ApiUse",
    "ConsentCounts",
    "DeadLetters",
    "EventDeliveries",
    "Figure",
    "HealthSnapshot",
    "JourneyCounts",
    "Latency",
    "RunWindow",
    "WebhookDeliveries",
    "collect_run_health",
    "compute_run_health",
    "format_health",
    "load_health",
    "read_window",
    "write_figures",
]
