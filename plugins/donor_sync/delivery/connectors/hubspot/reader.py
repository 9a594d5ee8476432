"""HubSpot contacts changed in a window, as reconciliation reads them (:class:`RemoteReader`).

donors_nightly pulls staff edits and merges back from HubSpot: this reader runs the connector's
changed-since search (on the object's last-modified property, oldest first, paging past the
search API's 10,000-result cap) and turns each HubSpot object into a :class:`RemoteRecord`.

HubSpot marks a merge on the surviving contact: ``hs_merged_object_ids`` lists, separated by
semicolons, the ids of the contacts merged into it; the merged-away contacts are gone from search.
A property HubSpot returns empty is left out of ``values``: search results cannot tell "never
set" from "cleared", and reconciliation must not blank a core value because a destination that
only received part of a donor's data (its minimization profile) holds no value for it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from donor_sync.delivery.connectors.hubspot.connector import HubSpotConnector
from donor_sync.delivery.connectors.hubspot.settings import ObjectSpec
from donor_sync.delivery.reconcile.records import RemoteRecord
from donor_sync.delivery.reconcile.settings import DestinationReconcile
from donor_sync.errors import ConfigError

__all__ = ["HubSpotReader", "merged_ids", "modified_at"]

log = logging.getLogger(__name__)

#: The start of a first pull (no watermark yet): everything HubSpot holds.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Merged ids arrive as one semicolon-separated property value.
MERGED_IDS_SEPARATOR = ";"


def modified_at(value: Any) -> datetime | None:
    """Return a HubSpot timestamp (ISO 8601 or epoch milliseconds) as an aware UTC datetime."""
    if value is None or value == "":
        return None
    text = str(value).strip()
    if text.isdigit():
        return datetime.fromtimestamp(int(text) / 1000, tz=UTC)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def merged_ids(value: Any, own_id: str) -> tuple[str, ...]:
    """Return the ids listed in ``hs_merged_object_ids`` (in order, once each, never ``own_id``)."""
    if value is None:
        return ()
    seen: dict[str, None] = {}
    for part in str(value).split(MERGED_IDS_SEPARATOR):
        item = part.strip()
        if item and item != own_id:
            seen.setdefault(item, None)
    return tuple(seen)


class HubSpotReader:
    """Read one HubSpot account's changed CRM records for reconciliation.

    :param connector: the account's connector (``HubSpotHook(...).get_connector()``).
    :param page_size: search results per request (HubSpot's most, 200: search has its own low rate limit).
    """

    def __init__(self, connector: HubSpotConnector, *, page_size: int = 200) -> None:
        self.connector = connector
        self.page_size = page_size

    def _spec(self, settings: DestinationReconcile) -> ObjectSpec:
        for spec in self.connector.settings.objects().values():
            if settings.object in (spec.object_type, spec.entity):
                return spec
        raise ConfigError(
            f"reconcile.yaml: hubspot object {settings.object!r} is not one the HubSpot connection syncs"
        )

    def changed_records(
        self, settings: DestinationReconcile, since: datetime | None, until: datetime
    ) -> Iterator[RemoteRecord]:
        """Yield records of ``settings.object`` modified in [since, until), oldest first.

        :raises ValueError: ``since`` or ``until`` is a naive datetime.
        :raises DestinationUnavailableError: HubSpot refused or failed the search (from the client).
        """
        if until.tzinfo is None or (since is not None and since.tzinfo is None):
            raise ValueError("changed_records needs aware datetimes (UTC)")
        spec = self._spec(settings)
        wanted = [settings.key_field, *settings.fields]
        if settings.merged_ids_field:
            wanted.append(settings.merged_ids_field)
        start = since or EPOCH
        undated = 0
        for item in self.connector.changed_since(spec.object_type, wanted, start, page_size=self.page_size):
            props: Mapping[str, Any] = item.get("properties") or {}
            stamp = modified_at(props.get(spec.modified_property)) or modified_at(item.get("updatedAt"))
            if stamp is None:
                undated += 1
                continue
            if stamp >= until:
                break  # oldest first: everything after is outside the window too
            if stamp < start:
                continue
            yield self._record(settings, item, props, stamp)
        if undated:
            log.warning(
                "HubSpot %s: skipped %d records without a modification time", spec.object_type, undated
            )

    @staticmethod
    def _record(
        settings: DestinationReconcile, item: Mapping[str, Any], props: Mapping[str, Any], stamp: datetime
    ) -> RemoteRecord:
        remote_id = str(props.get("hs_object_id") or item.get("id"))
        key = props.get(settings.key_field)
        merged = props.get(settings.merged_ids_field) if settings.merged_ids_field else None
        values = {name: props[name] for name in settings.fields if props.get(name) not in (None, "")}
        return RemoteRecord(
            remote_id=remote_id,
            modified_at=stamp,
            key=str(key) if key not in (None, "") else None,
            values=values,
            merged_remote_ids=merged_ids(merged, remote_id),
        )
