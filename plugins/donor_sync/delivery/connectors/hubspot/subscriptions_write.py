"""Write HubSpot communication-subscription statuses with their legal basis (v4 batch write).

The ``subscription_statuses`` object of ``include/mappings/destinations/hubspot.yaml`` renders a
donor's email consent into one flat payload per donor: ``subscriberIdString`` (the email HubSpot
keys statuses by), the ``contact`` it belongs to (a dependency: the statuses wait until the
contact has landed), and per subscription type ``<id>:statusState``, ``<id>:legalBasis`` and
``<id>:legalBasisExplanation``. A type the donor made no choice for has no ``statusState`` and is
not sent, so donor-sync never subscribes anyone without a choice nor erases a status set in HubSpot.

:func:`write_statuses` turns each payload into v4 inputs and sends them with
``POST /communication-preferences/v4/statuses/batch/write`` (at most 100 inputs per call; one
email at most once per call, since two donors may share one). A record succeeds when HubSpot
returned a status for each of its inputs; a 207 error is mapped back by the input id it names
(the email, which is never logged nor put in a message) and classified like every HubSpot error.
Writing the same statuses again changes nothing, so a re-sent batch is harmless.

What each subscription type means lives in one place,
``include/mappings/privacy/consent_pullback.yaml`` (``destinations.hubspot.subscriptions``), which
the pull-back of unsubscribes reads too. :func:`check_mapping` proves the mapping agrees with it:
each type written is defined there on channel email with one purpose, and its fields read that
purpose's consent; every such type is written.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from donor_sync.delivery.connectors.hubspot.client import HubSpotClient, Reply
from donor_sync.delivery.connectors.hubspot.errors import classify, error_ids
from donor_sync.delivery.connectors.hubspot.results import failure
from donor_sync.delivery.contracts import FailureClass, OutboundRecord, RecordResult

if TYPE_CHECKING:
    from donor_sync.delivery.mapping.model import DestinationMapping, ObjectMapping

__all__ = [
    "ENTITY",
    "MAX_INPUTS",
    "OBJECT",
    "WRITE_PATH",
    "check_mapping",
    "status_inputs",
    "write_statuses",
]

log = logging.getLogger(__name__)

#: The donor-sync entity and the mapping's ``object`` of subscription statuses.
ENTITY = "subscription_statuses"
OBJECT = "communication_preferences"
WRITE_PATH = "/communication-preferences/v4/statuses/batch/write"
#: HubSpot's batch cap (the emulator enforces the same 100).
MAX_INPUTS = 100
SUBSCRIBER = "subscriberIdString"
PARTS = ("statusState", "legalBasis", "legalBasisExplanation")
STATES = frozenset({"SUBSCRIBED", "UNSUBSCRIBED", "NOT_SPECIFIED"})
_KEY = re.compile(r"^(?P<id>[0-9]+):(?P<part>[A-Za-z]+)$")
_CONSENT_FIELD = re.compile(r"^consent_(?P<purpose>[a-z]+)_(?P<channel>[a-z]+)_(status|basis)$")


def status_inputs(payload: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Return the v4 batch-write inputs of one rendered payload (types without a status are left out).

    :raises ValueError: a ``statusState`` HubSpot does not know (the message names the type only).
    """
    subscriber = str(payload.get(SUBSCRIBER) or "").strip()
    by_type: dict[str, dict[str, Any]] = {}
    for key, value in payload.items():
        match = _KEY.match(str(key))
        if match is None or value is None:
            continue
        by_type.setdefault(match["id"], {})[match["part"]] = value
    inputs: list[dict[str, Any]] = []
    for type_id in sorted(by_type, key=int):
        parts = by_type[type_id]
        state = parts.get("statusState")
        if state is None:
            continue
        if state not in STATES:
            raise ValueError(
                f"subscription type {type_id}: statusState is not one of {', '.join(sorted(STATES))}"
            )
        item: dict[str, Any] = {
            SUBSCRIBER: subscriber,
            "subscriptionId": int(type_id),
            "statusState": state,
            "channel": "EMAIL",
        }
        if state == "SUBSCRIBED":  # a legal basis explains a subscribe; HubSpot ignores it otherwise
            for part in ("legalBasis", "legalBasisExplanation"):
                if parts.get(part):
                    item[part] = parts[part]
        inputs.append(item)
    return inputs


