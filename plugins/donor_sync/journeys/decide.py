"""Decide who enters which journey, and queue their triggers: the ``journeys`` stage of a run.

One transaction, serialized by an advisory lock (two runs never decide at once):

1. Reconcile enrollments with their trigger rows (:mod:`.outcome`).
2. Candidates (:mod:`.candidates`): new entries since the watermark, and pending enrollments
   whose trigger has not gone yet.
3. The suppression gate and the frequency cap (:mod:`.gate`), then the destination's privacy
   policy (``include/mappings/privacy/destinations.yaml``: residency, tombstones, its own consent
   and suppression rules), so a trigger never goes where a member upsert may not.
4. Experiments (:mod:`.assign`): a held-out donor is enrolled ``holdout`` and never triggered.
5. Quiet hours (:mod:`.quiet`): an entry inside the donor's quiet window stays ``pending``
   (reason ``quiet_hours``) without a trigger; the next run after the window queues it.
6. Enrollments are inserted with ``ON CONFLICT (gift_key, journey_id) DO NOTHING``; only the rows
   this run inserted get a trigger in ``sync.outbox`` (entity ``journey_trigger``, operation
   ``create``, depending on the donor's member or user record). A pending enrollment the gate now
   refuses is ``suppressed`` and its queued trigger canceled.
7. The watermark (``sync.watermarks`` source ``journeys``, stream ``gifts``) moves to when the
   gifts were read.

``defer`` names journeys not to decide this run (the ``journeys`` task passes those whose email
platform's pull-back did not succeed, :mod:`.pullbacks`): neither their new entries nor their
pending enrollments are looked at, and the watermark stays where it was, so a later run decides
the same gifts (the others' entries are enrolled already and are not candidates again).

:func:`plan` runs the very same steps and rolls everything back: the dry run.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row

from donor_sync.journeys import candidates as cand
from donor_sync.journeys.assign import HOLDOUT, assign
from donor_sync.journeys.gate import apply_cap, apply_gate
from donor_sync.journeys.outcome import reconcile
from donor_sync.journeys.payloads import ENTITY, build_payload
from donor_sync.journeys.quiet import ZoneResolver, in_quiet_hours
from donor_sync.journeys.rules import Journey, JourneyRules, load_rules
from donor_sync.privacy.gate.core import block_reason
from donor_sync.privacy.gate.facts import any_tombstones, read_facts
from donor_sync.privacy.gate.policy import PrivacyPolicy, load_policy
from donor_sync.privacy.keys import KeyRing, KeySource, default_key_source

log = logging.getLogger(__name__)

WATERMARK_SOURCE = "journeys"
WATERMARK_STREAM = "gifts"
QUIET_HOURS = "quiet_hours"
_LOCK_KEY = "donor_sync.journeys.decide"
#: The privacy gate's reasons, as enrollment reason codes (the others are kept as they are).
_PRIVACY_REASONS = {"tombstoned": "erased", "unknown_donor": "erased"}


@dataclass(frozen=True)
class Entry:
    """One decision: a gift and a journey, what happened, and why (ids and codes only)."""

    gift_key: str
    journey_id: str
    donor_id: str
    destination: str
    status: str
    reason_code: str | None = None
    experiment_id: str | None = None
    variant: str | None = None
    outbox_id: int | None = None
    #: True for an enrollment decided before and checked again this run.
    rechecked: bool = False


@dataclass
class DecideReport:
    """What a decision run did (or, dry, would do)."""

    dry_run: bool
    now: datetime
    since: datetime | None
    entries: list[Entry] = field(default_factory=list)
    reconciled: dict[str, int] = field(default_factory=dict)
    triggers_queued: int = 0
    #: Journeys not decided this run, with the platforms whose pull-back each waits for.
    deferred: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def counts(self) -> dict[str, dict[str, int]]:
        """Return per journey: entries per status, and suppressed/capped/waiting entries per reason."""
        out: dict[str, Counter[str]] = {}
        for e in self.entries:
            bucket = out.setdefault(e.journey_id, Counter())
            bucket[e.status] += 1
            if e.reason_code:
                bucket[f"reason:{e.reason_code}"] += 1
        return {journey: dict(sorted(c.items())) for journey, c in sorted(out.items())}

    def totals(self) -> dict[str, int]:
        """Return entries per status over every journey."""
        return dict(sorted(Counter(e.status for e in self.entries).items()))

    def summary(self) -> str:
        """Return one line of counts."""
        totals = ", ".join(f"{k} {v}" for k, v in self.totals().items()) or "nothing to decide"
        what = "would queue" if self.dry_run else "queued"
        line = f"journeys: {totals}; {what} {self.triggers_queued} trigger(s)"
        if self.deferred:
            line += f"; deferred {len(self.deferred)} journey(s): {', '.join(sorted(self.deferred))}"
        return line


def _read_since(conn: psycopg.Connection) -> datetime | None:
    row = conn.execute(
        "SELECT cursor_ts - overlap FROM sync.watermarks WHERE source = %s AND stream = %s",
        (WATERMARK_SOURCE, WATERMARK_STREAM),
    ).fetchone()
    return None if row is None else row[0]


def _advance(conn: psycopg.Connection, read_at: datetime, run_id: UUID | None) -> None:
    conn.execute(
        "INSERT INTO sync.watermarks AS w (source, stream, cursor_ts, run_id)"
        " VALUES (%(s)s, %(t)s, %(ts)s, (SELECT run_id FROM sync.runs WHERE run_id = %(run)s::uuid))"
        " ON CONFLICT (source, stream) DO UPDATE SET cursor_ts = greatest(w.cursor_ts, EXCLUDED.cursor_ts),"
        " run_id = coalesce(EXCLUDED.run_id, w.run_id)",
        {"s": WATERMARK_SOURCE, "t": WATERMARK_STREAM, "ts": read_at, "run": str(run_id) if run_id else None},
    )


_ROWS = f"""
SELECT c.gift_key, c.journey_id, c.donor_id::text AS donor_id, c.destination, c.enrollment_id, c.outbox_id,
       c.reason, d.email, d.time_zone, d.country_code, d.region,
       g.amount, g.currency, g.amount_base, g.gift_date, g.designation, g.campaign, g.tribute_type,
       g.recurring_plan_id IS NOT NULL AS is_recurring, p.interval_unit AS recurring_interval,
       g.installment_number, g.source,
       e.experiment_id AS enrolled_experiment, e.variant AS enrolled_variant
