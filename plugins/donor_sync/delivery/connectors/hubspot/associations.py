"""Associations v4 in batches: link each deal to its donor's contact (default or labelled type).

An association record depends on two records that landed first (``RecordRef("deal",
gift_key)`` and ``RecordRef("contact", donor_id)``); the push engine fills
``OutboundRecord.remote_refs`` with their HubSpot ids. Linking twice is harmless (HubSpot keeps
one link per type), so a re-sent batch changes nothing. The record's remote id is
``"<from id>:<to id>"``, which is also what archiving falls back on.

HubSpot's 207 errors for associations name the missing object's id, not the input: an error is
given to every input holding that id (ids are unique per object type, and the failure is the
same for each of them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from donor_sync.delivery.connectors.hubspot.client import HubSpotClient
from donor_sync.delivery.connectors.hubspot.objects import chunks
from donor_sync.delivery.connectors.hubspot.results import Sent, failure, map_batch
from donor_sync.delivery.connectors.hubspot.settings import AssociationSpec, AssociationType, ObjectSpec
from donor_sync.delivery.contracts import FailureClass, OutboundRecord, RecordResult


def _ref_id(record: OutboundRecord, entity: str) -> str | None:
    """Return the remote id of the record ``record`` depends on in ``entity``."""
    for ref in record.depends_on:
        if ref.entity == entity and record.remote_refs.get(ref):
            return str(record.remote_refs[ref])
    return None


def _pair(record: OutboundRecord, spec: AssociationSpec) -> tuple[str, str] | None:
    from_id, to_id = _ref_id(record, spec.from_entity), _ref_id(record, spec.to_entity)
    if from_id and to_id:
        return from_id, to_id
    if record.remote_id and record.remote_id.count(":") == 1:
        left, right = record.remote_id.split(":")
        return left, right
    return None


def _types(record: OutboundRecord, spec: AssociationSpec) -> tuple[AssociationType, ...]:
    """Return the record's own association types (payload ``types``) or the connection's."""
    raw = record.payload.get("types")
    if isinstance(raw, list) and raw:
        return tuple(
            AssociationType(str(t["associationCategory"]), int(t["associationTypeId"]))
            for t in raw
            if isinstance(t, Mapping)
        )
    return spec.types


def _not_landed(record: OutboundRecord, spec: AssociationSpec) -> RecordResult:
    return failure(
        record,
        FailureClass.TRANSIENT,
        "DEPENDENCY_NOT_LANDED",
        f"the {spec.from_entity} or {spec.to_entity} this association links has no HubSpot id yet",
    )


def _pair_key(result: Mapping[str, Any]) -> list[str]:
    """Return ``"from:to"`` of a default (``from``/``to``) or labelled (``fromObjectId``) result."""
    if "fromObjectId" in result:
        return [f"{result['fromObjectId']}:{result['toObjectId']}"]
    left, right = (result.get("from") or {}).get("id"), (result.get("to") or {}).get("id")
    return [f"{left}:{right}"] if left is not None and right is not None else []


def associate(
    client: HubSpotClient,
    spec: AssociationSpec,
    objects: Mapping[str, ObjectSpec],
    records: Sequence[OutboundRecord],
) -> list[RecordResult]:
    """Link each record's two objects; one result per record, in order."""
    from_type, to_type = objects[spec.from_entity].object_type, objects[spec.to_entity].object_type
    base = client.paths.associations(from_type, to_type)
    outcome: dict[int, RecordResult] = {}
    groups: dict[tuple[AssociationType, ...], list[Sent]] = {}
    for record in records:
        pair = _pair(record, spec)
        if pair is None:
            outcome[record.outbox_id] = _not_landed(record, spec)
            continue
        groups.setdefault(_types(record, spec), []).append(Sent(record, (f"{pair[0]}:{pair[1]}", *pair)))
    for types, items in groups.items():
        for chunk in chunks(items):
            inputs: list[dict[str, Any]] = []
            for item in chunk:
                entry: dict[str, Any] = {"from": {"id": item.keys[1]}, "to": {"id": item.keys[2]}}
                if types:
                    entry["types"] = [t.as_json() for t in types]
                inputs.append(entry)
            path = f"{base}/batch/create" if types else f"{base}/batch/associate/default"
            reply = client.post(path, {"inputs": inputs})
            for result in map_batch(chunk, reply, result_keys=_pair_key, remote_id=_remote_id):
                outcome[result.outbox_id] = result
    return [outcome[record.outbox_id] for record in records]


def _remote_id(result: Mapping[str, Any]) -> str | None:
    keys = _pair_key(result)
    return keys[0] if keys else None


def unlink(
    client: HubSpotClient,
    spec: AssociationSpec,
    objects: Mapping[str, ObjectSpec],
    records: Sequence[OutboundRecord],
) -> list[RecordResult]:
    """Remove every link between each record's two objects (``batch/archive``, idempotent)."""
    from_type, to_type = objects[spec.from_entity].object_type, objects[spec.to_entity].object_type
    path = f"{client.paths.associations(from_type, to_type)}/batch/archive"
    pairs = {record.outbox_id: _pair(record, spec) for record in records}
    known = [pair for pair in pairs.values() if pair]
    request_id = None
    for chunk in chunks(list(dict.fromkeys(known))):
        inputs = [{"from": {"id": left}, "to": [{"id": right}]} for left, right in chunk]
        request_id = client.post(path, {"inputs": inputs}).request_id
    return [
        RecordResult(
            record.outbox_id,
            ok=True,
            remote_id=f"{pair[0]}:{pair[1]}" if (pair := pairs[record.outbox_id]) else None,
            vendor_request_id=request_id,
        )
        for record in records
    ]
