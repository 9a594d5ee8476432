"""Stripe's REST list API: authenticated GETs, cursor paging, retries on 429/5xx, error classes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import requests
import tenacity

from donor_sync.errors import DonorSyncError, PermanentError
from donor_sync.sources.stripe.settings import PAGE_SIZE

_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class StripeTransientError(DonorSyncError):
    """Stripe answered 429 or 5xx, or the connection failed, after every retry."""


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, requests.ConnectionError | requests.Timeout | _RetryableStatusError)


class _RetryableStatusError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


def default_retry() -> tenacity.Retrying:
    """Return the retry policy: five attempts, exponential backoff with jitter, on 429/5xx/network errors."""
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception(_retryable),
        wait=tenacity.wait_exponential_jitter(multiplier=0.5, max=20),
        stop=tenacity.stop_after_attempt(5),
        reraise=True,
    )


class StripeApi:
    """A small client for Stripe's list endpoints.

    :param verify: CA bundle path or True (system trust); passed on every request because
        ``requests`` lets REQUESTS_CA_BUNDLE override a session-level setting.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        verify: str | bool = True,
        session: requests.Session | None = None,
        timeout: float = 30.0,
        retry: tenacity.Retrying | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.verify = verify
        self.session = session or requests.Session()
        self.timeout = timeout
        self.retry = retry or default_retry()

    def _get(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        def once() -> dict[str, Any]:
            response = self.session.get(
                f"{self.base_url}{path}",
                params=params,
                headers={"Authorization": f"Bearer {self._api_key}"},
                timeout=self.timeout,
                verify=self.verify,
            )
            if response.status_code in _RETRY_STATUSES:
                raise _RetryableStatusError(response.status_code)
            if response.status_code in (401, 403):
                raise PermanentError(f"Stripe refused the API key (HTTP {response.status_code}) on {path}")
            if response.status_code >= 400:
                code = (response.json().get("error") or {}).get("code", "unknown")
                raise PermanentError(f"Stripe answered HTTP {response.status_code} ({code}) on {path}")
            body: dict[str, Any] = response.json()
            return body

        try:
            return self.retry(once)
        except (_RetryableStatusError, requests.ConnectionError, requests.Timeout) as exc:
            raise StripeTransientError(f"Stripe {path} kept failing: {exc}") from exc

    def list_pages(self, resource: str, *, created_gte: int) -> Iterator[list[dict[str, Any]]]:
        """Yield pages of ``resource`` created at or after ``created_gte`` (unix seconds), newest first."""
        params: dict[str, Any] = {"limit": PAGE_SIZE, "created[gte]": created_gte}
        while True:
            body = self._get(f"/v1/{resource}", params)
            data: list[dict[str, Any]] = body.get("data", [])
            if data:
                yield data
            if not body.get("has_more") or not data:
                return
            params["starting_after"] = data[-1]["id"]