FROM {cand.CANDIDATES_TABLE} c
JOIN core.donors d ON d.donor_id = c.donor_id
JOIN core.gifts g ON g.gift_key = c.gift_key
LEFT JOIN core.recurring_plans p ON p.recurring_plan_id = g.recurring_plan_id
LEFT JOIN sync.journey_enrollments e ON e.enrollment_id = c.enrollment_id
ORDER BY c.journey_id, c.gift_key
"""


def _sticky_variants(
    conn: psycopg.Connection, experiment_id: str, donor_ids: Iterable[str]
) -> dict[str, str]:
    """Return the arm each donor already got in an experiment (their first enrollment in it)."""
    rows = conn.execute(
        "SELECT DISTINCT ON (coalesce(d.merged_into, d.donor_id)) coalesce(d.merged_into, d.donor_id)::text,"
        " e.variant FROM sync.journey_enrollments e JOIN core.donors d ON d.donor_id = e.donor_id"
        " WHERE e.experiment_id = %s AND coalesce(d.merged_into, d.donor_id) = ANY(%s::uuid[])"
        " ORDER BY coalesce(d.merged_into, d.donor_id), e.decided_at, e.enrollment_id",
        (experiment_id, sorted(set(donor_ids))),
    ).fetchall()
    return dict(rows)


def _privacy_verdicts(
    conn: psycopg.Connection,
    rows: list[dict[str, Any]],
    policy: PrivacyPolicy | None,
    keys: KeySource,
) -> dict[tuple[str, str], str]:
    """Return the privacy policy's refusal per (destination, donor id) of the rows still allowed."""
    if policy is None:
        return {}
    refused: dict[tuple[str, str], str] = {}
    by_destination: dict[str, set[str]] = {}
    for row in rows:
        if row["reason"] is None:
            by_destination.setdefault(row["destination"], set()).add(row["donor_id"])
    ring: KeyRing | None = None
    if by_destination and any_tombstones(conn):
        ring = keys.ring("tombstone")
    for destination, donor_ids in by_destination.items():
        dest_policy = policy.destinations.get(destination)
        if dest_policy is None:
            refused.update({(destination, d): "no_privacy_policy" for d in donor_ids})
            continue
        facts = read_facts(conn, destination, donor_ids, tombstone_ring=ring)
        for donor_id in donor_ids:
            reason = block_reason(facts.get(donor_id), dest_policy, policy.residency)
            if reason is not None:
                refused[(destination, donor_id)] = _PRIVACY_REASONS.get(reason, reason)
    return refused


