"""Which journeys may be decided this run: those whose email platforms' pull-backs are current.

The ``pull_<platform>_unsubscribes`` tasks of ``donations_hourly`` turn what donors did at
Mailchimp and Braze (unsubscribes, cleaned addresses, complaints) into consent events and
suppressions before the ``journeys`` task reads them. Each records its outcome for the run in
``sync.run_metrics`` (stage ``pullback``, scope the platform: ``succeeded``/``failed`` 1 or 0, or
``disabled`` 1 when delivery.yaml switches the platform off). A pull-back that did not succeed
this run -- it failed, or never ran because an earlier task failed -- leaves consent stale for
what it covers (:class:`PullbackScope`), and the journeys that rely on it are *deferred*: not
decided this run, neither new entries nor the re-check of pending ones, and the journeys
watermark stays where it was, so the next run with every pull-back current decides the same
gifts (enrollment stays once only). docs/journeys.md ("When a pull-back fails") says why a
journey also waits for the other platform's pull-back when that one feeds its consent.

No Airflow here: the pull-back and journeys tasks (operators/) call these functions.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from uuid import UUID

import psycopg

from donor_sync.delivery.contracts import BRAZE, MAILCHIMP, DeliveryError
from donor_sync.journeys.rules import Journey, JourneyRules
from donor_sync.observability.runs import record_metric

log = logging.getLogger(__name__)

#: The email platforms whose pull-back runs before the journeys, in the order they are reported.
PLATFORMS: tuple[str, ...] = (MAILCHIMP, BRAZE)
#: ``sync.run_metrics`` stage of the pull-backs' outcomes (scope: the platform).
STAGE = "pullback"
SUCCEEDED = "succeeded"
FAILED = "failed"
DISABLED = "disabled"


@dataclass(frozen=True)
class PullbackScope:
    """What one platform's pull-back keeps current in consent and suppressions.

    :param consent: ``(purpose, channel)`` pairs whose opt-outs it records.
    :param suppressions: ``(reason, channel)`` pairs of the suppressions it records for every
        destination.
    """

    platform: str
    consent: frozenset[tuple[str, str]]
    suppressions: frozenset[tuple[str, str]] = frozenset()

    def feeds(self, journey: Journey, rules: JourneyRules) -> bool:
        """Whether deciding ``journey`` relies on this pull-back: the journey sends through this
        platform, or its gate reads consent or a suppression the pull-back records."""
        if journey.destination.name == self.platform:
            return True
        need = rules.consent_of(journey)
        if (need.purpose, need.channel) in self.consent:
            return True
        return any((reason, need.channel) in self.suppressions for reason in rules.suppressions_of(journey))


def scope_of(platform: str) -> PullbackScope:
    """Return what ``platform``'s pull-back covers, from its code and the shipped mapping.

    Mailchimp (``delivery/connectors/mailchimp/pullback.py``): an unsubscribe is an email opt-out
    of :data:`~donor_sync.delivery.connectors.mailchimp.pullback.UNSUBSCRIBE_PURPOSES`; cleaned
    and complained addresses are email suppressions for every destination. Braze
    (``delivery/connectors/braze/pullback.py``): the purpose and channel of each subscription
    group of ``include/mappings/destinations/braze.yaml``.
    """
    if platform == MAILCHIMP:
        from donor_sync.delivery.connectors.mailchimp.pullback import UNSUBSCRIBE_PURPOSES

        return PullbackScope(
            MAILCHIMP,
            consent=frozenset((purpose, "email") for purpose in UNSUBSCRIBE_PURPOSES),
            suppressions=frozenset({("cleaned", "email"), ("complained", "email")}),
        )
    if platform == BRAZE:
        from donor_sync.delivery.connectors.braze.subscriptions import group_purposes
        from donor_sync.delivery.mapping import load_destination

        return PullbackScope(BRAZE, consent=frozenset(group_purposes(load_destination(BRAZE)).values()))
    raise ValueError(f"{platform!r} has no pull-back (known: {', '.join(PLATFORMS)})")


def _record(
    conn: psycopg.Connection, run_id: UUID, platform: str, figures: Mapping[str, int], task_id: str
) -> None:
    for metric, value in figures.items():
        record_metric(
            conn,
            run_id,
            stage=STAGE,
            metric=metric,
            value=value,
            scope=platform,
            unit="count",
            task_id=task_id,
        )


def record_succeeded(conn: psycopg.Connection, run_id: UUID, platform: str, *, task_id: str) -> None:
    """Record that ``platform``'s pull-back succeeded this run (the caller commits)."""
    _record(conn, run_id, platform, {SUCCEEDED: 1, FAILED: 0}, task_id)


