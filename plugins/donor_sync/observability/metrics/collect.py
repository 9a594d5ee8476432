"""Collect a run's health figures (metric contract of issue 9) and record them in ``sync.run_metrics``.

:func:`collect_run_health` runs at the end of every DAG run (trigger rule ``all_done``, so also
after a failure) and can be run again at any time: it replaces what it recorded before. Each
figure is one set-based query over the run's window, ``sync.runs.started_at`` .. ``finished_at``
(now while the run is still open):

- ``latency/<destination>``: gifts whose first successful push to the destination was made by
  this run (``core.gift_destinations.first_pushed_at`` in the window, and a succeeded
  ``sync.push_log`` row of this run for that gift at that instant), and the seconds from the gift's
  time at the source (``core.gifts.gift_at``, when the donor gave) to that push: p50 and p95
  (``percentile_cont``, interpolated) and max;
- ``api/<vendor>``: calls this run made (its push figures, which count every call), and the
  tightest quota the vendor reported during the window (the latest ``sync.api_usage`` row of each
  quota window, the one with the least share left);
- ``breaker/<destination>``: the circuit breaker's state now, 0 closed, 1 half-open, 2 open;
- ``consent/<purpose>``: live donors opted in (opt-in or soft opt-in), opted out, or with no
  state, on the email channel, and ``consent/''`` events recorded in the window (gauges of all of
  core: the only figures whose cost grows with core, a count over the donors of a few tenths of a
  second per million);
- ``suppressions/<reason>``: active suppressions (gauge);
- ``journeys/<journey>``: enrollments decided in the window that entered (pending, triggered,
  holdout, failed) or were kept out (suppressed, capped);
- ``webhooks/<source>``: inbound webhook events stored by the receiver in the window, and what the
  drain made of them: accepted (landed or deliberately ignored), rejected (failed to land),
  pending (not drained yet). The receiver does not store refused requests (bad signature, wrong
  address, too large: it logs them and answers 4xx), nor repeated deliveries of a stored event;
- ``events/webhook_<subscriber>``: outbound event delivery attempts this run made (``sync.push_log``),
  delivered or failed;
- ``dead_letters/<destination>``: letters open now and the age of the oldest (from its first
  failure to the window's end, so a closed run's figure does not move), and letters created in the
  window;
- ``outcome/<destination>``: the run's push success rate, succeeded / (succeeded + failed) from its
  push figures (failed already counts the records retrying, dead-lettered or superseded);
- ``quality/''``: the data quality scorecard (:mod:`donor_sync.observability.quality`).

Ratios are absent when there was nothing to divide. Every query but the consent gauges reads
the rows of the window through an index (see include/sql/migrations/0022_health_metrics.sql;
checked with EXPLAIN over 100,000 gifts, pushes, enrollments, consent events and inbox events:
each window query reads only the window's rows).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from uuid import UUID

import psycopg

from donor_sync.errors import ConfigError
from donor_sync.observability.metrics.record import OWNED, OWNED_QUALITY, Figure, write_figures
from donor_sync.observability.metrics.snapshot import BREAKER_CODES, HealthSnapshot, load_health
from donor_sync.observability.quality.scorecard import STAGE as QUALITY_STAGE
from donor_sync.observability.quality.scorecard import compute_scorecard, scorecard_figures
from donor_sync.observability.quality.settings import QualitySettings
from donor_sync.privacy.consent.vocabulary import PURPOSES

log = logging.getLogger(__name__)

#: The channel the consent gauges count (what the email platforms and journeys need).
CONSENT_GAUGE_CHANNEL = "email"
#: Prefix of outbound event subscribers' destination names (docs/events.md).
EVENT_DESTINATION_PREFIX = "webhook_"
_SCOPE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


@dataclass(frozen=True)
class RunWindow:
    """The instants a run covers: ``started_at`` .. ``end`` (``finished_at``, or now while open)."""

    run_id: UUID
    dag_id: str
    started_at: datetime
    end: datetime
    finished: bool


def read_window(conn: psycopg.Connection, run_id: UUID) -> RunWindow:
    """Return a run's window.

    :raises LookupError: when the run does not exist.
    """
    row = conn.execute(
        "SELECT dag_id, started_at, coalesce(finished_at, now()), finished_at IS NOT NULL"
        " FROM sync.runs WHERE run_id = %s",
        (run_id,),
    ).fetchone()
    if row is None:
        raise LookupError(f"no run {run_id} in sync.runs")
    return RunWindow(run_id, str(row[0]), row[1], row[2], bool(row[3]))


def _params(w: RunWindow, **extra: object) -> dict[str, object]:
    return {"run": w.run_id, "start": w.started_at, "end": w.end, **extra}


def _ratio(numerator: int | Decimal, denominator: int | Decimal) -> float | None:
    return None if not denominator else min(1.0, max(0.0, float(Decimal(numerator) / Decimal(denominator))))


def _with_rate(
    stage: str, scope: str, counts: Sequence[tuple[str, int]], good: int, bad: int
) -> list[Figure]:
    figures = [Figure(stage, scope, metric, value, "records") for metric, value in counts]
    rate = _ratio(good, good + bad)
    if rate is not None:
        figures.append(Figure(stage, scope, "success_rate", rate, "ratio"))
    return figures


# -- what the run knows about its destinations ---------------------------------------------------


def _destinations(conn: psycopg.Connection, w: RunWindow) -> list[str]:
    """Every destination the engine has pushed to (each has a breaker row) or this run pushed."""
    rows = conn.execute(
        "SELECT destination::text FROM sync.circuit_breakers"
        " UNION SELECT scope FROM sync.run_metrics WHERE run_id = %(run)s AND stage = 'push' AND scope <> ''"
        " ORDER BY 1",
        _params(w),
    ).fetchall()
    return [str(r[0]) for r in rows]


def _push_totals(conn: psycopg.Connection, w: RunWindow) -> dict[tuple[str, str], Decimal]:
    rows = conn.execute(
        "SELECT scope, metric, sum(value) FROM sync.run_metrics"
        " WHERE run_id = %(run)s AND stage = 'push' AND metric IN ('succeeded', 'failed', 'calls')"
        " GROUP BY scope, metric",
        _params(w),
    ).fetchall()
    return {(str(scope), str(metric)): Decimal(total) for scope, metric, total in rows}


# -- the figures ----------------------------------------------------------------------------------

#: One pass over the window's rows, grouped per record (destination, entity, gift key): the run's
#: succeeded pushes (this run's push figures name their destinations) and the gifts that landed
#: first in the window. A gift counts when the run pushed it at or before it first landed. Grouping
#: instead of a join keeps the cost linear whatever the planner estimates: a correlated lookup of
#: each landed gift's pushes, planned on a push_log that was never analyzed, walked every push of
#: the destination for each gift (45 s for 10,000 gifts).
_LATENCY = """
WITH window_rows AS (
    SELECT p.destination::text AS destination, p.entity, p.record_key,
           p.pushed_at, NULL::timestamptz AS landed_at, NULL::timestamptz AS gift_at
    FROM sync.push_log p
    WHERE p.destination = ANY(%(dests)s::text[]) AND p.pushed_at BETWEEN %(start)s AND %(end)s
      AND p.run_id = %(run)s AND p.outcome = 'succeeded'
    UNION ALL
    SELECT gd.destination::text, gd.entity, g.gift_key, NULL, gd.first_pushed_at, g.gift_at
    FROM core.gift_destinations gd
    JOIN core.gifts g ON g.gift_id = gd.gift_id
    WHERE gd.first_pushed_at BETWEEN %(start)s AND %(end)s
), per_record AS (
    SELECT destination, min(pushed_at) AS pushed_at, min(landed_at) AS landed_at, min(gift_at) AS gift_at
    FROM window_rows
    GROUP BY destination, entity, record_key
)
SELECT destination, count(*),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY seconds),
       max(seconds)
