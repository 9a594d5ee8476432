"""``POST /users/track``: user attributes and custom events, at most 75 objects per request.

* **Attributes** (entity ``user``): one object per donor, ``external_id`` = the donor id (the
  record key), then the mapped fields. Upserts by external id, so a resend changes nothing;
  operation ``update`` adds ``_update_existing_only: true`` (Braze then creates nobody).
* **Events** (entity ``donation_event``): ``{"external_id", "name", "time", "properties"}``;
  the mapping's ``properties.<name>`` fields are nested under ``properties``, with the record key
  (the gift key) as ``properties.gift_key``. Braze never
  deduplicates events, so the mapping sends each gift once (``create_only``).
* **Object limit.** Braze takes at most 75 objects per request, counted over attributes, events
  and purchases together (legacy accounts: 75 per array). One call of the connector carries one
  array, so chunks of ``max_objects`` satisfy both rules.
* **Per-object errors.** A 201 may list ``errors`` (``type``, ``input_array``, ``index``): that
  object's record fails as ``validation`` (code from the text, :func:`results.error_code`), the
  others succeed. A 400 whose errors all name objects (no object was valid) fails each named
  record the same way; a 400 naming none (too many objects, bad JSON) is a batch rejection.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from donor_sync.delivery.connectors.braze.client import BrazeClient, Reply
from donor_sync.delivery.connectors.braze.results import error_code, failure, ok, safe_text
from donor_sync.delivery.contracts import (
    BatchRejectedError,
    FailureClass,
    Operation,
    OutboundRecord,
    RecordResult,
)

__all__ = ["MAX_OBJECTS", "PATH", "event_object", "track_events", "track_users", "user_object"]

log = logging.getLogger(__name__)

PATH = "/users/track"
#: Braze's cap on objects per /users/track request (attributes + events + purchases).
MAX_OBJECTS = 75
#: Payload fields that point at the record's user (a mapping reference), not Braze fields.
USER_REF = "user"
PROPERTIES_PREFIX = "properties."


def user_object(record: OutboundRecord) -> dict[str, Any]:
    """Return the attributes object of a ``user`` record."""
    obj: dict[str, Any] = {"external_id": record.record_key}
    obj.update({k: v for k, v in record.payload.items() if k not in ("external_id", USER_REF)})
    if record.operation is Operation.UPDATE:
        obj["_update_existing_only"] = True
    return obj


def owner_id(record: OutboundRecord) -> str | None:
    """Return the external id of the user a child record (an event) belongs to."""
    ref = record.payload.get(USER_REF)
    if isinstance(ref, Mapping) and ref.get("external_id"):
        return str(ref["external_id"])
    for dep in record.depends_on:
        if dep.entity == USER_REF:
            return dep.record_key
    return record.donor_id


def event_object(record: OutboundRecord) -> dict[str, Any]:
    """Return the custom event object of an event record (``properties.*`` nested; the record
    key, the gift key, as ``properties.gift_key``)."""
    obj: dict[str, Any] = {"external_id": owner_id(record)}
    properties: dict[str, Any] = {"gift_key": record.record_key}
    for key, value in record.payload.items():
        if key == USER_REF:
            continue
        if key.startswith(PROPERTIES_PREFIX):
            properties[key[len(PROPERTIES_PREFIX) :]] = value
        else:
            obj[key] = value
    obj["properties"] = properties
    return obj


def _object_errors(reply: Reply, array: str) -> dict[int, str]:
    body = reply.body if isinstance(reply.body, Mapping) else {}
    found: dict[int, str] = {}
    for item in body.get("errors") or []:
        if not isinstance(item, Mapping) or item.get("input_array", array) != array:
            continue
        index = item.get("index")
        if isinstance(index, int) and not isinstance(index, bool):
            found.setdefault(index, str(item.get("type") or "object refused"))
    return found


def _send(
    client: BrazeClient, array: str, chunk: Sequence[tuple[OutboundRecord, dict[str, Any]]], remote: bool
) -> list[RecordResult]:
    reply = client.post(PATH, {array: [obj for _, obj in chunk]}, keep_client_errors=True)
    errors = _object_errors(reply, array)
    if reply.status == 400 and not errors:
        raise BatchRejectedError(
            f"Braze {PATH} refused the request of {len(chunk)} {array} (HTTP 400)",
            error_class=FailureClass.VALIDATION,
            error_code="BAD_REQUEST",
            http_status=400,
        )
    out: list[RecordResult] = []
    for index, (record, obj) in enumerate(chunk):
        if index in errors:
            text = errors[index]
            out.append(
                failure(
                    record,
                    FailureClass.VALIDATION,
                    error_code(text),
                    f"Braze refused the {array} object: {safe_text(text)}",
                    http_status=reply.status,
                )
            )
        elif reply.status == 400:  # not named, yet nothing was written
            out.append(
                failure(
                    record,
                    FailureClass.TRANSIENT,
                    "NOT_PROCESSED",
                    "Braze refused the request for other objects; sent again",
                    http_status=400,
                )
            )
        else:
            remote_id = str(obj.get("external_id")) if remote else None
            out.append(ok(record, remote_id, http_status=reply.status))
    return out


def _track(
    client: BrazeClient,
    array: str,
    items: Sequence[tuple[OutboundRecord, dict[str, Any]]],
    max_objects: int,
    *,
    remote: bool,
) -> list[RecordResult]:
    results: list[RecordResult] = []
    for start in range(0, len(items), max_objects):
        results += _send(client, array, items[start : start + max_objects], remote)
    return results


def track_users(
    client: BrazeClient, records: Sequence[OutboundRecord], *, max_objects: int = MAX_OBJECTS
) -> list[RecordResult]:
    """Upsert the user attributes of ``records``; remote id = the external id (the donor id)."""
    return _track(client, "attributes", [(r, user_object(r)) for r in records], max_objects, remote=True)


def track_events(
    client: BrazeClient, records: Sequence[OutboundRecord], *, max_objects: int = MAX_OBJECTS
) -> list[RecordResult]:
    """Append one custom event per record; a record whose user has not landed waits."""
    outcome: dict[int, RecordResult] = {}
    ready: list[tuple[OutboundRecord, dict[str, Any]]] = []
    for record in records:
        owner = owner_id(record)
        waiting = [d for d in record.depends_on if d.entity == USER_REF and not record.remote_refs.get(d)]
        if owner is None:
            outcome[record.outbox_id] = failure(
                record, FailureClass.VALIDATION, "MISSING_IDENTIFIER", "the event names no user"
            )
        elif waiting:
            outcome[record.outbox_id] = failure(
                record, FailureClass.TRANSIENT, "DEPENDENCY_NOT_LANDED", "the donor's user has not landed yet"
            )
        else:
            ready.append((record, event_object(record)))
    for result in _track(client, "events", ready, max_objects, remote=False):
        outcome[result.outbox_id] = result
    return [outcome[r.outbox_id] for r in records]
