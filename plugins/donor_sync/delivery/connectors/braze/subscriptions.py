"""Subscription groups: states written with ``/v2/subscription/status/set``, read back with
``/subscription/status/get``.

The ``subscription_groups`` object of ``include/mappings/destinations/braze.yaml`` renders one
payload per donor: the ``user`` it belongs to (a dependency: written once the user has landed) and,
per Braze subscription group id, ``subscribed`` or ``unsubscribed``, compiled from the consent of
the purpose and channel the field reads (``consent_<purpose>_<channel>_status``). A group the donor
made no choice for is absent and not sent: donor-sync never subscribes anyone without a choice.
:func:`group_purposes` reads that correspondence back from the mapping, for the pull-back.

One v2 call carries several groups (email and SMS alike, by external id): records are grouped by
(group, state), each entry holds at most 50 external ids (Braze's cap) and a call at most
``MAX_GROUPS`` entries. Writing a state again changes nothing, so a resent batch is harmless; a
400 is a batch rejection (the push engine splits the batch).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from donor_sync.delivery.connectors.braze.client import BrazeClient
from donor_sync.delivery.connectors.braze.results import failure, ok
from donor_sync.delivery.connectors.braze.track import USER_REF, owner_id
from donor_sync.delivery.contracts import FailureClass, OutboundRecord, RecordResult

if TYPE_CHECKING:
    from donor_sync.delivery.mapping.model import DestinationMapping

__all__ = [
    "ENTITY",
    "GET_PATH",
    "MAX_IDS",
    "SET_PATH",
    "STATES",
    "group_purposes",
    "read_states",
    "set_states",
]

log = logging.getLogger(__name__)

ENTITY = "subscription_groups"
SET_PATH = "/v2/subscription/status/set"
GET_PATH = "/subscription/status/get"
#: External ids per group entry (and per status/get call): Braze's cap.
MAX_IDS = 50
#: Group entries per v2 call.
MAX_GROUPS = 25
STATES = frozenset({"subscribed", "unsubscribed"})
_CONSENT = re.compile(r"^consent_(?P<purpose>[a-z]+)_(?P<channel>[a-z]+)_status$")


def _chunks(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def group_purposes(mapping: DestinationMapping) -> dict[str, tuple[str, str]]:
    """Return ``{group id: (purpose, channel)}`` of the mapping's subscription groups object."""
    found: dict[str, tuple[str, str]] = {}
    for obj in mapping.objects:
        if obj.name != ENTITY:
            continue
        for f in obj.fields:
            match = _CONSENT.match(f.sources[0]) if len(f.sources) == 1 else None
            if match and f.reference is None:
                found[f.to] = (match["purpose"], match["channel"])
    return found


def _states(record: OutboundRecord) -> dict[str, str]:
    return {str(k): str(v) for k, v in record.payload.items() if k != USER_REF and v is not None}


def set_states(client: BrazeClient, records: Sequence[OutboundRecord]) -> list[RecordResult]:
    """Write the subscription-group states of ``records``; one result per record, in order.

    :raises BatchRejectedError: Braze refused a call (unknown group id...): the engine splits.
    :raises DestinationUnavailableError: auth, permission, or failures outlasting the retries.
    """
    outcome: dict[int, RecordResult] = {}
    members: dict[tuple[str, str], list[str]] = {}
    sent: list[OutboundRecord] = []
    for record in records:
        states = _states(record)
        external_id = owner_id(record) or record.record_key
        bad = sorted(g for g, s in states.items() if s not in STATES)
        if bad:
            outcome[record.outbox_id] = failure(
                record,
                FailureClass.VALIDATION,
                "INVALID_SUBSCRIPTION_STATE",
                f"groups {', '.join(bad)}: a state is subscribed or unsubscribed",
            )
            continue
        for group, state in states.items():
            members.setdefault((group, state), []).append(external_id)
        if states:
            sent.append(record)
        else:  # no choice made for any group: nothing to write
            outcome[record.outbox_id] = ok(record, external_id)
    entries = [
        {"subscription_group_id": group, "subscription_state": state, "external_ids": chunk}
        for (group, state), ids in sorted(members.items())
        for chunk in _chunks(list(dict.fromkeys(ids)), MAX_IDS)
    ]
    status: int | None = None
    for start in range(0, len(entries), MAX_GROUPS):
        status = client.post(SET_PATH, {"subscription_groups": entries[start : start + MAX_GROUPS]}).status
    for record in sent:
        outcome[record.outbox_id] = ok(record, owner_id(record) or record.record_key, http_status=status)
    log.info("Braze subscription groups: %d records, %d entries", len(records), len(entries))
    return [outcome[r.outbox_id] for r in records]


def read_states(client: BrazeClient, group_id: str, external_ids: Sequence[str]) -> dict[str, str]:
    """Return ``{external id: state}`` Braze holds in ``group_id`` (``subscribed``,
    ``unsubscribed`` or ``unknown``), 50 ids per call."""
    found: dict[str, str] = {}
    for chunk in _chunks(list(dict.fromkeys(external_ids)), MAX_IDS):
        reply = client.get(GET_PATH, {"subscription_group_id": group_id, "external_id": ",".join(chunk)})
        body = reply.body if isinstance(reply.body, Mapping) else {}
        statuses = body.get("status")
        if isinstance(statuses, Mapping):
            found.update({str(k): str(v).lower() for k, v in statuses.items() if str(k) in chunk})
    return found
