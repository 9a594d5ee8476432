"""Batch writes of CRM objects (contacts, deals): upsert, create-once, update, archive, reads.

Upserts are keyed on a unique property (``email`` or a custom ``hasUniqueValue`` property such
as ``donor_sync_id``), so re-sending a batch changes nothing that already landed. Each input
carries its outbox id as ``objectWriteTraceId``; :mod:`.results` maps answers back by it.
HubSpot refuses a batch naming one record twice, so such records go in successive calls.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from donor_sync.delivery.connectors.hubspot.client import HubSpotClient
from donor_sync.delivery.connectors.hubspot.results import Sent, failure, map_batch
from donor_sync.delivery.connectors.hubspot.settings import MAX_BATCH_INPUTS, ObjectSpec
from donor_sync.delivery.contracts import FailureClass, OutboundRecord, RecordResult


def record_key(spec: ObjectSpec, record: OutboundRecord) -> str | None:
    """Return the unique-property value a record is upserted on (its email, or its record key)."""
    if spec.keyed_by_email:
        email = record.payload.get("email")
        return str(email).strip() or None if email else None
    return record.record_key


def chunks(items: Sequence[Any], size: int = MAX_BATCH_INPUTS) -> Iterator[Sequence[Any]]:
    """Yield ``items`` in slices of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def waves(items: Sequence[Sent]) -> list[list[Sent]]:
    """Split ``items`` so no call names the same input twice (first key, ignoring case)."""
    result: list[list[Sent]] = []
    seen: list[set[str]] = []
    for item in items:
        key = item.keys[0].casefold() if item.keys else item.trace_id
        for wave, keys in zip(result, seen, strict=True):
            if key not in keys:
                wave.append(item)
                keys.add(key)
                break
        else:
            result.append([item])
            seen.append({key})
    return result


def _missing_key(spec: ObjectSpec, record: OutboundRecord) -> RecordResult:
    return failure(
        record,
        FailureClass.VALIDATION,
        "MISSING_ID_PROPERTY",
        f"the record has no value for {spec.id_property}, the property HubSpot upserts {spec.object_type} on",
    )


def _properties(record: OutboundRecord) -> dict[str, Any]:
    return dict(record.payload)


def _write(
    client: HubSpotClient,
    spec: ObjectSpec,
    endpoint: str,
    items: Sequence[Sent],
    build: Callable[[Sent], dict[str, Any]],
) -> dict[int, RecordResult]:
    """Send ``items`` to ``batch/<endpoint>`` (in waves of distinct ids) and map the answers."""
    outcome: dict[int, RecordResult] = {}
    path = f"{client.paths.objects(spec.object_type)}/batch/{endpoint}"
    for wave in waves(items):
        reply = client.post(path, {"inputs": [build(item) for item in wave]})
        for result in map_batch(wave, reply, result_keys=_result_keys(spec)):
            outcome[result.outbox_id] = result
    return outcome


def _result_keys(spec: ObjectSpec) -> Callable[[Mapping[str, Any]], list[str]]:
    def keys(result: Mapping[str, Any]) -> list[str]:
        found: list[str] = []
        props = result.get("properties") or {}
        if props.get(spec.id_property):
            found.append(str(props[spec.id_property]))
        if result.get("id"):
            found.append(str(result["id"]))
        return found

    return keys


def _in_order(records: Sequence[OutboundRecord], outcome: Mapping[int, RecordResult]) -> list[RecordResult]:
    return [outcome[record.outbox_id] for record in records]


def upsert(client: HubSpotClient, spec: ObjectSpec, records: Sequence[OutboundRecord]) -> list[RecordResult]:
    """Create or update ``records`` by their unique property (``batch/upsert``)."""
    outcome: dict[int, RecordResult] = {}
    sendable: list[Sent] = []
    for record in records:
        key = record_key(spec, record)
        if key is None:
            outcome[record.outbox_id] = _missing_key(spec, record)
        else:
            sendable.append(Sent(record, (key,)))

    def build(item: Sent) -> dict[str, Any]:
        return {
            "id": item.keys[0],
            "idProperty": spec.id_property,
            "properties": _properties(item.record),
            "objectWriteTraceId": item.trace_id,
        }

    for chunk in chunks(sendable):
        outcome.update(_write(client, spec, "upsert", chunk, build))
    return _in_order(records, outcome)


def update(client: HubSpotClient, spec: ObjectSpec, records: Sequence[OutboundRecord]) -> list[RecordResult]:
    """Update records that exist: by remote id when known, else by the unique property."""
    outcome: dict[int, RecordResult] = {}
    sendable: list[Sent] = []
    for record in records:
        key = record.remote_id or record_key(spec, record)
        if key is None:
            outcome[record.outbox_id] = _missing_key(spec, record)
        else:
            sendable.append(Sent(record, (key,)))

    def build(item: Sent) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "id": item.keys[0],
            "properties": _properties(item.record),
            "objectWriteTraceId": item.trace_id,
        }
        if not item.record.remote_id:
            entry["idProperty"] = spec.id_property
        return entry

    for chunk in chunks(sendable):
        outcome.update(_write(client, spec, "update", chunk, build))
    return _in_order(records, outcome)


