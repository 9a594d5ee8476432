"""Map a HubSpot batch answer (200, 201 or 207) back to one :class:`RecordResult` per record sent.

Results carry the ``objectWriteTraceId`` we sent (the outbox id) when the endpoint echoes it;
207 errors carry the input ``id`` (the unique property's value, or the remote id) and context
ids instead. Every record is matched by the most specific key it has; a record HubSpot neither
wrote nor refused is reported as a transient failure, never assumed written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from donor_sync.delivery.connectors.hubspot.client import Reply
from donor_sync.delivery.connectors.hubspot.errors import classify, error_ids
from donor_sync.delivery.contracts import FailureClass, OutboundRecord, RecordResult


@dataclass(frozen=True)
class Sent:
    """A record as it went into a batch, with the keys HubSpot may identify it by."""

    record: OutboundRecord
    keys: tuple[str, ...]

    @property
    def trace_id(self) -> str:
        """Return the ``objectWriteTraceId`` sent for this record (its outbox id)."""
        return str(self.record.outbox_id)


def failure(
    record: OutboundRecord,
    error_class: FailureClass,
    code: str,
    message: str,
    *,
    http_status: int | None = None,
    request_id: str | None = None,
) -> RecordResult:
    """Return a failed result for ``record``."""
    return RecordResult(
        record.outbox_id,
        ok=False,
        error_class=error_class,
        error_code=code,
        message=message,
        http_status=http_status,
        vendor_request_id=request_id,
    )


class _Index:
    """Find sent records by trace id, else by key: exact first, then ignoring case (HubSpot
    lower-cases emails). Trace ids are looked up apart, so an outbox id never matches a remote id."""

    def __init__(self, sent: Sequence[Sent]) -> None:
        self.traces: dict[str, list[Sent]] = {}
        self.exact: dict[str, list[Sent]] = {}
        self.folded: dict[str, list[Sent]] = {}
        for item in sent:
            self.traces.setdefault(item.trace_id, []).append(item)
            for key in item.keys:
                self.exact.setdefault(key, []).append(item)
                self.folded.setdefault(key.strip().casefold(), []).append(item)

    def find(self, traces: Iterable[str], keys: Iterable[str]) -> list[Sent]:
        for trace in traces:
            if trace in self.traces:
                return self.traces[trace]
        keys = list(keys)
        for key in keys:
            if key in self.exact:
                return self.exact[key]
        for key in keys:
            found = self.folded.get(key.strip().casefold())
            if found:
                return found
        return []


def map_batch(
    sent: Sequence[Sent],
    reply: Reply,
    *,
    result_keys: Callable[[Mapping[str, Any]], list[str]],
    remote_id: Callable[[Mapping[str, Any]], str | None] = lambda r: str(r["id"]) if r.get("id") else None,
) -> list[RecordResult]:
    """Return one result per record of ``sent``, in order.

    :param result_keys: the keys (other than the trace id) a success result names its record
        by, most specific first.
    :param remote_id: the remote id a success result gives its record.
    """
    index = _Index(sent)
    body = reply.body if isinstance(reply.body, Mapping) else {}
    outcome: dict[int, RecordResult] = {}
    for result in body.get("results") or []:
        if not isinstance(result, Mapping):
            continue
        created = result.get("new")
        traces = [str(result["objectWriteTraceId"])] if result.get("objectWriteTraceId") else []
        for item in index.find(traces, result_keys(result)):
            outcome.setdefault(
                item.record.outbox_id,
                RecordResult(
                    item.record.outbox_id,
                    ok=True,
                    remote_id=remote_id(result),
                    created=bool(created) if created is not None else None,
                    http_status=reply.status,
                    vendor_request_id=reply.request_id,
                ),
            )
    for error in body.get("errors") or []:
        if not isinstance(error, Mapping):
            continue
        vendor = classify(error, http_status=_status(error))
        for item in index.find(*error_ids(error)):
            outcome.setdefault(
                item.record.outbox_id,
                failure(
                    item.record,
                    vendor.error_class,
                    vendor.code,
                    vendor.message,
                    http_status=reply.status,
                    request_id=reply.request_id,
                ),
            )
    missing = "HubSpot's answer named neither a result nor an error for this record; it is sent again"
    return [
        outcome.get(item.record.outbox_id)
        or failure(
            item.record,
            FailureClass.TRANSIENT,
            "MISSING_FROM_RESPONSE",
            missing,
            http_status=reply.status,
            request_id=reply.request_id,
        )
        for item in sent
    ]


def _status(error: Mapping[str, Any]) -> int | None:
    status = error.get("status")
    return int(status) if isinstance(status, int) or (isinstance(status, str) and status.isdigit()) else None