@dataclass
class _Outcome:
    row: dict[str, Any]
    status: str
    reason: str | None = None
    experiment_id: str | None = None
    variant: str | None = None
    payload: dict[str, Any] | None = None


def _decide_row(
    row: dict[str, Any],
    journey: Journey,
    rules: JourneyRules,
    *,
    privacy_reason: str | None,
    ring: KeyRing | None,
    sticky: Mapping[tuple[str, str], str],
    zones: ZoneResolver,
    now: datetime,
) -> _Outcome:
    reason = row["reason"] or privacy_reason
    if reason == "frequency_cap":
        return _Outcome(row, "capped", reason)
    if reason is not None:
        return _Outcome(row, "suppressed", reason)
    experiment_id = variant = None
    destination = journey.destination
    if row["enrollment_id"] is not None:
        experiment_id, variant = row["enrolled_experiment"], row["enrolled_variant"]
    elif journey.experiment is not None:
        assert ring is not None
        experiment_id = journey.experiment.id
        variant = sticky.get((experiment_id, row["donor_id"])) or assign(
            ring, journey.experiment, row["donor_id"]
        )
    if variant == HOLDOUT:
        return _Outcome(row, "holdout", None, experiment_id, variant)
    if journey.experiment is not None and variant is not None:
        arm = next((v for v in journey.experiment.variants if v.name == variant), None)
        if arm is not None and arm.destination is not None:
            destination = arm.destination
    if row["outbox_id"] is not None:  # already queued; the gate let it stay
        return _Outcome(row, "pending", None, experiment_id, variant)
    window = rules.quiet_hours_of(journey)
    if window is not None:
        zone = zones.zone(row["time_zone"], row["country_code"], row["region"])
        if in_quiet_hours(window, now, zone):
            return _Outcome(row, "pending", QUIET_HOURS, experiment_id, variant)
    payload = build_payload(
        journey,
        destination=destination,
        donor_id=row["donor_id"],
        email=row["email"],
        gift=row,
        experiment_id=experiment_id,
        variant=variant,
    )
    return _Outcome(row, "pending", None, experiment_id, variant, payload)


_STAGE = """
CREATE TEMP TABLE _journey_out (
    gift_key text NOT NULL, journey_id text NOT NULL, donor_id uuid NOT NULL, destination text NOT NULL,
    status text NOT NULL, reason text, experiment_id text, variant text, payload jsonb,
    depends_on jsonb NOT NULL, priority integer NOT NULL, enrollment_id bigint, outbox_id bigint,
    inserted boolean NOT NULL DEFAULT false
) ON COMMIT DROP
"""

_INSERT_ENROLLMENTS = """
WITH ins AS (
    INSERT INTO sync.journey_enrollments (gift_key, journey_id, donor_id, destination, status, reason_code,
                                          experiment_id, variant, decided_at)
    SELECT gift_key, journey_id, donor_id, destination, status, reason, experiment_id, variant, %(now)s
    FROM _journey_out WHERE enrollment_id IS NULL
    ORDER BY gift_key, journey_id
    ON CONFLICT (gift_key, journey_id) DO NOTHING
    RETURNING enrollment_id, gift_key, journey_id
)
UPDATE _journey_out o SET enrollment_id = ins.enrollment_id, inserted = true
FROM ins WHERE (o.gift_key, o.journey_id) = (ins.gift_key, ins.journey_id)
"""

_QUEUE_TRIGGERS = """
WITH q AS (
    INSERT INTO sync.outbox (destination, entity, record_key, donor_id, operation, payload, payload_sha256,
                             priority, depends_on, run_id)
    SELECT destination, %(entity)s, gift_key || ':' || journey_id, donor_id, 'create', payload,
           core.jsonb_sha256(payload), priority, depends_on, %(run)s::uuid
    FROM _journey_out WHERE payload IS NOT NULL AND inserted
    ORDER BY gift_key, journey_id
    ON CONFLICT (destination, entity, record_key) WHERE state = 'pending' DO NOTHING
    RETURNING outbox_id, destination, record_key
)
UPDATE _journey_out o SET outbox_id = q.outbox_id
FROM q WHERE q.destination = o.destination AND q.record_key = o.gift_key || ':' || o.journey_id
"""

_LINK = """
UPDATE sync.journey_enrollments e SET outbox_id = o.outbox_id, reason_code = NULL
FROM _journey_out o WHERE e.enrollment_id = o.enrollment_id AND o.outbox_id IS NOT NULL
"""

