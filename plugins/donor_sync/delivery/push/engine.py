"""Push one destination's due outbox rows through its connector: the push stage of every run.

For each entity in the connector's order (parents first) and each operation with due rows, the
engine claims a batch under a lease, pushes it (splitting batches the vendor rejects as a whole),
writes the results in one transaction with the circuit breaker's count, and goes on until
nothing is due, the breaker opens, the destination's rate limit runs out, or the deadline or
record budget is reached. Nothing is held in memory between batches: a worker killed at any
point leaves rows in flight that the next run reclaims when their lease expires, and the
connectors upsert on stable keys, so nothing is lost or written twice.

Airflow-free: the push operator, the CLI and the benchmarks call :func:`push_destination`.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from uuid import UUID

import psycopg

from donor_sync.delivery.contracts import (
    Connector,
    DestinationUnavailableError,
    FailureClass,
    Operation,
    OutboundRecord,
    RecordResult,
)
from donor_sync.delivery.push import quota
from donor_sync.delivery.push.breaker import BreakerState, BreakerTransition, CircuitBreaker
from donor_sync.delivery.push.claim import claim, count_due, due_operations
from donor_sync.delivery.push.context import PushContext, lease_token
from donor_sync.delivery.push.gate_check import GateCheck
from donor_sync.delivery.push.results import WriteCounts, release_unavailable, write_results
from donor_sync.delivery.push.settings import PushSettings, load_push_settings
from donor_sync.delivery.push.splitting import SplitOutcome, push_with_splitting
from donor_sync.observability.runs import record_metric

log = logging.getLogger(__name__)

#: Error code of the failure recorded when a connector raised something other than a DeliveryError.
CONNECTOR_ERROR = "CONNECTOR_ERROR"
_WRITE_TRIES = 3


@dataclass
class EntityReport:
    """What one push did for one entity.

    :param pushed: records sent to the destination (each counted once, however split).
    :param failed: records whose attempt failed: ``retrying + dead_lettered + superseded``, plus
        nothing else (records waiting for a dependency were never sent).
    :param superseded: failed records dropped because a newer version of them is queued.
    :param deferred: due records held back by the quota reserve.
    :param waiting: records sent back to wait for a dependency's remote id.
    :param skipped: records that waited for a dependency settled as skipped: the privacy gate
        keeps their donor out, so it will never exist (never sent, no dead letter).
    :param stale: records whose lease another worker took over before the results came back.
    """

    entity: str
    pushed: int = 0
    succeeded: int = 0
    failed: int = 0
    retrying: int = 0
    dead_lettered: int = 0
    superseded: int = 0
    deferred: int = 0
    waiting: int = 0
    skipped: int = 0
    stale: int = 0
    calls: int = 0
    rejected_calls: int = 0

    def add(self, counts: WriteCounts) -> None:
        """Add one write's counts."""
        self.succeeded += counts.succeeded
        self.failed += counts.failed
        self.retrying += counts.retrying
        self.dead_lettered += counts.dead_lettered
        self.superseded += counts.superseded
        self.stale += counts.stale


_COUNTED = tuple(f.name for f in fields(EntityReport) if f.name != "entity")