FROM (
    SELECT destination, greatest(0, extract(epoch FROM landed_at - gift_at))::float8 AS seconds
    FROM per_record
    WHERE pushed_at <= landed_at
) landed
GROUP BY destination
ORDER BY destination
"""


def _latency(conn: psycopg.Connection, w: RunWindow, destinations: Sequence[str]) -> list[Figure]:
    figures: list[Figure] = []
    rows = conn.execute(_LATENCY, _params(w, dests=list(destinations))).fetchall()
    for destination, landed, p50, p95, top in rows:
        figures += [
            Figure("latency", destination, "gifts_landed", int(landed), "records"),
            Figure("latency", destination, "gift_to_destination_p50", float(p50), "seconds"),
            Figure("latency", destination, "gift_to_destination_p95", float(p95), "seconds"),
            Figure("latency", destination, "gift_to_destination_max", float(top), "seconds"),
        ]
    return figures


_QUOTA = """
SELECT DISTINCT ON (vendor) vendor, quota_limit, quota_remaining
FROM (
    SELECT DISTINCT ON (vendor, connection_id, quota_window)
           vendor::text AS vendor, quota_window, quota_limit, quota_remaining
    FROM sync.api_usage
    WHERE vendor = ANY(%(vendors)s::text[]) AND observed_at BETWEEN %(start)s AND %(end)s
      AND quota_limit > 0 AND quota_remaining IS NOT NULL
    ORDER BY vendor, connection_id, quota_window, observed_at DESC
) latest
ORDER BY vendor, quota_remaining::numeric / quota_limit, quota_window
"""


def _api(
    conn: psycopg.Connection, w: RunWindow, destinations: Sequence[str], push: dict[tuple[str, str], Decimal]
) -> list[Figure]:
    quotas = {
        str(vendor): (int(limit), int(remaining))
        for vendor, limit, remaining in conn.execute(
            _QUOTA, _params(w, vendors=list(destinations))
        ).fetchall()
    }
    calls = {scope: int(total) for (scope, metric), total in push.items() if metric == "calls"}
    figures: list[Figure] = []
    for vendor in sorted(set(quotas) | {v for v, n in calls.items() if n}):
        figures.append(Figure("api", vendor, "calls", calls.get(vendor, 0), "calls"))
        if vendor in quotas:
            limit, remaining = quotas[vendor]
            figures += [
                Figure("api", vendor, "quota_limit", limit, "count"),
                Figure("api", vendor, "quota_remaining", remaining, "count"),
                Figure(
                    "api", vendor, "quota_remaining_ratio", _ratio(max(remaining, 0), limit) or 0.0, "ratio"
                ),
            ]
    return figures


def _breakers(conn: psycopg.Connection) -> list[Figure]:
    rows = conn.execute("SELECT destination::text, state FROM sync.circuit_breakers ORDER BY 1").fetchall()
    return [Figure("breaker", str(d), "state", BREAKER_CODES[str(state)], "count") for d, state in rows]


_CONSENT = """
SELECT p.purpose,
       count(s.donor_id) FILTER (WHERE s.status IN ('opt_in', 'soft_opt_in')),
       count(s.donor_id) FILTER (WHERE s.status = 'opt_out'),
       (SELECT count(*) FROM core.donors WHERE merged_into IS NULL AND erased_at IS NULL)