# -- push ----------------------------------------------------------------------------------------


@dataclass
class _Prepared:
    record: OutboundRecord
    email: str
    inputs: list[dict[str, Any]]


@dataclass
class _Call:
    items: list[_Prepared] = field(default_factory=list)
    emails: set[str] = field(default_factory=set)
    size: int = 0


def _contact_id(record: OutboundRecord) -> str | None:
    for ref in record.depends_on:
        if ref.entity == "contact" and record.remote_refs.get(ref):
            return str(record.remote_refs[ref])
    return record.remote_id


def _calls(prepared: Sequence[_Prepared]) -> list[_Call]:
    """Pack records into calls of at most MAX_INPUTS inputs, each email at most once per call."""
    calls: list[_Call] = []
    for item in prepared:
        target = next(
            (c for c in calls if item.email not in c.emails and c.size + len(item.inputs) <= MAX_INPUTS), None
        )
        if target is None:
            target = _Call()
            calls.append(target)
        target.items.append(item)
        target.emails.add(item.email)
        target.size += len(item.inputs)
    return calls


def _ok(record: OutboundRecord, reply: Reply | None) -> RecordResult:
    return RecordResult(
        record.outbox_id,
        ok=True,
        remote_id=_contact_id(record),
        created=False,
        http_status=reply.status if reply else None,
        vendor_request_id=reply.request_id if reply else None,
    )


def _map_reply(call: _Call, reply: Reply) -> list[RecordResult]:
    """Return one result per record of ``call`` from HubSpot's 200/207 answer."""
    body = reply.body if isinstance(reply.body, Mapping) else {}
    written: set[tuple[str, str]] = set()
    for result in body.get("results") or []:
        if isinstance(result, Mapping):
            email = str(result.get(SUBSCRIBER) or "").strip().casefold()
            written.add((email, str(result.get("subscriptionId"))))
    refused: dict[int, RecordResult] = {}
    by_email = {item.email: item for item in call.items}
    for error in body.get("errors") or []:
        if not isinstance(error, Mapping):
            continue
        vendor = classify(error, http_status=None)
        _, ids = error_ids(error)
        for input_id in ids:
            item = by_email.get(input_id.strip().casefold())
            if item is not None and item.record.outbox_id not in refused:
                refused[item.record.outbox_id] = failure(
                    item.record,
                    vendor.error_class,
                    vendor.code,
                    f"subscription status refused: {vendor.message}",
                    http_status=reply.status,
                    request_id=reply.request_id,
                )
    out: list[RecordResult] = []
    for item in call.items:
        if item.record.outbox_id in refused:
            out.append(refused[item.record.outbox_id])
        elif all((item.email, str(i["subscriptionId"])) in written for i in item.inputs):
            out.append(_ok(item.record, reply))
        else:
            out.append(
                failure(
                    item.record,
                    FailureClass.TRANSIENT,
                    "MISSING_FROM_RESPONSE",
                    "HubSpot's answer named neither a status nor an error for this record; it is sent again",
                    http_status=reply.status,
                    request_id=reply.request_id,
                )
            )
    return out


