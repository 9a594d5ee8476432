"""The Braze destination as the push engine drives it (:class:`contracts.Connector`).

Entities, in push order:

* ``user``: user attributes by external id (the donor id), ``/users/track``
  (:mod:`.track`); delete (mirror: a donor who left core or whose consent no longer allows Braze)
  is ``/users/delete`` by external id, 50 per call.
* ``subscription_groups``: a donor's subscription-group states (:mod:`.subscriptions`), after
  the user.
* ``donation_event``: one custom event per gift, ``/users/track`` events, after the user.
* ``journey_trigger``: canvas trigger sends, :mod:`.journey_triggers` (written separately; the
  entity is pushed only once that module exists), after the users and their groups.

Braze reports no daily quota in its headers: :meth:`BrazeConnector.quota` is None, and the
rate-limit windows are paced inside the client (:mod:`.ratelimit`).
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import tenacity

from donor_sync.delivery.connectors.braze import subscriptions, track
from donor_sync.delivery.connectors.braze.client import DELETE_MAX_IDS, BrazeClient, client_from_connection
from donor_sync.delivery.connectors.braze.ratelimit import RatePacer
from donor_sync.delivery.connectors.braze.results import failure, ok
from donor_sync.delivery.connectors.retrying import default_retry
from donor_sync.delivery.contracts import (
    BRAZE,
    FailureClass,
    Operation,
    OutboundRecord,
    QuotaState,
    RecordResult,
)
from donor_sync.errors import ConfigError

__all__ = ["ENTITY_ORDER", "BrazeConnector", "BrazeSettings", "connector_from_connection"]

log = logging.getLogger(__name__)

USER = "user"
EVENT = "donation_event"
JOURNEY_TRIGGER = "journey_trigger"
JOURNEY_MODULE = "donor_sync.delivery.connectors.braze.journey_triggers"
ENTITY_ORDER = (USER, subscriptions.ENTITY, EVENT)
#: Recipients per canvas trigger send (Braze's cap).
TRIGGER_MAX_RECIPIENTS = 50


@dataclass(frozen=True)
class BrazeSettings:
    """The connection's delivery settings (extras of the ``braze`` connection).

    :param max_objects: objects per ``/users/track`` request (Braze: 75).
    :param rate_limit_reserve: requests of each rate-limit window left to other clients of the key.
    :param max_rate_limit_wait_s: the longest wait for a window's reset before the push stops.
    """

    max_objects: int = track.MAX_OBJECTS
    rate_limit_reserve: int = 0
    max_rate_limit_wait_s: float = 60.0

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any]) -> BrazeSettings:
        """Read the extras; a bad value raises ConfigError naming the connection field."""
        values: dict[str, Any] = {}
        for name, kind, low, high in (
            ("max_objects", int, 1, track.MAX_OBJECTS),
            ("rate_limit_reserve", int, 0, 10_000),
            ("max_rate_limit_wait_s", float, 0, 3600),
        ):
            if extra.get(name) in (None, ""):
                continue
            try:
                value = kind(extra[name])
            except (TypeError, ValueError):
                raise ConfigError(f"braze connection: extra.{name}: not a number") from None
            if not low <= value <= high:
                raise ConfigError(f"braze connection: extra.{name}: must be between {low} and {high}")
            values[name] = value
        return cls(**values)


def journeys_available() -> bool:
    """Whether the journey trigger module exists (its entity is pushed only then)."""
    return importlib.util.find_spec(JOURNEY_MODULE) is not None


class BrazeConnector:
    """Push users, their subscription groups, donation events and journey triggers to one workspace."""

    destination = BRAZE

    def __init__(self, client: BrazeClient, settings: BrazeSettings | None = None) -> None:
        self.settings = settings or BrazeSettings()
        self.client = client
        if client.pacer is None:
            client.pacer = RatePacer(
                reserve=self.settings.rate_limit_reserve, max_wait_s=self.settings.max_rate_limit_wait_s
            )

    # -- Connector protocol ------------------------------------------------------------------------
    def entity_order(self) -> Sequence[str]:
        """Users first, then what needs them."""
        return [*ENTITY_ORDER, *([JOURNEY_TRIGGER] if journeys_available() else [])]

    def batch_size(self, entity: str, operation: Operation, pending: int) -> int:
        """Records per push call: Braze's cap of the endpoint the entity and operation use."""
        if entity == USER and operation in (Operation.DELETE, Operation.ARCHIVE):
            return DELETE_MAX_IDS
        if entity == subscriptions.ENTITY:
            return subscriptions.MAX_IDS
        if entity == JOURNEY_TRIGGER:
            return TRIGGER_MAX_RECIPIENTS
        return self.settings.max_objects

    def push(
        self, entity: str, operation: Operation, records: Sequence[OutboundRecord]
    ) -> list[RecordResult]:
        """Write ``records``; one result per record, in order.

        :raises BatchRejectedError: Braze refused a request as a whole for its content.
        :raises DestinationUnavailableError: auth, permission, rate limit, or failures outlasting retries.
        """
        if not records:
            return []
        writes = (Operation.UPSERT, Operation.UPDATE, Operation.CREATE)
        if entity == USER and operation in writes:
            results = track.track_users(self.client, records, max_objects=self.settings.max_objects)
        elif entity == USER and operation in (Operation.DELETE, Operation.ARCHIVE):
            results = self._delete_users(records)
        elif entity == subscriptions.ENTITY and operation in writes:
            results = subscriptions.set_states(self.client, records)
        elif entity == EVENT and operation in (Operation.CREATE, Operation.UPSERT):
            results = track.track_events(self.client, records, max_objects=self.settings.max_objects)
        elif entity == JOURNEY_TRIGGER and journeys_available():
            module = importlib.import_module(JOURNEY_MODULE)
            results = list(module.push_journey_triggers(self.client, records))
        else:
            results = [
                failure(
                    r,
                    FailureClass.PERMANENT,
                    "UNSUPPORTED_OPERATION",
                    f"the Braze connector cannot {operation.value} {entity}",
                )
                for r in records
            ]
        log.info(
            "Braze %s %s: %d records, %d failed (calls so far %d)",
            entity,
            operation.value,
            len(records),
            sum(1 for r in results if not r.ok),
            self.client.calls,
        )
        return results

    def quota(self) -> QuotaState | None:
        """Braze reports no daily allowance; its windows are paced in the client."""
        return None

    # -- internals -------------------------------------------------------------------------------
    def _delete_users(self, records: Sequence[OutboundRecord]) -> list[RecordResult]:
        """Delete by external id (a user Braze does not hold counts as deleted: nothing to remove)."""
        self.client.users_delete("external_ids", [r.record_key for r in records])
        return [ok(r, r.record_key) for r in records]


def connector_from_connection(
    host: str | None,
    password: str | None,
    extra: Mapping[str, Any],
    *,
    retry: Callable[[], tenacity.Retrying] = default_retry,
) -> BrazeConnector:
    """Return a connector for the ``braze`` connection (host, password = REST key, extras).

    :raises ConfigError: host, key or an extra is missing or invalid.
    """
    settings = BrazeSettings.from_extra(extra)
    client = client_from_connection(host, password, extra, retry=retry)
    return BrazeConnector(client, settings)