FROM unnest(%(purposes)s::text[]) AS p(purpose)
LEFT JOIN core.consent_state s ON s.purpose = p.purpose AND s.channel = %(channel)s
GROUP BY p.purpose
ORDER BY p.purpose
"""


def _consent(conn: psycopg.Connection, w: RunWindow) -> list[Figure]:
    figures: list[Figure] = []
    params = _params(w, purposes=list(PURPOSES), channel=CONSENT_GAUGE_CHANNEL)
    for purpose, opted_in, opted_out, live in conn.execute(_CONSENT, params).fetchall():
        figures += [
            Figure("consent", purpose, "donors_opted_in", int(opted_in), "count"),
            Figure("consent", purpose, "donors_opted_out", int(opted_out), "count"),
            Figure(
                "consent", purpose, "donors_no_consent", max(0, int(live) - opted_in - opted_out), "count"
            ),
        ]
    row = conn.execute(
        "SELECT count(*) FROM core.consent_events WHERE recorded_at BETWEEN %(start)s AND %(end)s", params
    ).fetchone()
    figures.append(Figure("consent", "", "events_recorded", int(row[0]) if row else 0, "records"))
    return figures


def _suppressions(conn: psycopg.Connection) -> list[Figure]:
    rows = conn.execute(
        "SELECT reason_code, count(*) FROM core.suppressions WHERE lifted_at IS NULL GROUP BY 1 ORDER BY 1"
    ).fetchall()
    return [Figure("suppressions", str(reason), "active", int(n), "count") for reason, n in rows]


def _journeys(conn: psycopg.Connection, w: RunWindow) -> list[Figure]:
    rows = conn.execute(
        "SELECT journey_id,"
        " count(*) FILTER (WHERE status NOT IN ('suppressed', 'capped')),"
        " count(*) FILTER (WHERE status IN ('suppressed', 'capped'))"
        " FROM sync.journey_enrollments WHERE decided_at BETWEEN %(start)s AND %(end)s"
        " GROUP BY journey_id ORDER BY journey_id",
        _params(w),
    ).fetchall()
    figures: list[Figure] = []
    for journey, entered, suppressed in rows:
        figures += [
            Figure("journeys", str(journey), "entered", int(entered), "records"),
            Figure("journeys", str(journey), "suppressed", int(suppressed), "records"),
        ]
    return figures


def _webhooks(conn: psycopg.Connection, w: RunWindow) -> list[Figure]:
    rows = conn.execute(
        "SELECT source::text, count(*),"
        " count(*) FILTER (WHERE processed_at IS NOT NULL),"
        " count(*) FILTER (WHERE processed_at IS NULL AND process_attempts > 0),"
        " count(*) FILTER (WHERE processed_at IS NULL AND process_attempts = 0)"
        " FROM raw.webhook_inbox WHERE received_at BETWEEN %(start)s AND %(end)s"
        " GROUP BY 1 ORDER BY 1",
        _params(w),
    ).fetchall()
    figures: list[Figure] = []
    for source, received, accepted, rejected, pending in rows:
        counts = [("received", int(received)), ("accepted", int(accepted)), ("rejected", int(rejected)),
                  ("pending", int(pending))]  # fmt: skip
        figures += _with_rate("webhooks", str(source), counts, int(accepted), int(rejected))
    return figures


def _events(conn: psycopg.Connection, w: RunWindow, destinations: Sequence[str]) -> list[Figure]:
    subscribers = [d for d in destinations if d.startswith(EVENT_DESTINATION_PREFIX)]
    if not subscribers:
        return []
    rows = conn.execute(
        "SELECT destination::text,"
        " count(*) FILTER (WHERE outcome = 'succeeded'), count(*) FILTER (WHERE outcome = 'failed')"
        " FROM sync.push_log"
        " WHERE destination = ANY(%(dests)s::text[]) AND pushed_at BETWEEN %(start)s AND %(end)s"
        "   AND run_id = %(run)s"
        " GROUP BY 1 ORDER BY 1",
        _params(w, dests=subscribers),
    ).fetchall()
    figures: list[Figure] = []
    for destination, delivered, failed in rows:
        counts = [("delivered", int(delivered)), ("failed", int(failed))]
        figures += _with_rate("events", str(destination), counts, int(delivered), int(failed))
    return figures


def _dead_letters(conn: psycopg.Connection, w: RunWindow, destinations: Sequence[str]) -> list[Figure]:
    open_rows = conn.execute(
        "SELECT destination::text, count(*),"
        " greatest(0, extract(epoch FROM %(end)s - min(first_failed_at)))::float8"
        " FROM sync.dead_letters WHERE status = 'open' GROUP BY 1",
        _params(w),
    ).fetchall()
    new_rows = conn.execute(
        "SELECT destination::text, count(*) FROM sync.dead_letters"
        " WHERE created_at BETWEEN %(start)s AND %(end)s GROUP BY 1",
        _params(w),
    ).fetchall()
    opened = {str(d): (int(n), float(age)) for d, n, age in open_rows}
    created = {str(d): int(n) for d, n in new_rows}
    figures: list[Figure] = []
    for destination in sorted(set(destinations) | set(opened) | set(created)):
        count, age = opened.get(destination, (0, None))
        figures.append(Figure("dead_letters", destination, "open", count, "count"))
        if age is not None:
            figures.append(Figure("dead_letters", destination, "oldest_open_age", age, "seconds"))
        figures.append(Figure("dead_letters", destination, "new", created.get(destination, 0), "records"))
    return figures


def _outcome(push: dict[tuple[str, str], Decimal]) -> list[Figure]:
    figures: list[Figure] = []
    for destination in sorted({scope for scope, _ in push}):
        succeeded = push.get((destination, "succeeded"), Decimal(0))
        rate = _ratio(succeeded, succeeded + push.get((destination, "failed"), Decimal(0)))
        if rate is not None:
            figures.append(Figure("outcome", destination, "success_rate", rate, "ratio"))
    return figures


def _valid(figures: Iterable[Figure]) -> list[Figure]:
    """Drop (and log) figures whose scope sync.run_metrics would refuse (e.g. a journey id over 63 chars)."""
    kept: list[Figure] = []
    for f in figures:
        if f.scope == "" or _SCOPE.match(f.scope):
            kept.append(f)
        else:
            log.warning("health: %s/%s left out: scope is not a valid metric scope", f.stage, f.metric)
    return kept


def compute_run_health(conn: psycopg.Connection, run_id: UUID) -> list[Figure]:
    """Compute every health figure of a run but the scorecard (nothing is written).

    :raises LookupError: when the run does not exist.
    """
    w = read_window(conn, run_id)
    destinations = _destinations(conn, w)
    push = _push_totals(conn, w)
    figures = [
        *_latency(conn, w, destinations),
        *_api(conn, w, destinations, push),
        *_breakers(conn),
        *_consent(conn, w),
        *_suppressions(conn),
        *_journeys(conn, w),
        *_webhooks(conn, w),
        *_events(conn, w, destinations),
        *_dead_letters(conn, w, destinations),
        *_outcome(push),
    ]
    conn.commit()
    return _valid(figures)


def collect_run_health(
    conn: psycopg.Connection,
    run_id: UUID,
    *,
    quality_settings: QualitySettings | None = None,
    task_id: str | None = None,
) -> HealthSnapshot:
    """Compute a run's health figures, record them (replacing earlier ones), and return the snapshot.

    Idempotent: collecting again over the same state records the same rows. The snapshot is read
    back from what was recorded, with the figures the stages recorded themselves (counts). When
    quality.yaml is invalid the other figures are still recorded before the error is raised (the
    task fails, and says why, without losing the run's health).

    :param quality_settings: the scorecard settings; default: ``include/mappings/quality.yaml``.
    :param task_id: the Airflow task recording them (informational).
    :raises LookupError: when the run does not exist.
    :raises donor_sync.errors.ConfigError: quality.yaml is invalid (after recording the rest).
    """
    figures = compute_run_health(conn, run_id)
    try:
        card = compute_scorecard(conn, run_id, settings=quality_settings)
    except ConfigError:
        write_figures(conn, run_id, figures, owned=OWNED - OWNED_QUALITY, task_id=task_id)
        raise
    figures += _valid(Figure(QUALITY_STAGE, *row) for row in scorecard_figures(card))
    written = write_figures(conn, run_id, figures, task_id=task_id)
    log.info("health of run %s: %s figure(s) recorded", run_id, written)
    return load_health(conn, run_id)