def write_statuses(client: HubSpotClient, records: Sequence[OutboundRecord]) -> list[RecordResult]:
    """Write the subscription statuses of ``records``; return one result per record, in order.

    :raises BatchRejectedError: HubSpot refused a call as a whole (the push engine splits it).
    :raises DestinationUnavailableError: auth, scope, quota, or failures outlasting the retries.
    """
    outcome: dict[int, RecordResult] = {}
    prepared: list[_Prepared] = []
    for record in records:
        email = str(record.payload.get(SUBSCRIBER) or "").strip().casefold()
        try:
            inputs = status_inputs(record.payload)
        except ValueError as exc:
            outcome[record.outbox_id] = failure(
                record, FailureClass.VALIDATION, "INVALID_STATUS_STATE", str(exc)
            )
            continue
        if not inputs:  # no choice made for any type: nothing to write
            outcome[record.outbox_id] = _ok(record, None)
        elif not email:
            outcome[record.outbox_id] = failure(
                record,
                FailureClass.VALIDATION,
                "MISSING_SUBSCRIBER",
                f"the record has no {SUBSCRIBER} (email): HubSpot keys subscription statuses by it",
            )
        elif len(inputs) > MAX_INPUTS:
            outcome[record.outbox_id] = failure(
                record,
                FailureClass.VALIDATION,
                "TOO_MANY_SUBSCRIPTIONS",
                f"{len(inputs)} subscription types for one donor; HubSpot takes {MAX_INPUTS} per call",
            )
        else:
            prepared.append(_Prepared(record, email, inputs))
    calls = _calls(prepared)
    for call in calls:
        reply = client.request(
            "POST", WRITE_PATH, json={"inputs": [i for item in call.items for i in item.inputs]}
        )
        for result in _map_reply(call, reply):
            outcome[result.outbox_id] = result
    log.info(
        "HubSpot subscription statuses: %d records, %d inputs, %d calls",
        len(records),
        sum(len(p.inputs) for p in prepared),
        len(calls),
    )
    return [outcome[r.outbox_id] for r in records]


# -- config check --------------------------------------------------------------------------------


def _subscription_object(mapping: DestinationMapping) -> tuple[int, ObjectMapping] | None:
    for i, obj in enumerate(mapping.objects):
        if obj.object == OBJECT:
            return i, obj
    return None


def check_mapping(
    mapping: DestinationMapping,
    subscriptions: Mapping[str, Any],
    *,
    pullback_path: Path | str,
) -> list[str]:
    """Return the disagreements between the mapping's subscription statuses and the subscription
    definitions (``consent_pullback.yaml``'s ``destinations.hubspot.subscriptions``: id -> rule with
    ``channel`` and ``purposes``), each naming the file and the field.
    """
    found = _subscription_object(mapping)
    if found is None:
        return []
    index, obj = found
    where = f"{mapping.path or mapping.destination}: objects[{index}] ({obj.name})"
    defined = f"{pullback_path}: destinations.hubspot.subscriptions"
    problems: list[str] = []
    written: set[str] = set()
    for j, f in enumerate(obj.fields):
        match = _KEY.match(f.to)
        if match is None:
            continue
        at = f"{where}.fields[{j}] ({f.to})"
        type_id, part = match["id"], match["part"]
        if part not in PARTS:
            problems.append(f"{at}: {part!r} is not one of {', '.join(PARTS)}")
        rule = subscriptions.get(type_id)
        if rule is None:
            problems.append(f"{at}: subscription type {type_id} is not defined in {defined}")
            continue
        if rule.channel != "email" or len(rule.purposes) != 1:
            problems.append(
                f"{at}: {defined}.{type_id} must be channel email with exactly one purpose to be written "
                f"(it is {rule.channel} for {', '.join(rule.purposes)})"
            )
            continue
        if part == "statusState":
            written.add(type_id)
        reads = [*f.sources, *([f.when.field] if f.when else [])]
        for name in reads:
            consent = _CONSENT_FIELD.match(name)
            if consent and (consent["purpose"], consent["channel"]) != (rule.purposes[0], "email"):
                problems.append(
                    f"{at}: reads {name} but {defined}.{type_id} means {rule.purposes[0]} on email"
                )
    for type_id, rule in subscriptions.items():
        if rule.channel == "email" and len(rule.purposes) == 1 and type_id not in written:
            problems.append(
                f"{where}: {defined}.{type_id} has no '{type_id}:statusState' field: it is never written"
            )
    return problems
