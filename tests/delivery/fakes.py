"""A scripted destination for the push engine's tests: a Connector that keeps what landed.

It behaves like a CRM that upserts on an external id (the record key): writing a record twice
updates it in place, so ``landed`` holds each record at most once and ``writes`` counts how many
times it was written. Behaviour is scripted per test:

* :meth:`FakeConnector.fail` -- a record fails with a class and code (a number of times, or always);
* :meth:`FakeConnector.poison` -- a batch holding this record is rejected as a whole;
* :meth:`FakeConnector.go_down` -- the next N calls raise DestinationUnavailableError;
* :meth:`FakeConnector.die_after_landing` -- the next call lands its records, then the worker
  "dies" (raises :class:`WorkerKilled`, a BaseException nothing in the engine catches);
* ``quota`` -- a QuotaState whose ``remaining`` drops by one per call.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from donor_sync.delivery.contracts import (
    BatchRejectedError,
    Connector,
    DestinationUnavailableError,
    FailureClass,
    Operation,
    OutboundRecord,
    QuotaState,
    RecordResult,
)


class WorkerKilled(BaseException):
    """Stands for SIGKILL: the worker stops between the vendor call and the result write."""


@dataclass
class Landed:
    """A record as the destination holds it."""

    remote_id: str
    payload: dict[str, Any]
    operation: Operation
    writes: int = 1
    deleted: bool = False


@dataclass
class Call:
    """One push call as the destination saw it."""

    entity: str
    operation: Operation
    records: list[OutboundRecord]
    outcome: str  # ok, rejected, unavailable

    @property
    def keys(self) -> list[str]:
        return [r.record_key for r in self.records]


@dataclass
class _Script:
    error_class: FailureClass
    code: str
    times: int | None  # None: always


@dataclass
class FakeConnector:
    """A :class:`~donor_sync.delivery.contracts.Connector` with scripted failures."""

    destination: str = "fake_crm"
    entities: tuple[str, ...] = ("contact", "opportunity")
    batch: int = 50
    quota_state: QuotaState | None = None
    landed: dict[tuple[str, str], Landed] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    _failures: dict[str, _Script] = field(default_factory=dict)
    _poisoned: set[str] = field(default_factory=set)
    _down_for: int = 0
    _down_class: FailureClass = FailureClass.TRANSIENT
    _retry_after_s: float | None = None
    _die: bool = False
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- scripting -------------------------------------------------------------------------------

    def fail(
        self,
        record_key: str,
        error_class: FailureClass,
        code: str = "FAKE_ERROR",
        *,
        times: int | None = None,
    ) -> None:
        """Fail every write of ``record_key`` (or the next ``times``) with ``error_class``."""
        self._failures[record_key] = _Script(error_class, code, times)

    def poison(self, record_key: str) -> None:
        """Reject as a whole any batch that holds ``record_key``."""
        self._poisoned.add(record_key)

    def go_down(
        self,
        calls: int,
        error_class: FailureClass = FailureClass.TRANSIENT,
        retry_after_s: float | None = None,
    ) -> None:
        """Make the next ``calls`` calls raise DestinationUnavailableError."""
        self._down_for = calls
        self._down_class = error_class
        self._retry_after_s = retry_after_s

    def die_after_landing(self) -> None:
        """Let the next call land its records, then raise :class:`WorkerKilled`."""
        self._die = True

    # -- Connector -------------------------------------------------------------------------------

    def entity_order(self) -> Sequence[str]:
        return self.entities

    def batch_size(self, entity: str, operation: Operation, pending: int) -> int:
        return max(1, min(self.batch, pending))

    def quota(self) -> QuotaState | None:
        return self.quota_state

    def push(
        self, entity: str, operation: Operation, records: Sequence[OutboundRecord]
    ) -> list[RecordResult]:
        with self._lock:
            return self._push(entity, operation, list(records))

    def _push(self, entity: str, operation: Operation, records: list[OutboundRecord]) -> list[RecordResult]:
        assert records, "the engine never pushes an empty batch"
        assert len(records) <= self.batch, "the engine respects batch_size"
        self._spend_quota()
        if self._down_for > 0:
            self._down_for -= 1
            self.calls.append(Call(entity, operation, records, "unavailable"))
            raise DestinationUnavailableError(
                "the fake destination is down",
                error_class=self._down_class,
                error_code="FAKE_DOWN",
                http_status=503 if self._down_class is FailureClass.TRANSIENT else 429,
                retry_after_s=self._retry_after_s,
            )
        if any(r.record_key in self._poisoned for r in records):
            self.calls.append(Call(entity, operation, records, "rejected"))
            raise BatchRejectedError(
                "the batch was refused: a record is malformed", error_class=FailureClass.VALIDATION,
                error_code="MALFORMED_BATCH", http_status=400,
            )  # fmt: skip
        self.calls.append(Call(entity, operation, records, "ok"))
        results = [self._write(entity, operation, record) for record in records]
        if self._die:
            self._die = False
            raise WorkerKilled
        return results

    def _spend_quota(self) -> None:
        q = self.quota_state
        if q is not None and q.remaining is not None:
            self.quota_state = QuotaState(remaining=max(0, q.remaining - 1), limit=q.limit, window=q.window)

    def _write(self, entity: str, operation: Operation, record: OutboundRecord) -> RecordResult:
        script = self._failures.get(record.record_key)
        if script is not None and (script.times is None or script.times > 0):
            if script.times is not None:
                script.times -= 1
            return RecordResult(
                outbox_id=record.outbox_id, ok=False, error_class=script.error_class,
                error_code=script.code, message=f"fake {script.code} on field Email", http_status=400,
            )  # fmt: skip
        key = (entity, record.record_key)
        existing = self.landed.get(key)
        if operation in (Operation.DELETE, Operation.ARCHIVE):
            if existing is not None:
                existing.deleted = True
                existing.writes += 1
            return RecordResult(outbox_id=record.outbox_id, ok=True, remote_id=record.remote_id)
        if existing is None:
            existing = Landed(f"{entity[:3].upper()}{next(self._ids):06d}", dict(record.payload), operation)
            self.landed[key] = existing
            return RecordResult(
                outbox_id=record.outbox_id, ok=True, remote_id=existing.remote_id, created=True
            )
        existing.payload = dict(record.payload)
        existing.writes += 1
        return RecordResult(outbox_id=record.outbox_id, ok=True, remote_id=existing.remote_id, created=False)

    # -- assertions --------------------------------------------------------------------------------

    def sent(self, record_key: str) -> list[OutboundRecord]:
        """Return every time ``record_key`` was handed to the destination."""
        return [r for call in self.calls for r in call.records if r.record_key == record_key]


def _implements_protocol() -> Connector:
    return FakeConnector()