# Pending enrollments decided before: suppressed now (their queued trigger canceled), or still
# waiting for quiet hours, or released from them.
_RECHECK = """
UPDATE sync.journey_enrollments e
SET status = o.status, reason_code = o.reason
FROM _journey_out o
WHERE e.enrollment_id = o.enrollment_id AND NOT o.inserted AND e.status = 'pending'
  AND (e.status, e.reason_code) IS DISTINCT FROM (o.status, o.reason)
  AND (o.status <> 'suppressed' OR e.outbox_id IS NULL
       OR EXISTS (SELECT 1 FROM sync.outbox x WHERE x.outbox_id = e.outbox_id AND x.state = 'canceled'))
"""
_CANCEL = """
UPDATE sync.outbox x SET state = 'canceled', error_code = 'JOURNEY_SUPPRESSED',
       error_message = 'the journey gate refused the donor before the trigger was sent: ' || o.reason
FROM _journey_out o, sync.journey_enrollments e
WHERE e.enrollment_id = o.enrollment_id AND NOT o.inserted AND o.status = 'suppressed'
  AND x.outbox_id = e.outbox_id AND x.state = 'pending'
"""


def _write(
    conn: psycopg.Connection,
    outcomes: list[_Outcome],
    rules: JourneyRules,
    *,
    now: datetime,
    run_id: UUID | None,
) -> int:
    """Insert enrollments and their triggers, update re-checked ones; return triggers queued."""
    conn.execute("DROP TABLE IF EXISTS _journey_out")
    conn.execute(_STAGE)
    records = []
    for o in outcomes:
        settings = rules.destination_settings(o.row["destination"])
        depends = (
            [{"entity": settings.depends_on_entity, "record_key": o.row["donor_id"]}]
            if settings.depends_on_entity
            else []
        )
        records.append(
            (
                o.row["gift_key"], o.row["journey_id"], o.row["donor_id"], o.row["destination"], o.status,
                o.reason, o.experiment_id, o.variant,
                json.dumps(o.payload, separators=(",", ":")) if o.payload is not None else None,
                json.dumps(depends), settings.outbox_priority, o.row["enrollment_id"],
            )
        )  # fmt: skip
    if records:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO _journey_out (gift_key, journey_id, donor_id, destination, status, reason,"
                " experiment_id, variant, payload, depends_on, priority, enrollment_id)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s, %s)",
                records,
            )
    # Re-checked enrollments with no trigger yet that may now go: mark them "inserted" for queueing.
    conn.execute(
        "UPDATE _journey_out SET inserted = true WHERE enrollment_id IS NOT NULL AND payload IS NOT NULL"
    )
    conn.execute(_INSERT_ENROLLMENTS, {"now": now})
    queued = conn.execute(
        _QUEUE_TRIGGERS, {"entity": ENTITY, "run": str(run_id) if run_id else None}
    ).rowcount
    conn.execute(_LINK)
    conn.execute(_CANCEL)
    conn.execute(_RECHECK)
    return queued


