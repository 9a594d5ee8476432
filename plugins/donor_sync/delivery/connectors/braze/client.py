"""HTTP to one Braze workspace: Bearer REST key, instance URL, retries, error taxonomy.

* Auth: ``Authorization: Bearer <REST API key>``; the base URL is the workspace's REST
  endpoint (``https://rest.iad-01.braze.com``, ``https://rest.fra-01.braze.eu``…), the
  connection's host. A key lacking an endpoint's permission gets 403.
* Retries (tenacity, here only): 429 waits until ``X-RateLimit-Reset`` (UTC epoch seconds; or a
  ``Retry-After``) when that is near, else backs off; 5xx, timeouts and dropped connections back
  off exponentially with jitter. Then a transient or rate-limited :class:`DestinationUnavailableError`.
* Errors are ``{"message": …, "errors": […]}``. Messages may quote identifiers sent (emails),
  so only the status and a code derived from it are passed on.

``verify`` (CA bundle path or True) is passed on every request. With a :class:`RatePacer`
(the delivery connector's), each answer's ``X-RateLimit-*`` headers are remembered per endpoint
group and a request that would exceed the window waits for its reset instead of drawing a 429.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests
import tenacity

from donor_sync.delivery.connectors.braze.ratelimit import RatePacer, rate_limit_wait_s
from donor_sync.delivery.connectors.retrying import RetryableError, default_retry, refusal
from donor_sync.delivery.contracts import DestinationUnavailableError, FailureClass
from donor_sync.errors import ConfigError

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
DEFAULT_TIMEOUT_S = 30.0
#: Identifiers per ``/users/delete`` call (Braze's documented cap).
DELETE_MAX_IDS = 50
#: ``/users/delete`` identifier kinds (one kind per request).
DELETE_KINDS = ("external_ids", "user_aliases", "braze_ids", "email_addresses", "phone_numbers")
_STATUS_CODES = {
    400: "BAD_REQUEST",
    401: "INVALID_API_KEY",
    403: "MISSING_PERMISSION",
    404: "NOT_FOUND",
    429: "RATE_LIMITED",
}


@dataclass(frozen=True)
class Reply:
    """A Braze answer: status, decoded JSON body and the response headers."""

    status: int
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass
class BrazeClient:
    """JSON calls to one Braze workspace.

    :param base_url: the workspace's REST endpoint.
    :param api_key: the REST API key (Bearer); never logged.
    """

    base_url: str
    api_key: str = field(repr=False)
    verify: str | bool = True
    timeout_s: float = DEFAULT_TIMEOUT_S
    retry: Callable[[], tenacity.Retrying] = default_retry
    session: requests.Session = field(default_factory=requests.Session)
    pacer: RatePacer | None = None
    calls: int = 0
    retries: int = 0
    #: Answers with status 429 (each retried or, at the end, reported).
    rate_limited: int = 0

    def post(self, path: str, body: Any, *, keep_client_errors: bool = False) -> Reply:
        """``POST`` JSON ``body`` to ``path`` (429/5xx/network retried).

        :param keep_client_errors: return a 400's :class:`Reply` (its ``errors`` may name the
            objects at fault) instead of raising :class:`BatchRejectedError`.
        :raises DestinationUnavailableError: auth (401), permission (403), unknown endpoint (404),
            or failures that outlasted the retries.
        :raises BatchRejectedError: Braze refused the request's content (400 and other 4xx).
        """
        return self._call("POST", path, body, None, keep_client_errors)

    def get(self, path: str, params: Mapping[str, str]) -> Reply:
        """``GET`` ``path`` with query ``params`` (retried and classified like :meth:`post`)."""
        return self._call("GET", path, None, params, False)

    def _call(self, method: str, path: str, body: Any, params: Mapping[str, str] | None, keep: bool) -> Reply:
        attempt = 0

        def once() -> Reply:
            nonlocal attempt
            attempt += 1
            if attempt > 1:
                self.retries += 1
            return self._attempt(method, path, body, params=params, keep_client_errors=keep)

        try:
            return self.retry()(once)
        except RetryableError as exc:
            raise DestinationUnavailableError(
                f"Braze {method} {path} kept failing ({exc.code}) after {attempt} attempts",
                error_class=FailureClass.RATE_LIMITED if exc.status == 429 else FailureClass.TRANSIENT,
                error_code=exc.code,
                http_status=exc.status,
                retry_after_s=exc.retry_after_s,
            ) from None

    # -- users -----------------------------------------------------------------------------------
    def users_delete(self, kind: str, identifiers: Sequence[Any]) -> int:
        """Delete the users named by ``identifiers`` of one ``kind`` (irreversible); return Braze's count.

        Sent in chunks of 50. Braze deletes asynchronously: the count is what it accepted.
        """
        if kind not in DELETE_KINDS:
            raise ValueError(f"Braze /users/delete takes one of {DELETE_KINDS}, not {kind!r}")
        deleted = 0
        for chunk in _chunks(list(identifiers), DELETE_MAX_IDS):
            body = self.post("/users/delete", {kind: list(chunk)}).body
            deleted += int((body or {}).get("deleted", 0)) if isinstance(body, dict) else 0
        return deleted

    def export_users(
        self,
        *,
        external_ids: Sequence[str] = (),
        email_address: str | None = None,
        phone: str | None = None,
        fields_to_export: Sequence[str] = ("braze_id", "external_id"),
    ) -> list[dict[str, Any]]:
        """Return the profiles ``/users/export/ids`` finds by external ids, an email or a phone."""
        found: list[dict[str, Any]] = []
        requests_: list[dict[str, Any]] = [
            {"external_ids": list(chunk)} for chunk in _chunks(list(external_ids), DELETE_MAX_IDS)
        ]
        if email_address:
            requests_.append({"email_address": email_address})
        if phone:
            requests_.append({"phone": phone})
        for body in requests_:
            reply = self.post("/users/export/ids", {**body, "fields_to_export": list(fields_to_export)})
            users = (reply.body or {}).get("users") if isinstance(reply.body, dict) else None
            found += [u for u in users or [] if isinstance(u, dict)]
        return found

    # -- internals -------------------------------------------------------------------------------
    def _attempt(
        self,
        method: str,
        path: str,
        body: Any,
        *,
        params: Mapping[str, str] | None = None,
        keep_client_errors: bool = False,
    ) -> Reply:
        if self.pacer is not None:
            self.pacer.before(path)
        try:
            response = self.session.request(
                method,
                f"{self.base_url.rstrip('/')}{path}",
                json=body,
                params=params,
                headers={"Authorization": f"Bearer {self.api_key}", "Accept": "application/json"},
                timeout=(min(10.0, self.timeout_s), self.timeout_s),
                verify=self.verify,
            )
        except requests.Timeout as exc:
            raise RetryableError("TIMEOUT") from exc
        except requests.ConnectionError as exc:
            raise RetryableError("CONNECTION_ERROR") from exc
        self.calls += 1
        status = response.status_code
        if self.pacer is not None:
            self.pacer.after(path, response.headers)
        try:
            decoded: Any = response.json() if response.content else None
        except ValueError:
            if status < 400:
                raise RetryableError("MALFORMED_RESPONSE", status) from None
            decoded = None
        if status in RETRY_STATUSES:
            wait = rate_limit_wait_s(response.headers) if status == 429 else None
            if status == 429:
                self.rate_limited += 1
            log.info("Braze HTTP %s on %s; retrying", status, path)
            raise RetryableError(_STATUS_CODES.get(status, f"HTTP_{status}"), status, wait)
        if status < 400 or (keep_client_errors and status == 400):
            return Reply(status, decoded, dict(response.headers))
        raise refusal(
            f"Braze {method} {path}",
            status,
            _STATUS_CODES.get(status, f"HTTP_{status}"),
            credentials="the REST API key was refused; check the connection's password",
            permission="; grant the key the endpoint's permission",
        )


def client_from_connection(
    host: str | None,
    password: str | None,
    extra: Mapping[str, Any],
    *,
    retry: Callable[[], tenacity.Retrying] = default_retry,
) -> BrazeClient:
    """Return a client for a ``braze`` (plain ``http``) connection: host = REST endpoint, password = key.

    :raises ConfigError: host or key missing.
    """
    if not host:
        raise ConfigError("braze connection: host: the workspace's REST endpoint is empty")
    if not password:
        raise ConfigError("braze connection: password: the REST API key is empty")
    timeout = extra.get("timeout")
    return BrazeClient(
        host if "://" in host else f"https://{host}",
        password,
        verify=str(extra["ca_bundle"]) if extra.get("ca_bundle") else True,
        timeout_s=float(timeout) if timeout else DEFAULT_TIMEOUT_S,
        retry=retry,
    )