def read_current(
    client: HubSpotClient,
    spec: ObjectSpec,
    keys: Sequence[str],
    properties: Sequence[str],
    *,
    by_remote_id: bool = False,
) -> dict[str, dict[str, Any]]:
    """Return the current ``properties`` of existing records by key (case-folded) or remote id.

    Keys HubSpot does not know are simply absent (its 207 ``OBJECT_NOT_FOUND``).
    """
    wanted = sorted({*properties, spec.id_property})
    found: dict[str, dict[str, Any]] = {}
    path = f"{client.paths.objects(spec.object_type)}/batch/read"
    for chunk in chunks(list(dict.fromkeys(keys))):
        body: dict[str, Any] = {"inputs": [{"id": key} for key in chunk], "properties": wanted}
        if not by_remote_id:
            body["idProperty"] = spec.id_property
        reply = client.post(path, body)
        for result in (reply.body or {}).get("results") or []:
            props = dict(result.get("properties") or {})
            props["hs_object_id"] = str(result.get("id"))
            key = str(result.get("id")) if by_remote_id else str(props.get(spec.id_property) or "")
            if key:
                found[key.casefold()] = props
    return found


def drop_fields_already_set(
    client: HubSpotClient, spec: ObjectSpec, records: Sequence[OutboundRecord]
) -> list[OutboundRecord]:
    """Return ``records`` without the ``set_if_empty`` fields HubSpot already holds a value for."""
    concerned = [r for r in records if r.set_if_empty & set(r.payload)]
    if not concerned:
        return list(records)
    by_remote_id = all(r.remote_id for r in concerned)
    keys = {
        r.outbox_id: (r.remote_id if by_remote_id else record_key(spec, r))
        for r in concerned
        if (r.remote_id if by_remote_id else record_key(spec, r))
    }
    fields = sorted({f for r in concerned for f in r.set_if_empty & set(r.payload)})
    current = read_current(client, spec, [k for k in keys.values() if k], fields, by_remote_id=by_remote_id)
    trimmed: list[OutboundRecord] = []
    for record in records:
        key = keys.get(record.outbox_id)
        held = current.get(key.casefold()) if key else None
        if not held:
            trimmed.append(record)
            continue
        payload = {
            name: value
            for name, value in record.payload.items()
            if name not in record.set_if_empty or held.get(name) in (None, "")
        }
        trimmed.append(dataclasses.replace(record, payload=payload))
    return trimmed


def create_once(
    client: HubSpotClient, spec: ObjectSpec, records: Sequence[OutboundRecord]
) -> list[RecordResult]:
    """Create records HubSpot does not hold yet; leave existing ones untouched (create-only mode)."""
    outcome: dict[int, RecordResult] = {}
    keyed = {r.outbox_id: record_key(spec, r) for r in records}
    existing = read_current(client, spec, [k for k in keyed.values() if k], [])
    to_create: list[OutboundRecord] = []
    for record in records:
        key = keyed[record.outbox_id]
        held = existing.get(key.casefold()) if key else None
        if held:
            outcome[record.outbox_id] = RecordResult(
                record.outbox_id, ok=True, remote_id=str(held["hs_object_id"]), created=False
            )
        else:
            to_create.append(record)
    for result in upsert(client, spec, to_create):
        outcome[result.outbox_id] = result
    return _in_order(records, outcome)


def archive(client: HubSpotClient, spec: ObjectSpec, records: Sequence[OutboundRecord]) -> list[RecordResult]:
    """Archive records (HubSpot's recycle bin); a record HubSpot does not hold counts as archived."""
    remote: dict[int, str | None] = {r.outbox_id: r.remote_id for r in records}
    unknown = {r.outbox_id: record_key(spec, r) for r in records if not r.remote_id}
    if unknown:
        current = read_current(client, spec, [k for k in unknown.values() if k], [])
        for outbox_id, key in unknown.items():
            held = current.get(key.casefold()) if key else None
            remote[outbox_id] = str(held["hs_object_id"]) if held else None
    ids = [remote_id for remote_id in remote.values() if remote_id]
    path = f"{client.paths.objects(spec.object_type)}/batch/archive"
    request_id = None
    for chunk in chunks(list(dict.fromkeys(ids))):
        request_id = client.post(path, {"inputs": [{"id": remote_id} for remote_id in chunk]}).request_id
    return [
        RecordResult(r.outbox_id, ok=True, remote_id=remote[r.outbox_id], vendor_request_id=request_id)
        for r in records
    ]