def _run(
    conn: psycopg.Connection,
    rules: JourneyRules,
    *,
    now: datetime,
    since: datetime | None,
    use_watermark: bool,
    reporting_currency: str,
    org_time_zone: str,
    privacy_policy: PrivacyPolicy | None,
    keys: KeySource,
    run_id: UUID | None,
    dry_run: bool,
    defer: Mapping[str, tuple[str, ...]],
) -> DecideReport:
    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (_LOCK_KEY,))
    clock = conn.execute("SELECT clock_timestamp()").fetchone()
    read_at: datetime = clock[0] if clock else now
    if use_watermark and since is None:
        since = _read_since(conn)
    report = DecideReport(dry_run=dry_run, now=now, since=since)
    report.deferred = {j.id: tuple(defer[j.id]) for j in rules.journeys if j.enabled and j.id in defer}
    only = {j.id for j in rules.journeys if j.enabled and j.id not in defer} if report.deferred else None
    report.reconciled = reconcile(conn)
    cand.create_work_tables(conn, rules)
    cand.find_new(conn, rules, since=since, now=now, reporting_currency=reporting_currency, only=only)
    cand.add_pending(conn, only=only)
    apply_gate(conn, now=now, adult_age=rules.defaults.adult_age)
    apply_cap(conn, now=now)
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(_ROWS).fetchall()
    privacy = _privacy_verdicts(conn, rows, privacy_policy, keys)
    journeys = {j.id: j for j in rules.journeys}
    ring = keys.ring("pseudonym") if any(j.experiment for j in rules.journeys) else None
    if ring is None and any(j.experiment for j in rules.journeys):
        from donor_sync.errors import ConfigError

        raise ConfigError("journeys: experiments need the 'pseudonym' key ring (docs/privacy.md)")
    sticky: dict[tuple[str, str], str] = {}
    for journey in rules.journeys:
        if journey.experiment is not None:
            ids = [
                r["donor_id"] for r in rows if r["journey_id"] == journey.id and r["enrollment_id"] is None
            ]
            if ids:
                found = _sticky_variants(conn, journey.experiment.id, ids)
                sticky.update({(journey.experiment.id, d): v for d, v in found.items()})
    zones = ZoneResolver(rules.time_zones, org_time_zone)
    outcomes = []
    for row in rows:
        journey = journeys[row["journey_id"]]
        outcome = _decide_row(
            row, journey, rules,
            privacy_reason=privacy.get((row["destination"], row["donor_id"])),
            ring=ring, sticky=sticky, zones=zones, now=now,
        )  # fmt: skip
        if journey.experiment is not None and outcome.variant is not None:
            sticky.setdefault((journey.experiment.id, row["donor_id"]), outcome.variant)
        outcomes.append(outcome)
    report.triggers_queued = _write(conn, outcomes, rules, now=now, run_id=run_id)
    queued = {
        (g, j): (o, i)
        for g, j, o, i in conn.execute(
            "SELECT gift_key, journey_id, outbox_id, inserted FROM _journey_out"
        ).fetchall()
    }
    for o in outcomes:
        outbox_id, inserted = queued.get((o.row["gift_key"], o.row["journey_id"]), (None, False))
        new = o.row["enrollment_id"] is None
        if new and not inserted:
            continue  # another run enrolled it first
        report.entries.append(
            Entry(
                gift_key=o.row["gift_key"], journey_id=o.row["journey_id"], donor_id=o.row["donor_id"],
                destination=o.row["destination"], status=o.status, reason_code=o.reason,
                experiment_id=o.experiment_id, variant=o.variant,
                outbox_id=outbox_id or o.row["outbox_id"], rechecked=not new,
            )
        )  # fmt: skip
    if not dry_run and not report.deferred:  # deferred journeys read the same gifts next run
        _advance(conn, read_at, run_id)
    return report


def decide(
    conn: psycopg.Connection,
    *,
    rules: JourneyRules | None = None,
    now: datetime | None = None,
    since: datetime | None = None,
    use_watermark: bool = True,
    reporting_currency: str | None = None,
    org_time_zone: str | None = None,
    privacy_policy: PrivacyPolicy | None = None,
    keys: KeySource | None = None,
    run_id: UUID | None = None,
    dry_run: bool = False,
    defer: Mapping[str, Iterable[str]] | None = None,
) -> DecideReport:
    """Decide and (unless ``dry_run``) commit: enrollments, triggers and the watermark.

    :param now: the decision instant (quiet hours, caps, gift age); default: the current time.
    :param since: start of the gift window; default: the journeys watermark minus its overlap.
    :param use_watermark: False: ignore the watermark (only the gift-age bound limits the window).
    :param reporting_currency: of ``major_gift`` thresholds and amounts; default: giving.yaml's.
    :param org_time_zone: the last time-zone fallback; default: giving.yaml's.
    :param privacy_policy: the destination privacy policy; default: the shipped one.
    :param keys: key rings (``pseudonym`` for experiments, ``tombstone``); default: the configured ones.
    :param defer: journey id -> why it waits (the platforms whose pull-back failed): those journeys
        are not decided, and the watermark does not move (see the module's docstring).
    """
    rules = rules or load_rules()
    if reporting_currency is None or org_time_zone is None:
        from donor_sync.resolve.fiscal import load_giving_settings

        giving = load_giving_settings()
        reporting_currency = reporting_currency or giving.reporting_currency
        org_time_zone = org_time_zone or giving.time_zone
    policy = privacy_policy if privacy_policy is not None else load_policy()
    with conn.transaction(force_rollback=dry_run):
        report = _run(
            conn, rules,
            now=now or datetime.now(UTC), since=since, use_watermark=use_watermark,
            reporting_currency=reporting_currency, org_time_zone=org_time_zone,
            privacy_policy=policy, keys=keys or default_key_source(), run_id=run_id, dry_run=dry_run,
            defer={j: tuple(why) for j, why in (defer or {}).items()},
        )  # fmt: skip
    if not dry_run:
        log.info("%s", report.summary())
    return report


def plan(conn: psycopg.Connection, **kwargs: Any) -> DecideReport:
    """Return what :func:`decide` would do, writing nothing (everything is rolled back)."""
    return decide(conn, dry_run=True, **kwargs)