@dataclass
class PushReport:
    """What :func:`push_destination` did, for the run summary and alerts.

    :param stopped: why the push stopped before the queue was empty: ``breaker_open``,
        ``rate_limited``, ``deadline`` or ``max_records``; None when it ran dry.
    :param transitions: circuit-breaker state changes, to alert on.
    """

    destination: str
    entities: dict[str, EntityReport] = field(default_factory=dict)
    transitions: list[BreakerTransition] = field(default_factory=list)
    breaker_state: BreakerState = BreakerState.CLOSED
    stopped: str | None = None
    quota: quota.QuotaDecision | None = None

    def entity(self, name: str) -> EntityReport:
        """Return the report of entity ``name``, creating it."""
        return self.entities.setdefault(name, EntityReport(name))

    def total(self, name: str) -> int:
        """Return the sum of one count over entities (``pushed``, ``succeeded``...)."""
        if name not in _COUNTED:
            raise ValueError(f"unknown count {name!r}; one of {', '.join(_COUNTED)}")
        return sum(int(getattr(report, name)) for report in self.entities.values())

    def totals(self) -> dict[str, int]:
        """Return every count summed over entities."""
        return {name: self.total(name) for name in _COUNTED}

    def summary(self) -> str:
        """Return a one-line account (counts only)."""
        t = self.totals()
        text = (
            f"{self.destination}: pushed {t['pushed']}, succeeded {t['succeeded']}, "
            f"retrying {t['retrying']}, dead-lettered {t['dead_lettered']}, deferred {t['deferred']}, "
            f"waiting {t['waiting']}, skipped {t['skipped']}, "
            f"{t['calls']} call(s); breaker {self.breaker_state}"
        )
        return text + (f"; stopped: {self.stopped}" if self.stopped else "")


@dataclass
class _Budget:
    max_records: int | None
    deadline: datetime | None
    pushed: int = 0

    def exhausted(self) -> str | None:
        if self.max_records is not None and self.pushed >= self.max_records:
            return "max_records"
        if self.deadline is not None and datetime.now(UTC) >= self.deadline:
            return "deadline"
        return None

    def cap(self, size: int) -> int:
        return size if self.max_records is None else min(size, self.max_records - self.pushed)


def push_destination(
    conn: psycopg.Connection,
    connector: Connector,
    *,
    run_id: UUID | None = None,
    worker_id: str,
    max_records: int | None = None,
    deadline: datetime | None = None,
    settings: PushSettings | None = None,
    rng: random.Random | None = None,
    metrics_part: str = "",
) -> PushReport:
    """Push every due outbox row of ``connector.destination``; commit as it goes.

    :param worker_id: who pushes (task instance, CLI run); becomes the lease holder's name.
    :param max_records: stop claiming after this many records (a slice of a fanned-out task).
    :param deadline: stop claiming after this instant (timezone-aware), leaving the rest queued.
    :param settings: thresholds; read from include/mappings/delivery.yaml when None.
    :param rng: jitter source; tests pass a seeded one.
    :param metrics_part: the slice this call is (``sync.run_metrics.part``), for fanned-out tasks.
    :raises Exception: whatever a connector raised that is not a DeliveryError, after its records
        were put back on the ladder (a bug must fail the task, not loop).
    """
    settings = settings or load_push_settings()
    ctx = PushContext(
        destination=connector.destination,
        claimed_by=lease_token(worker_id),
        options=settings.push,
        run_id=run_id,
        rng=rng or random.Random(),  # noqa: S311 - jitter, not security
        donor_gate=GateCheck(connector.destination),
    )
    push = _DestinationPush(
        conn=conn,
        connector=connector,
        ctx=ctx,
        breaker=CircuitBreaker(conn, connector.destination, settings.circuit_breaker),
        budget=_Budget(max_records, deadline),
    )
    try:
        push.run()
    except BaseException:
        conn.rollback()  # nothing half-written survives
        push.finish(metrics_part, best_effort=True)
        raise
    push.finish(metrics_part, best_effort=False)
    return push.report


