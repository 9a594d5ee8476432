"""One queue run of one destination: read what changed, render, classify, guard, write.

:func:`prepare` does everything up to the decision (it writes only session-local work tables), so
the dry run (:func:`donor_sync.delivery.outbox.plan.plan_destination`) and the real run
(:func:`queue_destination`) see exactly the same plan; the real run then checks the blast-radius
guard and only after it writes the outbox, the merges and the watermarks, in one transaction.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

import psycopg

from donor_sync.delivery.contracts import SOURCE_FIELDS
from donor_sync.delivery.outbox.counts import EntityCounts, add_merges, count_plan
from donor_sync.delivery.outbox.dependencies import skip_reasons, skip_unreachable
from donor_sync.delivery.outbox.guard import GuardVerdict, enforce, evaluate, landed_counts
from donor_sync.delivery.outbox.merges import (
    MergeCounts,
    PlannedMerge,
    advance_merges_watermark,
    plan_merges,
    queue_merges,
    supersede_undone,
)
from donor_sync.delivery.outbox.modes import classify
from donor_sync.delivery.outbox.queue import RecordStager, apply_plan
from donor_sync.delivery.outbox.renderer import MappedObject, Renderer
from donor_sync.delivery.outbox.scope import Scope, ScopeKind
from donor_sync.delivery.outbox.source_rows import (
    advance_watermark,
    collect_keys,
    read_rows,
    stream_of,
    watermark_since,
)
from donor_sync.delivery.outbox.work_tables import create_work_tables, drop_work_tables
from donor_sync.delivery.settings import DestinationSettings, load_delivery_settings
from donor_sync.errors import ConfigError
from donor_sync.privacy.gate import DestinationGate, load_gate

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prepared:
    """What a run of one destination would do, decided but not written."""

    destination: str
    scope: Scope
    settings: DestinationSettings
    #: Core keys considered per source kind (changed, named, or all).
    rows_read: dict[str, int]
    #: When each kind was read: where its watermark moves after a real run.
    cursors: dict[str, datetime | None]
    counts: dict[str, EntityCounts]
    merges: list[PlannedMerge]
    merges_cursor: datetime | None
    verdict: GuardVerdict
    #: The privacy gate's counts (``gate_blocked_<reason>``, ``gate_fields_withheld``).
    gate: dict[str, int] = field(default_factory=dict)
    #: Skipped records per reason (``already_sent``, ``dependency_not_sent``...).
    skips: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class QueueReport:
    """What a queue run of one destination wrote."""

    destination: str
    scope: str
    entities: dict[str, EntityCounts]
    rows_read: dict[str, int]
    merges: MergeCounts
    verdict: GuardVerdict
    #: The run went over a blast-radius limit and went ahead with approval.
    approved_over_limit: bool = False
    written: int = 0
    withdrawn: int = 0
    #: The privacy gate's counts (``gate_blocked_<reason>``, ``gate_fields_withheld``).
    gate: dict[str, int] = field(default_factory=dict)
    #: Skipped records per reason (``already_sent``, ``dependency_not_sent``...).
    skips: dict[str, int] = field(default_factory=dict)

    @property
    def queued(self) -> int:
        return sum(c.queued for c in self.entities.values())

    @property
    def unchanged(self) -> int:
        return sum(c.unchanged for c in self.entities.values())

    def metrics(self) -> dict[str, int]:
        """Totals for ``sync.run_metrics`` (stage ``queue``, scope = destination)."""
        totals: dict[str, int] = {}
        for counts in self.entities.values():
            for name, value in counts.as_dict().items():
                totals[f"records_{name}"] = totals.get(f"records_{name}", 0) + value
        totals["rows_read"] = sum(self.rows_read.values())
        totals["merges_listed"] = self.merges.listed
        totals["merges_superseded"] = self.merges.superseded
        totals.update(self.gate)
        totals.update({f"records_skipped_{reason}": n for reason, n in self.skips.items()})
        return totals


def _kinds(objects: list[MappedObject]) -> list[str]:
    seen = [o.entity for o in objects]
    duplicated = sorted({e for e in seen if seen.count(e) > 1})
    if duplicated:
        raise ConfigError(f"mapping lists these objects twice: {', '.join(duplicated)}")
    wanted = {o.kind for o in objects}
    return [kind for kind in SOURCE_FIELDS if kind in wanted]


def prepare(
    conn: psycopg.Connection,
    destination: str,
    renderer: Renderer,
    scope: Scope,
    settings: DestinationSettings,
    *,
    gate: DestinationGate | None = None,
) -> Prepared:
    """Read, render and classify one destination's records into the work tables; write nothing else.

    Every batch passes the privacy gate (:mod:`donor_sync.privacy.gate`; default: the shipped
    policy and profile) before rendering: a blocked row is not rendered, so the plan treats its
    record like one that left core (pending work withdrawn, the mirror action). A record whose
    dependency is not sent (the event of a donor who is no user there) is skipped
    (:mod:`donor_sync.delivery.outbox.dependencies`).
    """
    gate = gate or load_gate(destination, renderer)
    objects = list(renderer.objects())
    kinds = _kinds(objects)
    create_work_tables(conn, objects)
    rows_read: dict[str, int] = {}
    cursors: dict[str, datetime | None] = {}
    stager = RecordStager(conn)
    for kind in kinds:
        since = None
        if scope.kind is ScopeKind.INCREMENTAL:
            since = watermark_since(conn, destination, stream_of(kind))
        rows_read[kind], cursors[kind] = collect_keys(conn, kind, scope, since=since)
        for batch in read_rows(conn, kind):
            stager.add(renderer.render(kind, gate.apply(conn, kind, batch).rows_allowed))
    classify(
        conn,
        destination,
        full=scope.kind is ScopeKind.FULL,
        merge_entity=settings.merges.entity,
        deduplicate=stager.duplicates,
    )
    skip_unreachable(conn, destination)
    merges, merges_cursor = plan_merges(conn, destination, settings.merges)
    api_merges = 0 if settings.merges.method != "api" else sum(not m.same_record for m in merges)
    counts = add_merges(count_plan(conn), settings.merges.entity, api_merges)
    verdict = evaluate(destination, counts, landed_counts(conn, destination), settings.blast_radius)
    return Prepared(
        destination,
        scope,
        settings,
        rows_read,
        cursors,
        counts,
        merges,
        merges_cursor,
        verdict,
        gate.metrics(),
        skip_reasons(conn),
    )


def queue_destination(
    conn: psycopg.Connection,
    destination: str,
    mapping: Renderer,
    *,
    run_id: str | UUID | None = None,
    scope: Scope | None = None,
    approved: bool = False,
    actor: str = "donor-sync",
    settings: DestinationSettings | None = None,
    gate: DestinationGate | None = None,
) -> QueueReport:
    """Queue every changed record of ``destination`` in the outbox, with its merges.

    Atomic: the outbox rows, destination merges and watermarks are written together, after the
    blast-radius guard passed, or not at all (a transaction block: a savepoint the caller commits
    when a transaction is open, else committed at the end). Queue runs of one destination are
    serialized.

    :param mapping: the destination's mapping (:func:`~donor_sync.delivery.outbox.default_renderer`).
    :param scope: which core rows to read (default: what changed since the watermarks).
    :param approved: let a run over a blast-radius limit go ahead (audited).
    :param actor: who runs it, for the audit log (``dag:<dag_id>.<task_id>``, ``cli:<user>``).
    :param settings: the destination's settings (default: from include/mappings/delivery.yaml).
    :param gate: the destination's privacy gate (default: include/mappings/privacy).
    :raises BlastRadiusExceeded: over a limit without approval (nothing written).
    """
    scope = scope or Scope.incremental()
    settings = settings or load_delivery_settings().for_destination(destination)
    with conn.transaction():
        conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext('donor_sync.outbox'), hashtext(%s))", (destination,)
        )
        prepared = prepare(conn, destination, mapping, scope, settings, gate=gate)
        enforce(conn, prepared.verdict, approved=approved, actor=actor, run_id=run_id)
        superseded = supersede_undone(conn, destination, actor=actor)
        written, withdrawn = apply_plan(conn, destination, run_id=run_id)
        merge_counts, merges_cursor = queue_merges(
            conn, destination, prepared.merges, settings.merges, run_id=run_id, actor=actor
        )
        if scope.kind is not ScopeKind.IDS:
            for kind, cursor in prepared.cursors.items():
                advance_watermark(conn, destination, stream_of(kind), cursor, run_id=run_id)
        advance_merges_watermark(conn, destination, merges_cursor, run_id=run_id)
        drop_work_tables(conn)
    report = QueueReport(
        destination=destination,
        scope=scope.describe(),
        entities=prepared.counts,
        rows_read=prepared.rows_read,
        merges=MergeCounts(
            queued=merge_counts.queued,
            listed=merge_counts.listed,
            already_one=merge_counts.already_one,
            superseded=superseded,
        ),
        verdict=prepared.verdict,
        approved_over_limit=prepared.verdict.exceeded,
        written=written,
        withdrawn=withdrawn,
        gate=prepared.gate,
        skips=prepared.skips,
    )
    log.info(
        "outbox %s (%s): %s core rows read, %s queued, %s unchanged, %s withdrawn, merges %s api / %s listed",
        destination,
        report.scope,
        sum(report.rows_read.values()),
        report.queued,
        report.unchanged,
        withdrawn,
        merge_counts.queued,
        merge_counts.listed,
    )
    return report
