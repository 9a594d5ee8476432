"""HTTP for source APIs: one GET-JSON call with retries on 429/5xx/network errors and error classes.

Retries live here and only here (tenacity); callers pass a zero-wait policy in tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import requests
import tenacity

from donor_sync.errors import DonorSyncError, PermanentError

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class SourceTransientError(DonorSyncError):
    """The source kept answering 429 or 5xx, or the connection kept failing, through every retry."""


class SourceAuthError(PermanentError):
    """The source refused the credentials (HTTP 401 or 403): retrying the same call cannot help.

    :param status: the HTTP status (a source with expiring tokens may fetch a new token on 401).
    """

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class _RetryableStatusError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


class _UnreadableBodyError(Exception):
    """A 2xx answer whose body is not JSON (cut off in transit, or an error page): retried."""

    def __init__(self) -> None:
        super().__init__("a 2xx answer whose body is not JSON")


def default_retry() -> tenacity.Retrying:
    """Return the policy: five attempts, exponential backoff with jitter, on 429/5xx/network errors
    and bodies that are not JSON."""
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(
            (_RetryableStatusError, _UnreadableBodyError, requests.ConnectionError, requests.Timeout)
        ),
        wait=tenacity.wait_exponential_jitter(multiplier=0.5, max=20),
        stop=tenacity.stop_after_attempt(5),
        reraise=True,
    )


@dataclass
class JsonApi:
    """GET JSON from one source's base URL.

    :param verify: CA bundle path or True; passed on every request because ``requests`` lets
        REQUESTS_CA_BUNDLE override a session-level setting.
    """

    name: str
    base_url: str
    verify: str | bool = True
    timeout: float = 30.0
    session: requests.Session = field(default_factory=requests.Session)
    retry: tenacity.Retrying = field(default_factory=default_retry)

    def get(
        self,
        path: str,
        params: dict[str, Any] | None = None,
        *,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
    ) -> Any:
        """Return the decoded JSON of ``GET base_url + path``.

        :raises SourceAuthError: 401/403, the credentials were refused (a :class:`PermanentError`).
        :raises PermanentError: other 4xx but 429 (bad request): retrying cannot help.
        :raises SourceTransientError: 429/5xx/network errors, or bodies that are not JSON, outlasted
            the retries.
        """
        url = f"{self.base_url.rstrip('/')}{path}"

        def once() -> Any:
            response = self.session.get(
                url, params=params, headers=headers, auth=auth, timeout=self.timeout, verify=self.verify
            )
            if response.status_code in RETRY_STATUSES:
                raise _RetryableStatusError(response.status_code)
            if response.status_code in (401, 403):
                raise SourceAuthError(
                    f"{self.name} refused the credentials (HTTP {response.status_code}) on {path}",
                    status=response.status_code,
                )
            if response.status_code >= 400:
                raise PermanentError(f"{self.name} answered HTTP {response.status_code} on {path}")
            try:
                return response.json()
            except ValueError:  # requests' JSONDecodeError
                raise _UnreadableBodyError() from None

        try:
            return self.retry(once)
        except (
            _RetryableStatusError,
            _UnreadableBodyError,
            requests.ConnectionError,
            requests.Timeout,
        ) as exc:
            raise SourceTransientError(
                f"{self.name} {path} kept failing: {type(exc).__name__} {exc}"
            ) from exc
