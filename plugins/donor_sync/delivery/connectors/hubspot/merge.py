"""Merges of two HubSpot records when donor-sync merged the donors behind them.

An outbox record with operation ``merge`` carries ``{"primary_remote_id", "merged_remote_id"}``;
``POST .../objects/{type}/merge`` keeps the primary (its values win, blanks are filled) and
redirects the merged id to it. The result's remote id is the surviving id.

A merge sent again after it landed (a worker killed before it recorded the result) answers
"cannot merge an object with itself": both ids then resolve to the same record, which is
checked and reported as done, not as a failure. An id HubSpot does not know is permanent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from donor_sync.delivery.connectors.hubspot.client import HubSpotClient, Reply
from donor_sync.delivery.connectors.hubspot.errors import classify
from donor_sync.delivery.connectors.hubspot.results import failure
from donor_sync.delivery.connectors.hubspot.settings import ObjectSpec
from donor_sync.delivery.contracts import FailureClass, OutboundRecord, RecordResult


def _surviving_id(client: HubSpotClient, spec: ObjectSpec, remote_id: str) -> str | None:
    """Return the id ``remote_id`` resolves to now (HubSpot follows merged ids), None when unknown."""
    path = f"{client.paths.objects(spec.object_type)}/{remote_id}"
    reply = client.request("GET", path, params={"properties": "hs_object_id"}, accept=(404,))
    if reply.status == 404 or not isinstance(reply.body, dict):
        return None
    return str(reply.body.get("id")) if reply.body.get("id") else None


def _not_found(record: OutboundRecord, reply: Reply, primary: str, merged: str) -> RecordResult:
    body: dict[str, Any] = reply.body if isinstance(reply.body, dict) else {}
    named = (body.get("context") or {}).get("id") or []
    if primary in named:
        code, which = "MERGE_PRIMARY_NOT_FOUND", "primary"
    elif merged in named:
        code, which = "MERGE_SOURCE_NOT_FOUND", "merged"
    else:
        code, which = "MERGE_OBJECT_NOT_FOUND", "primary or merged"
    return failure(
        record,
        FailureClass.PERMANENT,
        code,
        f"HubSpot holds no record with the {which} id (deleted, or never created); "
        "check the donor's destination ids before replaying",
        http_status=reply.status,
        request_id=reply.request_id,
    )


def merge_one(client: HubSpotClient, spec: ObjectSpec, record: OutboundRecord) -> RecordResult:
    """Merge one pair; return the surviving id or a classified failure."""
    primary = str(record.payload.get("primary_remote_id") or "").strip()
    merged = str(record.payload.get("merged_remote_id") or "").strip()
    if not primary or not merged:
        return failure(
            record,
            FailureClass.VALIDATION,
            "MERGE_IDS_MISSING",
            "a merge needs primary_remote_id and merged_remote_id in its payload",
        )
    if primary == merged:
        return RecordResult(record.outbox_id, ok=True, remote_id=primary, created=False)
    path = f"{client.paths.objects(spec.object_type)}/merge"
    body = {"primaryObjectId": primary, "objectIdToMerge": merged}
    reply = client.request("POST", path, json=body, accept=(400, 404))
    if reply.status < 400 and isinstance(reply.body, dict) and reply.body.get("id"):
        return RecordResult(
            record.outbox_id,
            ok=True,
            remote_id=str(reply.body["id"]),
            created=False,
            http_status=reply.status,
            vendor_request_id=reply.request_id,
        )
    if reply.status == 404:
        return _not_found(record, reply, primary, merged)
    survivor = _surviving_id(client, spec, primary)
    if survivor is not None and survivor == _surviving_id(client, spec, merged):
        return RecordResult(
            record.outbox_id,
            ok=True,
            remote_id=survivor,
            created=False,
            http_status=reply.status,
            vendor_request_id=reply.request_id,
        )
    error = classify(reply.body if isinstance(reply.body, dict) else {}, http_status=reply.status)
    return failure(
        record,
        FailureClass.PERMANENT,
        f"MERGE_REJECTED_{error.code}",
        f"HubSpot refused the merge: {error.message}",
        http_status=reply.status,
        request_id=reply.request_id,
    )


def merge(client: HubSpotClient, spec: ObjectSpec, records: Sequence[OutboundRecord]) -> list[RecordResult]:
    """Merge each record's pair (HubSpot has no batch merge: one call each)."""
    return [merge_one(client, spec, record) for record in records]
