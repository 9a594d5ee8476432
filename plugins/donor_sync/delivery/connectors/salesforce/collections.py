"""sObject Collections: up to 200 records per call, one result per record in input order.

``allOrNone`` is always false, so one bad record never takes its batch down. Records that fail
with ``UNABLE_TO_LOCK_ROW`` (another transaction held the row: NPSP rollups, triggers) are sent
once more in a single follow-up call; if the lock persists they come back as failures and climb
the retry ladder.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from donor_sync.delivery.connectors.salesforce.client import SalesforceClient, decode_json
from donor_sync.delivery.connectors.salesforce.errors import SfError, parse_rest_errors
from donor_sync.delivery.connectors.salesforce.soql import ident
from donor_sync.delivery.contracts import DestinationUnavailableError, FailureClass

log = logging.getLogger(__name__)

MAX_RECORDS = 200


@dataclass(frozen=True)
class RowOutcome:
    """What Salesforce said about one record (Collections result or Bulk result row)."""

    ok: bool
    remote_id: str | None = None
    created: bool | None = None
    errors: tuple[SfError, ...] = ()

    @property
    def locked(self) -> bool:
        """Whether the record failed only because a row was locked."""
        return not self.ok and any(e.code == "UNABLE_TO_LOCK_ROW" for e in self.errors)


def upsert(
    client: SalesforceClient, sobject: str, ext_field: str, records: Sequence[Mapping[str, Any]]
) -> list[RowOutcome]:
    """Upsert ``records`` (each carrying ``ext_field``) on ``ext_field``; return results in order."""
    path = f"/composite/sobjects/{ident(sobject)}/{ident(ext_field)}"
    return _in_chunks(records, lambda chunk: _send(client, "PATCH", path, sobject, chunk))


def create(client: SalesforceClient, sobject: str, records: Sequence[Mapping[str, Any]]) -> list[RowOutcome]:
    """Insert ``records``; return results in order."""
    return _in_chunks(records, lambda chunk: _send(client, "POST", "/composite/sobjects", sobject, chunk))


def update(client: SalesforceClient, sobject: str, records: Sequence[Mapping[str, Any]]) -> list[RowOutcome]:
    """Update ``records`` by their ``Id``; return results in order."""
    return _in_chunks(records, lambda chunk: _send(client, "PATCH", "/composite/sobjects", sobject, chunk))


def delete(client: SalesforceClient, ids: Sequence[str]) -> list[RowOutcome]:
    """Delete records by id; return results in order."""

    def send(chunk: Sequence[str]) -> list[RowOutcome]:
        response = client.request(
            "DELETE", "/composite/sobjects", params={"ids": ",".join(chunk), "allOrNone": "false"}
        )
        return _outcomes(decode_json(response), len(chunk))

    return _in_chunks(ids, send)


def _in_chunks(items: Sequence[Any], send: Callable[[Sequence[Any]], list[RowOutcome]]) -> list[RowOutcome]:
    """Send ``items`` in chunks of ``MAX_RECORDS``, then the row-locked ones once more."""
    results: list[RowOutcome] = []
    for start in range(0, len(items), MAX_RECORDS):
        results.extend(send(items[start : start + MAX_RECORDS]))
    locked = [i for i, r in enumerate(results) if r.locked]
    if locked:
        log.info("Retrying %d row-locked records once", len(locked))
        for start in range(0, len(locked), MAX_RECORDS):
            positions = locked[start : start + MAX_RECORDS]
            for position, outcome in zip(positions, send([items[i] for i in positions]), strict=True):
                results[position] = outcome
    return results


def _send(
    client: SalesforceClient, method: str, path: str, sobject: str, records: Sequence[Mapping[str, Any]]
) -> list[RowOutcome]:
    body = {
        "allOrNone": False,
        "records": [{"attributes": {"type": sobject}, **record} for record in records],
    }
    return _outcomes(decode_json(client.request(method, path, json=body)), len(records))


def _outcomes(body: Any, expected: int) -> list[RowOutcome]:
    """Parse SaveResults / UpsertResults; a count that does not match the request is a server fault."""
    if not isinstance(body, list) or len(body) != expected:
        got = len(body) if isinstance(body, list) else "no"
        raise DestinationUnavailableError(
            f"Salesforce returned {got} results for {expected} records",
            error_class=FailureClass.TRANSIENT,
            error_code="MALFORMED_RESPONSE",
        )
    outcomes: list[RowOutcome] = []
    for raw in body:
        item: dict[str, Any] = raw if isinstance(raw, dict) else {}
        if item.get("success"):
            created = item.get("created")
            outcomes.append(RowOutcome(True, item.get("id"), bool(created) if created is not None else None))
        else:
            outcomes.append(
                RowOutcome(False, item.get("id"), None, tuple(parse_rest_errors(item.get("errors"))))
            )
    return outcomes
