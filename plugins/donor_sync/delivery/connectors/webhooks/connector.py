"""Deliver queued events to one subscriber: a signed HTTPS POST per event.

The push engine drives it like any destination (``webhook_<subscriber>``): claims under a lease,
results per record, the retry ladder 1m..24h, dead letters and a circuit breaker of its own, so a
failing subscriber never holds back another. Per event:

* body: the envelope as compact JSON with sorted keys (the bytes signed are the bytes sent);
* headers: ``X-DonorSync-Timestamp`` and ``X-DonorSync-Signature: v1=<hex>`` (HMAC-SHA256 of
  ``"{timestamp}.{body}"``, one ``v1`` per current secret, see
  :mod:`donor_sync.web.webhooks.signatures`), ``X-DonorSync-Event-Id`` (deduplicate on it),
  ``X-DonorSync-Event-Type``, ``X-DonorSync-Event-Version``, ``X-DonorSync-Delivery-Attempt``;
* answer: 2xx delivered; 408 and 5xx transient (the ladder); 429 rate limited (waits without
  using up an attempt); a timeout or connection failure (reset, refused) transient; any other
  status (3xx included: redirects are not followed) permanent, so the event becomes a dead letter
  of this subscriber at once.

Each event is its own POST with its own id, and events are not ordered (docs/events.md), so one
event's failure says nothing about the next: the batch goes on after any answer and after a
single timeout or connection failure. It stops only when the subscriber asks it to (429) or looks
down (:data:`UNREACHABLE_IN_A_ROW` timeouts or connection failures in a row); the events after
that are not sent, and their results say so (``sent=False``, code ``NOT_SENT``): they wait for
their next rung without using an attempt, so they are never dead-lettered for attempts they did
not make. A timed-out event may have reached the subscriber; its retry carries the same
``X-DonorSync-Event-Id`` (delivery is at least once: subscribers deduplicate on it).

No retry loop here: retries are the ladder's. Messages name statuses only, never bodies.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests

from donor_sync.delivery.contracts import (
    NOT_SENT,
    FailureClass,
    Operation,
    OutboundRecord,
    QuotaState,
    RecordResult,
)
from donor_sync.events.catalogue import EVENT_TYPES, entity_of
from donor_sync.events.settings import DESTINATION_PREFIX, SubscriberSpec
from donor_sync.hooks._extras import base_url
from donor_sync.web.webhooks.signatures import hmac_signature_headers

__all__ = [
    "EVENT_ID_HEADER",
    "NOT_SENT",
    "UNREACHABLE_IN_A_ROW",
    "SubscriberEndpoint",
    "WebhookConnector",
    "classify_status",
    "endpoint_from_connection",
    "signed_request",
]

EVENT_ID_HEADER = "X-DonorSync-Event-Id"
USER_AGENT = "donor-sync-events/1"
#: Events per push call (each is its own POST; the batch bounds one lease's work).
BATCH_SIZE = 50
#: Timeouts or connection failures in a row after which the rest of the batch is not sent.
UNREACHABLE_IN_A_ROW = 2
#: Error codes of a call that never got an HTTP answer.
_UNREACHABLE = ("NETWORK", "TIMEOUT")


@dataclass(frozen=True)
class SubscriberEndpoint:
    """Where one subscriber's events go, and the secret(s) they are signed with (never shown)."""

    name: str
    url: str
    secrets: tuple[str, ...] = field(repr=False)
    verify: str | bool = True
    timeout_s: float = 10.0

    @property
    def destination(self) -> str:
        """The subscriber's outbox destination."""
        return f"{DESTINATION_PREFIX}{self.name}"


def endpoint_from_connection(
    spec: SubscriberSpec, *, host: str | None, password: str | None, extra: Mapping[str, Any]
) -> SubscriberEndpoint:
    """Build a subscriber's endpoint from its secret connection's fields (input unchanged).

    :raises ConfigError: no secret in the password, or no host for a ``path``.
    """
    from donor_sync.errors import ConfigError

    where = f"events.yaml: subscribers[{spec.name}].secret"
    secrets = tuple(s.strip() for s in (password or "").replace("\n", ",").split(",") if s.strip())
    if not secrets:
        raise ConfigError(f"{where}: connection {spec.secret!r} has no signing secret in its password")
    if spec.url is not None:
        url = spec.url
    elif host:
        url = base_url(host).rstrip("/") + str(spec.path)
    else:
        raise ConfigError(f"{where}: connection {spec.secret!r} has no host to put path {spec.path} under")
    ca_bundle = extra.get("ca_bundle")
    return SubscriberEndpoint(
        spec.name, url, secrets, verify=str(ca_bundle) if ca_bundle else True, timeout_s=spec.timeout_s
    )