@dataclass
class _DestinationPush:
    """The state of one :func:`push_destination` call."""

    conn: psycopg.Connection
    connector: Connector
    ctx: PushContext
    breaker: CircuitBreaker
    budget: _Budget
    report: PushReport = field(init=False)
    probing: bool = False

    def __post_init__(self) -> None:
        self.report = PushReport(self.ctx.destination)

    def run(self) -> None:
        admission = self.breaker.admit()
        self.conn.commit()
        if admission.transition:
            self.report.transitions.append(admission.transition)
        if not admission.allowed:
            self.report.stopped = "breaker_open"
            return
        self.probing = admission.probe
        for entity, operation in self._work():
            self._push_operation(entity, operation)
            if self.report.stopped:
                break
        if self.probing:  # nothing was due to probe with: let the next push probe at once
            self.breaker.release_probe()
            self.conn.commit()

    def _work(self) -> Iterator[tuple[str, Operation]]:
        for entity in self.connector.entity_order():
            for operation in due_operations(self.conn, self.ctx.destination, entity):
                yield entity, operation

    def _push_operation(self, entity: str, operation: Operation) -> None:
        """Push batches of one entity and operation until none is due or the push must stop."""
        conn, ctx, report = self.conn, self.ctx, self.report
        entity_report = report.entity(entity)
        decision = quota.decide(self.connector.quota(), ctx.options)
        # Counting due rows scans the destination's queue, so it is done once, and again only when
        # the quota's priority cut moves or the estimate runs out; between counts the estimate
        # drops by what each claim took (rows it sends back wait, they are not due).
        due, counted_cut = 0, None
        while not report.stopped:
            report.stopped = self.budget.exhausted()
            if report.stopped:
                break
            decision = quota.decide(self.connector.quota(), ctx.options)
            report.quota = decision
            cut = decision.priority_cut
            if due <= 0 or cut != counted_cut:
                due, counted_cut = count_due(conn, ctx.destination, entity, operation, priority_cut=cut), cut
            if due == 0:
                break
            size = max(1, self.connector.batch_size(entity, operation, due))
            if self.probing:
                size = min(size, self.breaker.settings.probe_batch_size)
            limit = max(1, self.budget.cap(size))
            try:
                taken = claim(conn, ctx, entity=entity, operation=operation, limit=limit, priority_cut=cut)
                conn.commit()
            except psycopg.errors.UniqueViolation:
                # A record sent back to wait met a newer version queued at that instant: claim again,
                # and the older one is then replaced by the newer instead.
                conn.rollback()
                continue
            due -= taken.taken
            entity_report.waiting += taken.waiting
            entity_report.dead_lettered += taken.dead_lettered
            entity_report.skipped += taken.skipped
            if not taken.records:
                if taken.taken == 0:
                    break  # what is due is held by other workers
                continue
            entity_report.pushed += len(taken.records)
            self.budget.pushed += len(taken.records)
            outcome = self._push_batch(entity, operation, taken.records)
            entity_report.calls += len(outcome.calls)
            entity_report.rejected_calls += outcome.rejections
            self._write(entity_report, outcome)
        if decision.reserved and report.stopped is None:
            entity_report.deferred += count_due(
                conn, ctx.destination, entity, operation, priority_cut=decision.priority_cut, above_cut=True
            )

    def _push_batch(
        self, entity: str, operation: Operation, records: Sequence[OutboundRecord]
    ) -> SplitOutcome:
        """Push one claimed batch; a connector raising anything but a DeliveryError fails the push."""
        try:
            return push_with_splitting(self.connector, entity, operation, records)
        except Exception as exc:
            # The type only: an exception's text may quote a record's values.
            log.error(
                "%s %s %s: the connector raised %s", self.ctx.destination, entity, operation.value,
                type(exc).__name__,
            )  # fmt: skip
            error = DestinationUnavailableError(
                f"the connector raised {type(exc).__name__}",
                error_class=FailureClass.TRANSIENT,
                error_code=CONNECTOR_ERROR,
            )
            release_unavailable(self.conn, self.ctx, [r.outbox_id for r in records], error)
            self.breaker.record(ok=False, error_class=FailureClass.TRANSIENT)
            self.conn.commit()
            raise

    def _write(self, entity_report: EntityReport, outcome: SplitOutcome) -> None:
        """Write a batch's results and the breaker's count in one transaction, then decide to go on.

        Retried when a newer version of a record was queued at the same instant (a unique-index
        race with the outbox), so the failed record is then replaced rather than requeued.
        """
        conn, ctx = self.conn, self.ctx
        duration_ms = sum(c.duration_ms for c in outcome.calls)
        unsent = [r.outbox_id for r in outcome.unsent]
        for attempt in range(1, _WRITE_TRIES + 1):
            try:
                counts = write_results(conn, ctx, outcome.results, duration_ms=duration_ms)
                if outcome.unavailable is not None:
                    counts.add(release_unavailable(conn, ctx, unsent, outcome.unavailable))
                ok, error_class = _call_health(outcome)
                transition = self.breaker.record(ok=ok, error_class=error_class)
                conn.commit()
                break
            except psycopg.errors.UniqueViolation:
                conn.rollback()
                if attempt == _WRITE_TRIES:
                    raise
        entity_report.add(counts)
        if transition:
            self.report.transitions.append(transition)
        if self.probing:
            self.probing = False
            if CircuitBreaker.read_state(conn, ctx.destination) is not BreakerState.CLOSED:
                self.report.stopped = "breaker_open"
        if transition and transition.to_state is BreakerState.OPEN:
            self.report.stopped = "breaker_open"
        error = outcome.unavailable
        if error is not None and error.error_class == FailureClass.RATE_LIMITED and not self.report.stopped:
            self.report.stopped = "rate_limited"  # the window has to reset; the records wait for it

    def finish(self, metrics_part: str, *, best_effort: bool) -> None:
        """Record API usage and run metrics; after a failure, without masking it."""
        report = self.report
        try:
            report.breaker_state = CircuitBreaker.read_state(self.conn, report.destination)
            reported = self.connector.quota()
            if report.total("calls") or reported is not None:
                quota.record_api_usage(self.conn, report.destination, reported, report.total("calls"))
            self.conn.commit()
            if self.ctx.run_id is not None:
                _record_metrics(self.conn, report, self.ctx.run_id, metrics_part)
            log.info("%s", report.summary())
        except Exception:
            if not best_effort:
                raise
            log.warning(
                "%s: could not record the push's usage and metrics", report.destination, exc_info=True
            )


