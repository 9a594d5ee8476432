"""Send queued journey triggers (outbox entity ``journey_trigger``) to Braze canvases and campaigns.

``POST /canvas/trigger/send`` (``canvas_entry_properties``) or ``/campaigns/trigger/send``
(``trigger_properties``), recipients by ``external_user_id`` (the donor id), grouped by canvas or
campaign and sent at most :data:`MAX_RECIPIENTS` per call (Braze's limit for API-triggered
sends). Payloads come from :mod:`donor_sync.journeys.payloads`. Every record gets a
:class:`RecordResult` (the dispatch id as its remote id); nothing is raised for a record:

* a call refused for its content (400) with several recipients is split down to single
  recipients, so one bad record does not fail the others; alone, it is ``validation``;
* 403 (the key lacks ``canvas.trigger.send``), 404 -> ``permanent`` for that call's records;
* 401 -> ``auth``; 429 and 5xx after the client's retries -> ``rate_limited`` / ``transient``:
  the calls after it are not made. Their records' results say so (``sent=False``, code
  ``NOT_SENT``, the same class): they wait for their next rung without using an attempt, so they
  are never dead-lettered for attempts they did not make.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from donor_sync.delivery.connectors.braze.client import BrazeClient
from donor_sync.delivery.contracts import (
    NOT_SENT,
    BatchRejectedError,
    DeliveryError,
    FailureClass,
    OutboundRecord,
    RecordResult,
)

ENTITY = "journey_trigger"
#: Recipients per API-triggered send.
MAX_RECIPIENTS = 50
_STOP = (FailureClass.AUTH, FailureClass.RATE_LIMITED, FailureClass.TRANSIENT)


def _target(payload: Mapping[str, Any]) -> tuple[str, str] | None:
    """Return ("canvas" | "campaign", id) of a payload, or None when it names neither (or both)."""
    canvas, campaign = payload.get("canvas_id"), payload.get("campaign_id")
    if isinstance(canvas, str) and canvas and campaign is None:
        return "canvas", canvas
    if isinstance(campaign, str) and campaign and canvas is None:
        return "campaign", campaign
    return None


def _recipient(kind: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    key = "canvas_entry_properties" if kind == "canvas" else "trigger_properties"
    return {"external_user_id": str(payload["external_user_id"]), key: dict(payload.get("properties") or {})}


def _fail(records: Sequence[OutboundRecord], error: DeliveryError, *, sent: bool) -> list[RecordResult]:
    if not sent:  # the batch stopped before these records: no call, no attempt
        message = f"not sent: an earlier call of the batch failed ({error.error_code}); no attempt used"
        return [
            RecordResult(
                r.outbox_id, ok=False, error_class=error.error_class, error_code=NOT_SENT, message=message,
                sent=False,
            )
            for r in records
        ]  # fmt: skip
    return [
        RecordResult(
            r.outbox_id,
            ok=False,
            error_class=error.error_class,
            error_code=error.error_code,
            message=str(error)[:500],
            http_status=error.http_status,
        )
        for r in records
    ]


class _Sender:
    def __init__(self, client: BrazeClient) -> None:
        self.client = client
        self.stopped: DeliveryError | None = None
        self.results: dict[int, RecordResult] = {}

    def send(self, kind: str, target: str, records: Sequence[OutboundRecord]) -> None:
        """Send one call; split a content refusal until each bad record stands alone."""
        if self.stopped is not None:
            self.results.update(
                {
                    r.outbox_id: r2
                    for r, r2 in zip(records, _fail(records, self.stopped, sent=False), strict=True)
                }
            )
            return
        path = "/canvas/trigger/send" if kind == "canvas" else "/campaigns/trigger/send"
        body = {f"{kind}_id": target, "recipients": [_recipient(kind, r.payload) for r in records]}
        try:
            reply = self.client.post(path, body)
        except BatchRejectedError as error:
            if len(records) > 1:
                half = len(records) // 2
                self.send(kind, target, records[:half])
                self.send(kind, target, records[half:])
                return
            self._failed(records, error)
            return
        except DeliveryError as error:
            self._failed(records, error)
            if error.error_class in _STOP:
                self.stopped = error
            return
        dispatch = reply.body.get("dispatch_id") if isinstance(reply.body, dict) else None
        for record in records:
            self.results[record.outbox_id] = RecordResult(
                record.outbox_id,
                ok=True,
                remote_id=str(dispatch) if dispatch else None,
                created=True,
                http_status=reply.status,
            )

    def _failed(self, records: Sequence[OutboundRecord], error: DeliveryError) -> None:
        for result in _fail(records, error, sent=True):
            self.results[result.outbox_id] = result


def push_journey_triggers(client: BrazeClient, records: Sequence[OutboundRecord]) -> list[RecordResult]:
    """Send each record's canvas or campaign trigger; return one result per record, in order."""
    sender = _Sender(client)
    groups: dict[tuple[str, str], list[OutboundRecord]] = {}
    for record in records:
        target = _target(record.payload)
        if target is None or not record.payload.get("external_user_id"):
            sender.results[record.outbox_id] = RecordResult(
                record.outbox_id,
                ok=False,
                error_class=FailureClass.VALIDATION,
                error_code="INVALID_TRIGGER_PAYLOAD",
                message="payload needs one of canvas_id or campaign_id, and external_user_id",
            )
            continue
        groups.setdefault(target, []).append(record)
    for (kind, target_id), members in groups.items():
        for start in range(0, len(members), MAX_RECIPIENTS):
            sender.send(kind, target_id, members[start : start + MAX_RECIPIENTS])
    return [sender.results[r.outbox_id] for r in records]