def signed_request(
    payload: Mapping[str, Any], secrets: Sequence[str], *, timestamp: int, attempt: int = 1
) -> tuple[bytes, dict[str, str]]:
    """Return the body and headers of one delivery of the envelope ``payload``."""
    body = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_ID_HEADER: str(payload.get("id")),
        "X-DonorSync-Event-Type": str(payload.get("type")),
        "X-DonorSync-Event-Version": str(payload.get("version")),
        "X-DonorSync-Delivery-Attempt": str(attempt),
        **hmac_signature_headers(body, secrets, timestamp),
    }
    return body, headers


def classify_status(status: int) -> FailureClass | None:
    """Return the failure class of an HTTP answer, None for 2xx."""
    if 200 <= status < 300:
        return None
    if status == 429:
        return FailureClass.RATE_LIMITED
    if status == 408 or status >= 500:
        return FailureClass.TRANSIENT
    return FailureClass.PERMANENT


class WebhookConnector:
    """The :class:`~donor_sync.delivery.contracts.Connector` of one event subscriber."""

    def __init__(
        self,
        endpoint: SubscriberEndpoint,
        *,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        self.endpoint = endpoint
        self.destination = endpoint.destination
        self.session = session or requests.Session()
        self.clock = clock
        self._batch_size = batch_size

    def entity_order(self) -> Sequence[str]:
        """Every event type; the order carries no meaning (events are not ordered)."""
        return tuple(entity_of(t) for t in EVENT_TYPES)

    def batch_size(self, entity: str, operation: Operation, pending: int) -> int:
        """Events per push call."""
        return self._batch_size

    def quota(self) -> QuotaState | None:
        """Subscribers report no allowance."""
        return None

    def push(
        self, entity: str, operation: Operation, records: Sequence[OutboundRecord]
    ) -> list[RecordResult]:
        """POST each event; one result per record (module docstring)."""
        results: list[RecordResult] = []
        unreachable = 0
        stopped_by: RecordResult | None = None
        for record in records:
            if stopped_by is not None:
                results.append(_not_sent(stopped_by, record.outbox_id))
                continue
            result = self._deliver(record)
            results.append(result)
            unreachable = unreachable + 1 if result.error_code in _UNREACHABLE else 0
            if result.error_class is FailureClass.RATE_LIMITED or unreachable >= UNREACHABLE_IN_A_ROW:
                stopped_by = result
        return results

    def _deliver(self, record: OutboundRecord) -> RecordResult:
        body, headers = signed_request(
            record.payload, self.endpoint.secrets, timestamp=int(self.clock()), attempt=record.attempts + 1
        )
        try:
            response = self.session.post(
                self.endpoint.url,
                data=body,
                headers=headers,
                timeout=self.endpoint.timeout_s,
                verify=self.endpoint.verify,
                allow_redirects=False,
            )
        except requests.Timeout:
            return RecordResult(
                record.outbox_id, ok=False, error_class=FailureClass.TRANSIENT, error_code="TIMEOUT",
                message=f"no answer within {self.endpoint.timeout_s:g} s",
            )  # fmt: skip
        except requests.RequestException as exc:
            return RecordResult(
                record.outbox_id, ok=False, error_class=FailureClass.TRANSIENT, error_code="NETWORK",
                message=f"could not reach the subscriber ({type(exc).__name__})",
            )  # fmt: skip
        status = response.status_code
        request_id = response.headers.get("X-Request-Id")
        error_class = classify_status(status)
        if error_class is None:
            return RecordResult(
                record.outbox_id, ok=True, created=True, http_status=status, vendor_request_id=request_id
            )
        return RecordResult(
            record.outbox_id,
            ok=False,
            error_class=error_class,
            error_code=f"HTTP_{status}",
            message=f"the subscriber answered HTTP {status}",
            http_status=status,
            vendor_request_id=request_id,
        )


def _not_sent(cause: RecordResult, outbox_id: int) -> RecordResult:
    """The result of an event the batch stopped before sending, after ``cause``."""
    if cause.error_class is FailureClass.RATE_LIMITED:
        why = "the subscriber asked to slow down"
    else:
        why = f"the subscriber did not answer {UNREACHABLE_IN_A_ROW} events in a row"
    return RecordResult(
        outbox_id,
        ok=False,
        error_class=cause.error_class,
        error_code=NOT_SENT,
        message=f"not sent: {why} ({cause.error_code}); no attempt used",
        sent=False,
    )
