"""Send queued journey triggers (outbox entity ``journey_trigger``) to Mailchimp customer journeys.

``POST /customer-journeys/journeys/{journey_id}/steps/{step_id}/actions/trigger`` with the
member's ``email_address``, one call per record (Mailchimp has no batch form of it; the client
keeps within the account's 10 connections). The payloads are built by
:mod:`donor_sync.journeys.payloads`. Every record gets a :class:`RecordResult`; nothing is
raised for a record's failure:

* 400 (not a subscribed member of the journey's audience, bad body) -> ``validation``;
* 404 (no such journey or step), 403 -> ``permanent``;
* 401 -> ``auth``; 429 and 5xx after the client's retries -> ``rate_limited`` / ``transient``:
  the remaining records are not sent in this call, so a broken account is not hammered once per
  record. Their results say so (``sent=False``, code ``NOT_SENT``, the same class): they wait for
  their next rung without using an attempt, so they are never dead-lettered for attempts they
  did not make.

Mailchimp triggers carry no idempotency key: a trigger is sent once per outbox row, and the
enrollment table makes sure a gift gets one row per journey.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from donor_sync.delivery.connectors.mailchimp.client import MailchimpClient
from donor_sync.delivery.contracts import (
    NOT_SENT,
    DeliveryError,
    FailureClass,
    OutboundRecord,
    RecordResult,
)

ENTITY = "journey_trigger"
_ID = re.compile(r"^[0-9]{1,18}$")
#: Failures of the account or the connection rather than of one record.
_STOP = (FailureClass.AUTH, FailureClass.RATE_LIMITED, FailureClass.TRANSIENT)


def _problem(payload: Mapping[str, Any]) -> str | None:
    for name in ("journey_id", "step_id"):
        if not _ID.match(str(payload.get(name, ""))):
            return f"payload field {name} is missing or not a Mailchimp id"
    email = payload.get("email_address")
    if not isinstance(email, str) or "@" not in email:
        return "payload field email_address is missing or not an email"
    return None


def _failure(record: OutboundRecord, error: DeliveryError, *, sent: bool) -> RecordResult:
    if not sent:  # the batch stopped before this record: no call, no attempt
        return RecordResult(
            record.outbox_id,
            ok=False,
            error_class=error.error_class,
            error_code=NOT_SENT,
            message=f"not sent: an earlier call of the batch failed ({error.error_code}); no attempt used",
            sent=False,
        )
    return RecordResult(
        record.outbox_id,
        ok=False,
        error_class=error.error_class,
        error_code=error.error_code,
        message=str(error)[:500],
        http_status=error.http_status,
    )


def push_journey_triggers(client: MailchimpClient, records: Sequence[OutboundRecord]) -> list[RecordResult]:
    """Trigger each record's journey step for its member; return one result per record, in order."""
    results: list[RecordResult] = []
    stopped: DeliveryError | None = None
    for record in records:
        if stopped is not None:
            results.append(_failure(record, stopped, sent=False))
            continue
        problem = _problem(record.payload)
        if problem is not None:
            results.append(
                RecordResult(
                    record.outbox_id,
                    ok=False,
                    error_class=FailureClass.VALIDATION,
                    error_code="INVALID_TRIGGER_PAYLOAD",
                    message=problem,
                )
            )
            continue
        payload = record.payload
        path = (
            f"/customer-journeys/journeys/{int(payload['journey_id'])}"
            f"/steps/{int(payload['step_id'])}/actions/trigger"
        )
        try:
            reply = client.request("POST", path, json={"email_address": payload["email_address"]})
        except DeliveryError as error:
            results.append(_failure(record, error, sent=True))
            if error.error_class in _STOP:
                stopped = error
            continue
        results.append(
            RecordResult(
                record.outbox_id,
                ok=True,
                remote_id=f"{int(payload['journey_id'])}:{int(payload['step_id'])}",
                created=True,
                http_status=reply.status,
            )
        )
    return results
