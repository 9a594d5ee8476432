"""Tell outbound webhook subscribers that a donor was erased: a signed ``donor.erased`` event.

The body names donor ids and the request id only::

    {"type": "donor.erased", "version": 1, "id": "<uuid>", "occurred_at": "<ISO 8601>",
     "data": {"donor_ids": ["..."], "request_id": "<uuid>"}}

It is signed with the ``hmac_sha256`` scheme of :mod:`donor_sync.web.webhooks.signatures`
(``X-DonorSync-Timestamp`` and ``X-DonorSync-Signature: v1=<hex>``, one ``v1`` per current
secret). The event id is derived from the request id, so a retried request re-sends the same
event and a subscriber deduplicating on ``id`` acts once. A 2xx answer is the subscriber's
receipt (``verified``); 429/5xx/network errors are retried here, then the receipt fails and the
request is retried by the next run.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import requests
import tenacity

from donor_sync.privacy.contracts import ErasureSubject, Receipt, RemoteRef
from donor_sync.web.webhooks.signatures import hmac_signature_headers

log = logging.getLogger(__name__)

SYSTEM = "outbound_webhooks"
EVENT_TYPE = "donor.erased"
#: Namespace of the event ids (uuid5 of the request id).
EVENT_NAMESPACE = uuid.UUID("5a0c3f8e-58a4-4c57-9d1c-6f0d2b0e7e11")
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Subscriber:
    """Where to send, the secret(s) to sign with (never logged) and the CA bundle to trust."""

    name: str
    url: str
    secrets: tuple[str, ...] = field(repr=False)
    verify: str | bool = True


class _RetryableError(Exception):
    def __init__(self, status: int | None, retry_after_s: float | None = None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.retry_after_s = retry_after_s


def _retry_after(response: requests.Response) -> float | None:
    value = (response.headers.get("Retry-After") or "").strip()
    return float(value) if value.isdigit() else None


def _wait(fallback: tenacity.wait.wait_base) -> Callable[[tenacity.RetryCallState], float]:
    def wait(state: tenacity.RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome is not None else None
        hint = getattr(error, "retry_after_s", None)
        return float(min(hint, 60.0)) if hint is not None else float(fallback(state))

    return wait


def default_retry(attempts: int = 4, wait: tenacity.wait.wait_base | None = None) -> tenacity.Retrying:
    """Return the policy for 429/5xx/network failures (``Retry-After`` honoured up to 60 s)."""
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception_type((_RetryableError, requests.ConnectionError, requests.Timeout)),
        wait=_wait(wait if wait is not None else tenacity.wait_exponential_jitter(multiplier=0.5, max=10.0)),
        stop=tenacity.stop_after_attempt(attempts),
        reraise=True,
    )


def erased_event(subject: ErasureSubject, now: datetime | None = None) -> dict[str, object]:
    """Return the ``donor.erased`` event of a request (ids only)."""
    moment = now or datetime.now(UTC)
    return {
        "type": EVENT_TYPE,
        "version": 1,
        "id": str(uuid.uuid5(EVENT_NAMESPACE, str(subject.request_id))),
        "occurred_at": moment.isoformat(timespec="seconds"),
        "data": {"donor_ids": list(subject.donor_ids), "request_id": str(subject.request_id)},
    }


class OutboundEraser:
    """POST a signed ``donor.erased`` event to every subscriber; see the module docstring."""

    system = SYSTEM

    def __init__(
        self,
        subscribers: Sequence[Subscriber],
        *,
        timeout_s: float = 15.0,
        retry: Callable[[], tenacity.Retrying] = default_retry,
        session: requests.Session | None = None,
    ) -> None:
        self.subscribers = list(subscribers)
        self.timeout_s = timeout_s
        self.retry = retry
        self.session = session or requests.Session()

    def erase(self, subject: ErasureSubject) -> Receipt:
        """Notify every subscriber; the receipt is done when all answered 2xx."""
        if not self.subscribers:
            return Receipt(
                SYSTEM, "not_held", "done", verified=True, verification="no subscribers configured"
            )
        event = erased_event(subject)
        body = json.dumps(event, separators=(",", ":")).encode()
        notes: list[str] = []
        failures: list[str] = []
        refs: list[RemoteRef] = []
        for subscriber in self.subscribers:
            status = self._send(subscriber, body, str(event["id"]))
            notes.append(f"{subscriber.name}: {status if status is not None else 'no answer'}")
            refs.append(RemoteRef("subscriber", subscriber.name))
            if status is None or not 200 <= status < 300:
                failures.append(subscriber.name)
        ok = not failures
        verification = f"event {event['id']} answered " + ", ".join(notes)
        return Receipt(
            system=SYSTEM,
            action="notified",
            status="done" if ok else "failed",
            remote_refs=tuple(refs),
            counts={
                "subscribers": len(self.subscribers),
                "acknowledged": len(self.subscribers) - len(failures),
            },
            verified=ok,
            verification=verification,
            error=None if ok else f"not acknowledged by {', '.join(failures)}",
        )

    def _send(self, subscriber: Subscriber, body: bytes, event_id: str) -> int | None:
        """POST once per attempt; return the last status (None: no answer at all)."""

        def once() -> int:
            headers = {
                "Content-Type": "application/json",
                "X-DonorSync-Event": EVENT_TYPE,
                "X-DonorSync-Event-Id": event_id,
                **hmac_signature_headers(body, subscriber.secrets, int(time.time())),
            }
            response = self.session.post(
                subscriber.url, data=body, headers=headers, timeout=self.timeout_s, verify=subscriber.verify
            )
            if response.status_code in RETRY_STATUSES:
                raise _RetryableError(response.status_code, _retry_after(response))
            return response.status_code

        try:
            return int(self.retry()(once))
        except _RetryableError as exc:
            log.warning("Subscriber %s kept answering HTTP %s to %s", subscriber.name, exc.status, event_id)
            return exc.status
        except (requests.ConnectionError, requests.Timeout) as exc:
            log.warning(
                "Subscriber %s unreachable (%s) for %s", subscriber.name, type(exc).__name__, event_id
            )
            return None
