"""Records changed since a time, through the CRM search API, for nightly reconciliation.

Search has its own, lower rate limit (about 4 requests a second) which the client paces, and
stops at 10,000 results per query: past that, the query starts again from the last modification
time seen, skipping the records already yielded at that exact time.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from donor_sync.delivery.connectors.hubspot.client import HubSpotClient

log = logging.getLogger(__name__)

SEARCH_PAGE_MAX = 200
SEARCH_RESULT_CAP = 10_000
#: Most ids excluded server-side when a query restarts at a modification time.
_NOT_IN_MAX = 100


def _epoch_ms(value: Any) -> int | None:
    """Return a HubSpot timestamp (ISO 8601 or epoch milliseconds) as epoch milliseconds."""
    if value is None or value == "":
        return None
    text = str(value)
    if text.isdigit():
        return int(text)
    try:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


def _query(
    modified_property: str, cursor_ms: int, seen_at_cursor: set[str], wanted: list[str], size: int
) -> dict[str, Any]:
    """Return a search body for records modified at or after ``cursor_ms`` not yet yielded.

    Records already yielded at exactly ``cursor_ms`` are excluded by HubSpot (``NOT_IN`` on
    ``hs_object_id``) so a restart always makes progress, even when many records share a time.
    """
    if seen_at_cursor and len(seen_at_cursor) <= _NOT_IN_MAX:
        groups = [
            {"filters": [{"propertyName": modified_property, "operator": "GT", "value": str(cursor_ms)}]},
            {
                "filters": [
                    {"propertyName": modified_property, "operator": "EQ", "value": str(cursor_ms)},
                    {"propertyName": "hs_object_id", "operator": "NOT_IN", "values": sorted(seen_at_cursor)},
                ]
            },
        ]
    else:
        groups = [
            {"filters": [{"propertyName": modified_property, "operator": "GTE", "value": str(cursor_ms)}]}
        ]
    return {
        "filterGroups": groups,
        "sorts": [{"propertyName": modified_property, "direction": "ASCENDING"}],
        "properties": wanted,
        "limit": size,
    }


def changed_since(
    client: HubSpotClient,
    object_type: str,
    modified_property: str,
    properties: Sequence[str],
    since: datetime,
    *,
    page_size: int = 100,
    result_cap: int = SEARCH_RESULT_CAP,
) -> Iterator[dict[str, Any]]:
    """Yield records of ``object_type`` modified at or after ``since``, oldest change first.

    Each item is HubSpot's ``{"id", "properties", "createdAt", "updatedAt", "archived"}``.
    The result cap is found out when paging stops short of ``total``, whatever its value.
    """
    if since.tzinfo is None:
        raise ValueError("changed_since needs an aware datetime (UTC)")
    path = f"{client.paths.objects(object_type)}/search"
    wanted = sorted({*properties, modified_property})
    cursor_ms = int(since.timestamp() * 1000)
    at_cursor: set[str] = set()  # ids already yielded whose modification time is cursor_ms
    size = max(1, min(page_size, SEARCH_PAGE_MAX))
    while True:
        query = _query(modified_property, cursor_ms, at_cursor, wanted, size)
        offset, last_ms, last_ids, progressed = 0, cursor_ms, set(at_cursor), False
        while True:
            body = (
                client.request(
                    "POST", path, json={**query, "after": str(offset)} if offset else query, search=True
                ).body
                or {}
            )
            results = body.get("results") or []
            for record in results:
                stamp = _epoch_ms((record.get("properties") or {}).get(modified_property))
                record_id = str(record.get("id"))
                if stamp == cursor_ms and record_id in at_cursor:
                    continue  # only when the exclusion list was too long for NOT_IN
                progressed = True
                if stamp is not None and stamp > last_ms:
                    last_ms, last_ids = stamp, set()
                if stamp == last_ms:
                    last_ids.add(record_id)
                yield record
            offset += len(results)
            following = ((body.get("paging") or {}).get("next") or {}).get("after")
            if following and int(following) + size <= result_cap:
                offset = int(following)
                continue
            if int(body.get("total") or 0) <= offset or not results:
                return
            break  # the result cap: query again from the last modification time seen
        if not progressed:
            log.warning(
                "HubSpot search on %s: more records than one search returns share one modification "
                "time; stopping there",
                object_type,
            )
            return
        cursor_ms, at_cursor = last_ms, last_ids