def _call_health(outcome: SplitOutcome) -> tuple[bool, FailureClass | None]:
    """Whether the destination was healthy for this batch, for the breaker.

    A failed call is one the destination could not serve: unavailable, or every record failing
    with a class that says the destination (not the record) is in trouble.
    """
    if outcome.unavailable is not None:
        return False, outcome.unavailable.error_class
    failures: list[RecordResult] = [r for r in outcome.results if not r.ok]
    if outcome.results and len(failures) == len(outcome.results):
        classes = {FailureClass(r.error_class) for r in failures if r.error_class is not None}
        if all(c.retryable for c in classes):
            return False, failures[0].error_class
    return True, None


_METRICS: tuple[tuple[str, str, str], ...] = (
    ("pushed", "pushed", "records"),
    ("succeeded", "succeeded", "records"),
    ("failed", "failed", "records"),
    ("retrying", "retrying", "records"),
    ("dead_lettered", "dead_lettered", "records"),
    ("superseded", "superseded", "records"),
    ("deferred", "deferred", "records"),
    ("waiting", "waiting_dependency", "records"),
    ("skipped", "skipped", "records"),
    ("calls", "calls", "calls"),
    ("rejected_calls", "rejected_calls", "calls"),
)


def _record_metrics(conn: psycopg.Connection, report: PushReport, run_id: UUID, part: str) -> None:
    totals = report.totals()
    for name, metric, unit in _METRICS:
        record_metric(
            conn, run_id, stage="push", scope=report.destination, part=part, metric=metric,
            value=totals[name], unit=unit,
        )  # fmt: skip
    opened = sum(1 for t in report.transitions if t.to_state is BreakerState.OPEN)
    record_metric(
        conn, run_id, stage="push", scope=report.destination, part=part, metric="breaker_opened",
        value=opened, unit="count",
    )  # fmt: skip
