"""One HubSpot API call, done right: auth, pacing, 429s, retries, quota, deprecations, errors.

Every call goes through :meth:`HubSpotClient.request`:

* the rolling-window limiter (and the search API's own lower limit) paces it, and every
  response's ``X-HubSpot-RateLimit-*`` headers correct the limiter;
* a 429 ``TEN_SECONDLY_ROLLING`` is waited out and the same request sent again: it is not a
  failed attempt and nothing is lost; a 429 ``DAILY`` stops the push
  (:class:`DestinationUnavailableError`, rate limited);
* 5xx, timeouts, connection resets and truncated bodies are retried here (tenacity,
  exponential backoff with jitter, few attempts), then raise a transient
  :class:`DestinationUnavailableError`;
* 401 is ``auth``, 403 (missing scope) ``permanent``; other 4xx are handed back when the
  caller accepts them, else raised as :class:`BatchRejectedError` (400/409/422: the content)
  or :class:`DestinationUnavailableError` (the endpoint);
* the daily allowance (``X-HubSpot-RateLimit-Daily`` / ``-Daily-Remaining``) is kept as a
  :class:`QuotaState`, and deprecation signals are logged once per endpoint and handed to a
  callback for alerting.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests
import tenacity

from donor_sync.delivery.connectors.hubspot.auth import TokenSource
from donor_sync.delivery.connectors.hubspot.deprecation import (
    DeprecationNotice,
    deprecation_signals,
    path_template,
)
from donor_sync.delivery.connectors.hubspot.errors import classify
from donor_sync.delivery.connectors.hubspot.paths import ApiPaths
from donor_sync.delivery.connectors.hubspot.ratelimit import SlidingWindowLimiter
from donor_sync.delivery.contracts import (
    BatchRejectedError,
    DestinationUnavailableError,
    FailureClass,
    QuotaState,
)

log = logging.getLogger(__name__)

#: HubSpot's documented private-app limit, used until the first response reports the real one.
DEFAULT_INTERVAL_MAX = 100
DEFAULT_INTERVAL_MS = 10_000
_CONTENT_STATUSES = frozenset({400, 409, 422})


class _RetryableError(Exception):
    """A failure worth another attempt (5xx, timeout, reset, truncated body)."""

    def __init__(self, code: str, status: int | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.status = status


def default_retry(attempts: int = 4, wait: tenacity.wait.wait_base | None = None) -> tenacity.Retrying:
    """Return the policy for 5xx/network failures: 4 attempts, exponential backoff with jitter.

    :param wait: another wait strategy (tests pass ``tenacity.wait_none()``).
    """
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(_RetryableError),
        wait=wait if wait is not None else tenacity.wait_exponential_jitter(multiplier=0.5, max=8.0),
        stop=tenacity.stop_after_attempt(attempts),
        reraise=True,
    )


@dataclass
class ApiUsage:
    """What this client spent, for ``sync.api_usage`` and run metrics.

    :param calls: requests HubSpot answered (what its limits count, 429s and 5xx included).
    :param rate_limited: 429 answers (each waited out or raised).
    :param retries: attempts repeated after a 5xx or a network failure.
    :param throttled_s: time spent waiting for the rolling window.
    """

    calls: int = 0
    rate_limited: int = 0
    retries: int = 0
    throttled_s: float = 0.0


@dataclass(frozen=True)
class Reply:
    """A HubSpot response: status, decoded JSON body (None when empty) and its request id."""

    status: int
    body: Any
    request_id: str | None = None


@dataclass
class _Limits:
    """The limiters a client paces with."""

    main: SlidingWindowLimiter
    search: SlidingWindowLimiter | None = None


def _header_int(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


@dataclass
class HubSpotClient:
    """JSON calls to one HubSpot account.

    :param verify: CA bundle path or True; passed on every request (``requests`` lets
        REQUESTS_CA_BUNDLE override a session-level setting).
    :param retry: builds the 5xx/network retry policy per call (tests pass a zero-wait one).
    :param on_deprecation: called once per endpoint and signal (alerting hooks in here).
    """

    base_url: str
    tokens: TokenSource
    paths: ApiPaths = field(default_factory=ApiPaths)
    verify: str | bool = True
    timeout_s: float = 30.0
    limiter: SlidingWindowLimiter = field(
        default_factory=lambda: SlidingWindowLimiter(DEFAULT_INTERVAL_MAX, DEFAULT_INTERVAL_MS / 1000)
    )
    search_limiter: SlidingWindowLimiter | None = field(
        default_factory=lambda: SlidingWindowLimiter(4, 1.0, fixed=True)
    )
    max_rate_limit_wait_s: float = 120.0
    retry: Callable[[], tenacity.Retrying] = default_retry
    on_deprecation: Callable[[DeprecationNotice], None] | None = None
    session: requests.Session = field(default_factory=requests.Session)
    usage: ApiUsage = field(default_factory=ApiUsage)
    deprecations: list[DeprecationNotice] = field(default_factory=list)
    _quota: QuotaState | None = None
    _interval_quota: QuotaState | None = None
    _seen_notices: set[tuple[str, str, str]] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- quota ---------------------------------------------------------------------------------
    def quota(self) -> QuotaState | None:
        """Return the daily allowance HubSpot last reported (None before any call, or for OAuth apps)."""
        return self._quota

    def interval_quota(self) -> QuotaState | None:
        """Return the rolling window's allowance HubSpot last reported."""
        return self._interval_quota

    # -- calls ---------------------------------------------------------------------------------
    def get(self, path: str, *, params: Mapping[str, Any] | None = None) -> Any:
        """Return the JSON body of ``GET path``."""
        return self.request("GET", path, params=params).body

    def post(self, path: str, body: Any, *, search: bool = False) -> Reply:
        """``POST`` JSON ``body`` to ``path``."""
        return self.request("POST", path, json=body, search=search)

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        search: bool = False,
        accept: Collection[int] = (),
    ) -> Reply:
        """Send one request (paced, 429s waited out, 5xx retried) and return its reply.

        :param search: the call is a CRM search (paced by the search limit too).
        :param accept: error statuses handed back as a reply instead of raised.
        :raises DestinationUnavailableError: auth, scope, daily quota, an endpoint HubSpot
            does not know, or 5xx/network failures that outlasted the retries.
        :raises BatchRejectedError: HubSpot refused the request's content (400/409/422).
        """
        attempt = 0

        def once() -> Reply:
            nonlocal attempt
            attempt += 1
            if attempt > 1:
                with self._lock:
                    self.usage.retries += 1
            return self._attempt(method, path, json=json, params=params, search=search, accept=accept)

        try:
            return self.retry()(once)
        except _RetryableError as exc:
            raise DestinationUnavailableError(
                f"HubSpot {method} {path_template(path)} kept failing ({exc.code}) after {attempt} attempts",
                error_class=FailureClass.TRANSIENT,
                error_code=exc.code,
                http_status=exc.status,
            ) from None

    def _limiters(self, search: bool) -> list[SlidingWindowLimiter]:
        return [self.search_limiter, self.limiter] if search and self.search_limiter else [self.limiter]

    def _send(
        self, method: str, path: str, json: Any, params: Mapping[str, Any] | None, search: bool
    ) -> requests.Response:
        """Send once through the limiters; correct them, quota and notices from the response."""
        headers = {"Authorization": f"Bearer {self.tokens.token()}", "Accept": "application/json"}
        limiters = self._limiters(search)
        started = time.monotonic()
        slots = [limiter.acquire() for limiter in limiters]
        waited = time.monotonic() - started
        try:
            response = self.session.request(
                method,
                f"{self.base_url.rstrip('/')}{path}",
                json=json,
                params=params,
                headers=headers,
                timeout=(min(10.0, self.timeout_s), self.timeout_s),
                verify=self.verify,
            )
        except requests.Timeout as exc:
            raise _RetryableError("TIMEOUT") from exc
        except requests.ConnectionError as exc:
            raise _RetryableError("CONNECTION_ERROR") from exc
        finally:
            for limiter, slot in zip(limiters, slots, strict=True):
                limiter.complete(slot)
        with self._lock:
            self.usage.calls += 1
            self.usage.throttled_s += waited
        self._observe(response, slots[-1].started)
        return response

    def _observe(self, response: requests.Response, sent_at: float) -> None:
        """Feed the rate-limit and daily headers to the limiter and the quota."""
        headers = response.headers
        interval_max = _header_int(headers, "X-HubSpot-RateLimit-Max")
        interval_ms = _header_int(headers, "X-HubSpot-RateLimit-Interval-Milliseconds")
        remaining = _header_int(headers, "X-HubSpot-RateLimit-Remaining")
        if interval_max is not None or remaining is not None:
            self.limiter.observe(
                max_requests=interval_max, interval_ms=interval_ms, remaining=remaining, sent_at=sent_at
            )
            window = f"per_{interval_ms // 1000}s" if interval_ms and interval_ms % 1000 == 0 else "interval"
            self._interval_quota = QuotaState(remaining, interval_max, window)
        daily = _header_int(headers, "X-HubSpot-RateLimit-Daily")
        daily_remaining = _header_int(headers, "X-HubSpot-RateLimit-Daily-Remaining")
        if daily is not None or daily_remaining is not None:
            self._quota = QuotaState(daily_remaining, daily, "daily")

    def _decode(self, response: requests.Response) -> Any:
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            if response.status_code < 400:
                raise _RetryableError("MALFORMED_RESPONSE", response.status_code) from exc
            return None

    def _attempt(
        self,
        method: str,
        path: str,
        *,
        json: Any,
        params: Mapping[str, Any] | None,
        search: bool,
        accept: Collection[int],
    ) -> Reply:
        """One attempt: send, waiting out rolling-window 429s, then sort the answer."""
        waited_429 = 0.0
        streak = 0
        while True:
            response = self._send(method, path, json, params, search)
            body = self._decode(response)
            self._notice_deprecations(method, path, response, body)
            if response.status_code != 429:
                break
            with self._lock:
                self.usage.rate_limited += 1
            policy = str((body or {}).get("policyName") or "") if isinstance(body, dict) else ""
            if policy == "DAILY":
                raise DestinationUnavailableError(
                    "HubSpot's daily API limit is spent; pushes resume after it resets at midnight "
                    "(account time zone)",
                    error_class=FailureClass.RATE_LIMITED,
                    error_code="DAILY",
                    http_status=429,
                )
            pause = self._rate_limit_pause(streak)
            if waited_429 + pause > self.max_rate_limit_wait_s:
                raise DestinationUnavailableError(
                    f"HubSpot kept answering 429 {policy or 'rate limit'} for {waited_429:.0f}s",
                    error_class=FailureClass.RATE_LIMITED,
                    error_code=policy or "RATE_LIMIT",
                    http_status=429,
                    retry_after_s=self.limiter.interval_s,
                )
            log.info("HubSpot 429 %s on %s; waiting %.2fs", policy, path_template(path), pause)
            for limiter in self._limiters(search):
                limiter.penalize(pause)
            waited_429 += pause
            streak += 1
        return self._sort(method, path, response, body, accept)

    def _rate_limit_pause(self, streak: int) -> float:
        """Return how long to hold requests after the ``streak``-th 429 in a row.

        The window is rolling, so a slot frees as soon as the oldest request in it ages out: start
        at a tenth of the interval and double up to the whole interval, with jitter.
        """
        interval = self.limiter.interval_s
        base = min(interval, interval * 0.1 * (2.0**streak))
        return base * (0.9 + 0.2 * random.random())  # noqa: S311 - jitter, not security

    def _sort(
        self, method: str, path: str, response: requests.Response, body: Any, accept: Collection[int]
    ) -> Reply:
        status = response.status_code
        request_id = response.headers.get("X-HubSpot-Correlation-Id") or (
            str(body.get("correlationId")) if isinstance(body, dict) and body.get("correlationId") else None
        )
        if status < 400 or status in accept:
            return Reply(status, body, request_id)
        if status >= 500:
            raise _RetryableError(f"HTTP_{status}", status)
        error = classify(body if isinstance(body, dict) else {}, http_status=status)
        where = f"HubSpot {method} {path_template(path)}"
        if status == 401:
            raise DestinationUnavailableError(
                f"{where}: the access token was refused ({error.message}); rotate the connection's token",
                error_class=FailureClass.AUTH,
                error_code=error.category,
                http_status=status,
            )
        if status == 403:
            raise DestinationUnavailableError(
                f"{where}: missing scope or permission ({error.message}); grant the app's scopes",
                error_class=FailureClass.PERMANENT,
                error_code=error.code,
                http_status=status,
            )
        if status in _CONTENT_STATUSES:
            raise BatchRejectedError(
                f"{where} refused the request: {error.message}",
                error_class=error.error_class,
                error_code=error.code,
                http_status=status,
            )
        raise DestinationUnavailableError(
            f"{where} answered HTTP {status}: {error.message}",
            error_class=FailureClass.PERMANENT,
            error_code=error.code,
            http_status=status,
        )

    def _notice_deprecations(self, method: str, path: str, response: requests.Response, body: Any) -> None:
        for notice in deprecation_signals(method, path_template(path), response.headers, body):
            key = (notice.method, notice.path, notice.signal)
            with self._lock:
                if key in self._seen_notices:
                    continue
                self._seen_notices.add(key)
                self.deprecations.append(notice)
            log.warning(
                "HubSpot signals deprecation of %s %s: %s=%s (pin another api_version on the connection)",
                notice.method,
                notice.path,
                notice.signal,
                notice.value,
            )
            if self.on_deprecation is not None:
                self.on_deprecation(notice)