def record_disabled(conn: psycopg.Connection, run_id: UUID, platform: str, *, task_id: str) -> None:
    """Record that ``platform`` is switched off, so there was nothing to pull back (the caller commits)."""
    _record(conn, run_id, platform, {DISABLED: 1}, task_id)


def record_failed(
    conn: psycopg.Connection, run_id: UUID, platform: str, error: DeliveryError, *, task_id: str
) -> str:
    """Roll back what the failed pull-back began, record the failure, commit, log it; return a
    one-line description (platform, error class and code: no donor data, no vendor text)."""
    conn.rollback()
    _record(conn, run_id, platform, {SUCCEEDED: 0, FAILED: 1}, task_id)
    conn.commit()
    status = f", HTTP {error.http_status}" if error.http_status else ""
    what = (
        f"{platform} pull-back failed ({error.error_class}, {error.error_code or 'no code'}{status}): "
        f"{platform}'s queue and push wait for the next run, and the journeys that rely on its "
        "unsubscribes are deferred; the other destinations go on"
    )
    log.error("%s", what)
    return what


def stale_platforms(conn: psycopg.Connection, run_id: UUID) -> dict[str, str]:
    """Return the platforms whose pull-back is not current this run, with what became of it
    (``failed``, or ``not run``: an earlier task failed or it has not finished)."""
    rows = conn.execute(
        "SELECT scope, metric FROM sync.run_metrics"
        " WHERE run_id = %s AND stage = %s AND part = '' AND value > 0 AND metric IN (%s, %s, %s)",
        (run_id, STAGE, SUCCEEDED, DISABLED, FAILED),
    ).fetchall()
    seen: dict[str, set[str]] = {}
    for scope, metric in rows:
        seen.setdefault(str(scope), set()).add(str(metric))
    stale: dict[str, str] = {}
    for platform in PLATFORMS:
        found = seen.get(platform, set())
        if found & {SUCCEEDED, DISABLED}:
            continue
        stale[platform] = FAILED if FAILED in found else "not run"
    return stale


def deferrals(rules: JourneyRules, scopes: Iterable[PullbackScope]) -> dict[str, tuple[str, ...]]:
    """Return, per enabled journey that relies on one of ``scopes``, the platforms it waits for."""
    scopes = list(scopes)
    out: dict[str, tuple[str, ...]] = {}
    for journey in rules.journeys:
        if not journey.enabled:
            continue
        waits = tuple(s.platform for s in scopes if s.feeds(journey, rules))
        if waits:
            out[journey.id] = waits
    return out


def deferrals_for_run(
    conn: psycopg.Connection, run_id: UUID, rules: JourneyRules
) -> dict[str, tuple[str, ...]]:
    """Return the journeys to defer this run (journey id -> platforms whose pull-back it waits for)."""
    stale = stale_platforms(conn, run_id)
    if not stale:
        return {}
    deferred = deferrals(rules, (scope_of(platform) for platform in stale))
    for platform, what in stale.items():
        waiting = sorted(j for j, platforms in deferred.items() if platform in platforms)
        log.warning(
            "%s pull-back %s this run: %d journey(s) deferred until it succeeds: %s",
            platform,
            "failed" if what == FAILED else "did not run",
            len(waiting),
            ", ".join(waiting) or "none",
        )
    return deferred
