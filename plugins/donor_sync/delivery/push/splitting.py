"""Push a batch, splitting it when the vendor refuses it as a whole, so one bad record cannot sink it.

A :class:`~donor_sync.delivery.contracts.BatchRejectedError` means the batch's content was refused
(a malformed record poisons a Bulk API job or a HubSpot batch). The batch is split in halves and
each half pushed again, recursively, until the bad records stand alone: a lone rejected record
becomes a failed :class:`RecordResult` with the error's class and code, and every other record
lands. Isolating one bad record in ``n`` takes about ``2 * log2(n)`` extra calls.

A :class:`~donor_sync.delivery.contracts.DestinationUnavailableError` stops the push: the results
gathered so far are kept, and the records not yet answered are handed back with the error.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from donor_sync.delivery.contracts import (
    BatchRejectedError,
    Connector,
    DeliveryError,
    FailureClass,
    Operation,
    OutboundRecord,
    RecordResult,
)

log = logging.getLogger(__name__)

#: Code of the transient failure given to a record the connector returned no result for.
NO_RESULT = "NO_RESULT"


@dataclass
class CallRecord:
    """One connector call: how many records, whether the destination answered, how long it took."""

    records: int
    ok: bool
    duration_ms: int
    rejected: bool = False


@dataclass
class SplitOutcome:
    """What pushing one batch produced.

    :param unavailable: the error that stopped the push, if one did; ``unsent`` then holds the
        records that got no answer.
    """

    results: list[RecordResult] = field(default_factory=list)
    calls: list[CallRecord] = field(default_factory=list)
    unavailable: DeliveryError | None = None
    unsent: list[OutboundRecord] = field(default_factory=list)

    @property
    def rejections(self) -> int:
        """Calls the vendor refused as a whole."""
        return sum(1 for c in self.calls if c.rejected)


def push_with_splitting(
    connector: Connector, entity: str, operation: Operation, records: Sequence[OutboundRecord]
) -> SplitOutcome:
    """Push ``records`` (at most the connector's batch size), isolating records that poison the batch.

    Any error other than :class:`BatchRejectedError` or a :class:`DeliveryError` propagates.
    """
    outcome = SplitOutcome()
    _push(connector, entity, operation, list(records), outcome)
    return outcome


def _push(
    connector: Connector,
    entity: str,
    operation: Operation,
    records: list[OutboundRecord],
    outcome: SplitOutcome,
) -> None:
    if outcome.unavailable is not None:
        outcome.unsent.extend(records)
        return
    started = time.monotonic()
    try:
        results = connector.push(entity, operation, records)
    except BatchRejectedError as exc:
        outcome.calls.append(CallRecord(len(records), ok=True, duration_ms=_ms(started), rejected=True))
        if len(records) == 1:
            outcome.results.append(_rejected(records[0], exc))
            return
        middle = len(records) // 2
        log.info(
            "%s %s %s: batch of %d rejected (%s); splitting",
            connector.destination,
            entity,
            operation.value,
            len(records),
            exc.error_code,
        )
        _push(connector, entity, operation, records[:middle], outcome)
        _push(connector, entity, operation, records[middle:], outcome)
        return
    except DeliveryError as exc:
        outcome.calls.append(CallRecord(len(records), ok=False, duration_ms=_ms(started)))
        outcome.unavailable = exc
        outcome.unsent.extend(records)
        return
    outcome.calls.append(CallRecord(len(records), ok=True, duration_ms=_ms(started)))
    outcome.results.extend(_match(records, results))


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _rejected(record: OutboundRecord, exc: BatchRejectedError) -> RecordResult:
    return RecordResult(
        outbox_id=record.outbox_id,
        ok=False,
        error_class=exc.error_class,
        error_code=exc.error_code,
        message=str(exc),
        http_status=exc.http_status,
    )


def _match(records: Sequence[OutboundRecord], results: Sequence[RecordResult]) -> list[RecordResult]:
    """Keep one result per record sent: a record without one failed transiently (retried)."""
    sent = {r.outbox_id for r in records}
    by_id: dict[int, RecordResult] = {}
    for result in results:
        if result.outbox_id not in sent:
            log.warning("connector returned a result for outbox row %d it was not sent", result.outbox_id)
            continue
        by_id.setdefault(result.outbox_id, result)
    return [
        by_id.get(record.outbox_id)
        or RecordResult(
            outbox_id=record.outbox_id,
            ok=False,
            error_class=FailureClass.TRANSIENT,
            error_code=NO_RESULT,
            message="the destination returned no result for this record",
        )
        for record in records
    ]
