"""The HubSpot destination as the push engine drives it (:class:`contracts.Connector`).

Entities: ``contact`` and ``deal`` (CRM objects upserted on a unique property),
``deal_contact_association`` (a v4 association between a deal and its donor's contact) and
``subscription_statuses`` (a donor's communication-subscription statuses, :mod:`.subscriptions_write`).
Operations: upsert, create (create once), update (by remote id), archive/delete, merge.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

import tenacity

from donor_sync.delivery.connectors.hubspot import (
    associations,
    merge,
    objects,
    properties,
    search,
    subscriptions_write,
)
from donor_sync.delivery.connectors.hubspot.auth import StaticToken, TokenSource
from donor_sync.delivery.connectors.hubspot.client import (
    DEFAULT_INTERVAL_MAX,
    DEFAULT_INTERVAL_MS,
    ApiUsage,
    HubSpotClient,
    default_retry,
)
from donor_sync.delivery.connectors.hubspot.deprecation import DeprecationNotice
from donor_sync.delivery.connectors.hubspot.paths import ApiPaths
from donor_sync.delivery.connectors.hubspot.ratelimit import SlidingWindowLimiter
from donor_sync.delivery.connectors.hubspot.results import failure
from donor_sync.delivery.connectors.hubspot.settings import HubSpotSettings, ObjectSpec
from donor_sync.delivery.contracts import (
    HUBSPOT,
    FailureClass,
    Operation,
    OutboundRecord,
    QuotaState,
    RecordResult,
)

log = logging.getLogger(__name__)

ENTITY_ORDER = ("contact", "deal", "deal_contact_association")
#: Entities written through other APIs than the CRM objects' (after the contacts they belong to).
STATUS_ENTITIES = (subscriptions_write.ENTITY,)


def build_client(
    settings: HubSpotSettings,
    tokens: TokenSource,
    *,
    retry: Callable[[], tenacity.Retrying] = default_retry,
    on_deprecation: Callable[[DeprecationNotice], None] | None = None,
) -> HubSpotClient:
    """Return a client paced by the connection's limit (override) or HubSpot's reported one."""
    fixed = settings.rate_limit_max is not None or settings.rate_limit_interval_ms is not None
    limiter = SlidingWindowLimiter(
        settings.rate_limit_max or DEFAULT_INTERVAL_MAX,
        (settings.rate_limit_interval_ms or DEFAULT_INTERVAL_MS) / 1000.0,
        fixed=fixed,
    )
    return HubSpotClient(
        settings.base_url,
        tokens,
        paths=ApiPaths(settings.api_version),
        verify=settings.verify,
        timeout_s=settings.timeout_s,
        limiter=limiter,
        search_limiter=SlidingWindowLimiter(settings.search_requests_per_second, 1.0, fixed=True),
        max_rate_limit_wait_s=settings.max_rate_limit_wait_s,
        retry=retry,
        on_deprecation=on_deprecation,
    )


class HubSpotConnector:
    """Push contacts, deals and their associations to one HubSpot account.

    :param tokens: the bearer token source (:class:`StaticToken` for a private app).
    """

    destination = HUBSPOT

    def __init__(
        self,
        settings: HubSpotSettings,
        tokens: TokenSource | str,
        *,
        client: HubSpotClient | None = None,
        on_deprecation: Callable[[DeprecationNotice], None] | None = None,
    ) -> None:
        self.settings = settings
        source = StaticToken(tokens) if isinstance(tokens, str) else tokens
        self.client = client or build_client(settings, source, on_deprecation=on_deprecation)
        self._objects = settings.objects()
        self._associations = settings.associations()

    # -- Connector protocol ------------------------------------------------------------------------
    def entity_order(self) -> Sequence[str]:
        """Contacts first, then deals, then the associations that need both."""
        extra = [e for e in self._objects if e not in ENTITY_ORDER]
        return [*ENTITY_ORDER[:2], *extra, *ENTITY_ORDER[2:], *STATUS_ENTITIES]

    def batch_size(self, entity: str, operation: Operation, pending: int) -> int:
        """Return HubSpot's batch cap (100, or the connection's lower setting) for every entity.

        Merges are one call per record whatever the batch; associations batch by 100 too.
        """
        self._known(entity)
        return self.settings.batch_size

    def push(
        self, entity: str, operation: Operation, records: Sequence[OutboundRecord]
    ) -> list[RecordResult]:
        """Write ``records`` and return one result per record, in order.

        :raises BatchRejectedError: HubSpot refused the whole batch for its content.
        :raises DestinationUnavailableError: auth, scope, daily quota, or failures outlasting retries.
        """
        if not records:
            return []
        self._known(entity)
        if entity == subscriptions_write.ENTITY:
            if operation in (Operation.UPSERT, Operation.UPDATE, Operation.CREATE):
                results = subscriptions_write.write_statuses(self.client, records)
            else:
                results = self._unsupported(entity, operation, records)
        elif entity in self._associations:
            spec = self._associations[entity]
            if operation in (Operation.ARCHIVE, Operation.DELETE):
                results = associations.unlink(self.client, spec, self._objects, records)
            elif operation in (Operation.UPSERT, Operation.CREATE, Operation.UPDATE):
                results = associations.associate(self.client, spec, self._objects, records)
            else:
                results = self._unsupported(entity, operation, records)
        else:
            results = self._push_objects(self._objects[entity], operation, records)
        failed = sum(1 for r in results if not r.ok)
        log.info(
            "HubSpot %s %s: %d records, %d failed (calls so far %d)",
            entity,
            operation.value,
            len(records),
            failed,
            self.client.usage.calls,
        )
        return results

    def quota(self) -> QuotaState | None:
        """Return the daily allowance HubSpot last reported."""
        return self.client.quota()

    # -- beyond the protocol ---------------------------------------------------------------------
    @property
    def usage(self) -> ApiUsage:
        """Return the calls made so far (for ``sync.api_usage``)."""
        return self.client.usage

    @property
    def deprecations(self) -> list[DeprecationNotice]:
        """Return the deprecation signals HubSpot sent so far (each once)."""
        return list(self.client.deprecations)

    def within_quota_reserve(self) -> bool:
        """Return whether the daily allowance left is inside the connection's reserve."""
        quota = self.quota()
        share = quota.share_remaining if quota else None
        return share is not None and share <= self.settings.daily_quota_reserve

    def describe(self, object_type: str) -> dict[str, Any]:
        """Return HubSpot's property definitions of ``object_type`` (raw, for the describe cache)."""
        return properties.describe(self.client, self._object_type(object_type))

    def changed_since(
        self, object_type: str, properties: Sequence[str], since: datetime, *, page_size: int = 100
    ) -> Iterator[dict[str, Any]]:
        """Yield records of ``object_type`` (``contacts`` or ``contact``...) changed since ``since``.

        Oldest change first; each item is HubSpot's ``{"id", "properties", ...}`` object.
        """
        spec = self._spec_for(object_type)
        return search.changed_since(
            self.client, spec.object_type, spec.modified_property, properties, since, page_size=page_size
        )

    def ensure_properties(self) -> dict[str, list[str]]:
        """Create the unique id properties donor-sync upserts on where missing; return those created."""
        created: dict[str, list[str]] = {}
        for spec in self._objects.values():
            if not spec.keyed_by_email:
                made = properties.ensure_unique_properties(self.client, spec.object_type, [spec.id_property])
                if made:
                    log.info("HubSpot: created unique property %s on %s", spec.id_property, spec.object_type)
                created[spec.object_type] = made
        return created

    def check(self) -> QuotaState | None:
        """Make one cheap authenticated call (connection test); return the quota it reported."""
        self.client.get(f"{self.client.paths.objects('contacts')}", params={"limit": 1})
        return self.client.quota()

    # -- internals -------------------------------------------------------------------------------
    def _known(self, entity: str) -> None:
        if entity not in self._objects and entity not in self._associations and entity not in STATUS_ENTITIES:
            raise ValueError(
                f"HubSpot connector has no entity {entity!r} (known: {', '.join(self.entity_order())})"
            )

    def _object_type(self, name: str) -> str:
        return self._objects[name].object_type if name in self._objects else name

    def _spec_for(self, object_type: str) -> ObjectSpec:
        for spec in self._objects.values():
            if object_type in (spec.entity, spec.object_type):
                return spec
        modified = "lastmodifieddate" if object_type == "contacts" else "hs_lastmodifieddate"
        return ObjectSpec(object_type, object_type, "hs_object_id", modified)

    def _push_objects(
        self, spec: ObjectSpec, operation: Operation, records: Sequence[OutboundRecord]
    ) -> list[RecordResult]:
        if operation is Operation.MERGE:
            return merge.merge(self.client, spec, records)
        if operation in (Operation.ARCHIVE, Operation.DELETE):
            return objects.archive(self.client, spec, records)
        if operation is Operation.CREATE:
            return objects.create_once(self.client, spec, records)
        # UPDATE or UPSERT: fields to set only where empty are read first.
        trimmed = objects.drop_fields_already_set(self.client, spec, records)
        if operation is Operation.UPDATE:
            return objects.update(self.client, spec, trimmed)
        return objects.upsert(self.client, spec, trimmed)

    @staticmethod
    def _unsupported(
        entity: str, operation: Operation, records: Sequence[OutboundRecord]
    ) -> list[RecordResult]:
        return [
            failure(
                record,
                FailureClass.PERMANENT,
                "UNSUPPORTED_OPERATION",
                f"the HubSpot connector does not {operation.value} {entity} records",
            )
            for record in records
        ]
