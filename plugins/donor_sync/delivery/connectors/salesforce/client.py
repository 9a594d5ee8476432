"""HTTP to one Salesforce org: the pinned API version, auth, retries, limits and error translation.

Every call goes to ``{instance_url}/services/data/v{api_version}/...`` with a bearer token from
:class:`~.auth.TokenProvider`. The client

* retries 5xx answers, timeouts and dropped connections with tenacity (exponential backoff with
  jitter, few attempts), then raises :class:`DestinationUnavailableError` (transient);
* renews the token once on ``401 INVALID_SESSION_ID`` and repeats the call, then raises auth;
* raises rate-limited on ``403 REQUEST_LIMIT_EXCEEDED`` (Salesforce sends no Retry-After: the
  daily allocation is a rolling 24 h window);
* reads ``Sforce-Limit-Info: api-usage=used/max`` from every answer into a :class:`QuotaState`;
* compares the pinned version with the versions the org serves (``GET /services/data/``, free of
  charge) on first use, and reports deprecation headers (``Warning``, ``Deprecation``,
  ``Sunset``) through ``on_deprecation``.

``verify`` is passed on every request: ``requests`` lets ``REQUESTS_CA_BUNDLE`` override a
session's own setting.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

import requests
import tenacity

from donor_sync.delivery.connectors.salesforce.auth import (
    DEFAULT_TOKEN_MAX_AGE_S,
    AccessToken,
    Credentials,
    TokenProvider,
)
from donor_sync.delivery.connectors.salesforce.errors import classify_code, parse_rest_errors
from donor_sync.delivery.contracts import (
    BatchRejectedError,
    DestinationUnavailableError,
    FailureClass,
    QuotaState,
)

log = logging.getLogger(__name__)

DEFAULT_API_VERSION = "62.0"
#: Warn when the pinned version is fewer than this many releases above the oldest the org serves
#: (three releases a year: about a year before Salesforce retires it).
DEFAULT_DEPRECATION_MARGIN = 3.0
DEFAULT_TIMEOUT: tuple[float, float] = (10.0, 120.0)
RETRY_STATUSES = frozenset({500, 502, 503, 504})
DEPRECATION_HEADERS = ("Warning", "Deprecation", "Sunset", "Sforce-Deprecation")
_LIMIT_INFO = re.compile(r"api-usage=(\d+)/(\d+)")
_VERSION = re.compile(r"^\d{2,3}\.\d$")


class _RetryableStatusError(Exception):
    def __init__(self, response: requests.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


def default_retry(attempts: int = 4, wait: tenacity.wait.wait_base | None = None) -> tenacity.Retrying:
    """Return the in-call retry policy for 5xx, timeouts and dropped connections.

    :param attempts: calls in all (default 4).
    :param wait: between attempts; default exponential backoff 0.5 s..8 s with jitter.
    """
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(
            (_RetryableStatusError, requests.ConnectionError, requests.Timeout)
        ),
        wait=wait or tenacity.wait_exponential_jitter(multiplier=0.5, max=8.0),
        stop=tenacity.stop_after_attempt(attempts),
        reraise=True,
    )


def parse_limit_info(header: str | None) -> QuotaState | None:
    """Return the daily API allowance from a ``Sforce-Limit-Info`` header (``api-usage=n/max``)."""
    found = _LIMIT_INFO.search(header or "")
    if found is None:
        return None
    used, limit = int(found.group(1)), int(found.group(2))
    return QuotaState(remaining=max(0, limit - used), limit=limit, window="rolling_24h")


def _error_summary(errors: list[Any]) -> str:
    return "; ".join(e.safe_message() for e in errors)


class SalesforceClient:
    """Authenticated, retried JSON calls to one org at a pinned API version.

    :param credentials: :class:`~.auth.JwtBearer` or :class:`~.auth.ClientCredentials`.
    :param api_version: e.g. ``"62.0"``; pinned per connection.
    :param verify: CA bundle path or True.
    :param retry: tenacity policy for 5xx/timeouts/resets (tests pass a zero-wait one).
    :param on_deprecation: called once per distinct deprecation signal (for alerts).
    """

    def __init__(
        self,
        credentials: Credentials,
        *,
        api_version: str = DEFAULT_API_VERSION,
        verify: str | bool = True,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        session: requests.Session | None = None,
        retry: tenacity.Retrying | None = None,
        token_max_age_s: float = DEFAULT_TOKEN_MAX_AGE_S,
        on_deprecation: Callable[[str], None] | None = None,
        deprecation_margin: float = DEFAULT_DEPRECATION_MARGIN,
    ) -> None:
        version = api_version.removeprefix("v")
        if not _VERSION.match(version):
            raise ValueError(f"Salesforce API version must look like '62.0', got {api_version!r}")
        self.api_version = version
        self.verify = verify
        self.timeout = timeout
        self.session = session or requests.Session()
        self.retry = retry or default_retry()
        self.tokens = TokenProvider(credentials, self._post_form, max_age_s=token_max_age_s)
        self.on_deprecation = on_deprecation
        self.deprecation_margin = deprecation_margin
        self.deprecation_signals: list[str] = []
        self.supported_versions: list[str] | None = None
        self._quota: QuotaState | None = None
        self._version_checked = False
        self._lock = threading.Lock()

    # -- public ---------------------------------------------------------------------------------
    @property
    def quota(self) -> QuotaState | None:
        """The daily API allowance the org last reported (``Sforce-Limit-Info``), or None."""
        return self._quota

    def note_quota(self, quota: QuotaState) -> None:
        """Record an allowance read elsewhere (``/limits``)."""
        self._quota = quota

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        data: bytes | str | None = None,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        """Send an authenticated call and return its 2xx/3xx response.

        :param path: relative to ``/services/data/vXX.X`` (``/sobjects/...``), or an absolute
            path on the instance (``/services/data/v62.0/query/01g...``, as ``nextRecordsUrl``).
        :raises DestinationUnavailableError: network/5xx after retries (transient), auth, rate
            limit, missing resource or permission (permanent).
        :raises BatchRejectedError: any other 4xx: the request itself was refused.
        """
        self._check_version_once()
        for renewal in (False, True):
            token = self.tokens.get()
            response = self._send(
                method, self._url(token, path), token, json=json, params=params, data=data, headers=headers
            )
            if response.status_code == 401:
                self.tokens.invalidate(token)
                if not renewal:
                    log.info("Salesforce session expired; renewing the token once")
                    continue
            return self._checked(response, method, path)
        raise AssertionError("unreachable")  # pragma: no cover

    def get_json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """Return the JSON body of ``GET path``."""
        return decode_json(self.request("GET", path, params=params))

    def query(self, soql: str) -> Iterator[dict[str, Any]]:
        """Yield every record a SOQL query returns, following ``nextRecordsUrl`` (``attributes`` dropped)."""
        body = self.get_json("/query", {"q": soql})
        while True:
            for record in body.get("records", []):
                yield {k: v for k, v in record.items() if k != "attributes"}
            next_url = body.get("nextRecordsUrl")
            if body.get("done", True) or not next_url:
                return
            body = self.get_json(str(next_url))

    def check_version(self) -> list[str]:
        """Compare the pinned version with those the org serves; return the served versions.

        :raises DestinationUnavailableError: permanent, when the org no longer serves the pin.
        """
        base = self.tokens.get().instance_url
        response = self._send("GET", f"{base}/services/data/")
        try:
            versions = [str(v["version"]) for v in response.json()]
        except (ValueError, TypeError, KeyError):
            log.warning(
                "Salesforce versions list unreadable (HTTP %s); version not checked", response.status_code
            )
            return []
        self.supported_versions = versions
        numbers = sorted(float(v) for v in versions if _VERSION.match(v))
        pinned = float(self.api_version)
        if numbers and pinned not in numbers:
            raise DestinationUnavailableError(
                f"Salesforce API v{self.api_version} is not served by this org "
                f"(v{numbers[0]:.1f}..v{numbers[-1]:.1f}); pin a supported version on the connection",
                error_class=FailureClass.PERMANENT,
                error_code="API_VERSION_UNSUPPORTED",
            )
        if numbers and pinned - numbers[0] < self.deprecation_margin:
            self._signal(
                f"Salesforce API v{self.api_version} is within {self.deprecation_margin:g} releases of "
                f"the oldest version the org serves (v{numbers[0]:.1f}); newest is v{numbers[-1]:.1f}"
            )
        return versions

    # -- internals --------------------------------------------------------------------------------
    def _check_version_once(self) -> None:
        with self._lock:
            if self._version_checked:
                return
            self._version_checked = True
        try:
            self.check_version()
        except DestinationUnavailableError as exc:
            if exc.error_class is not FailureClass.TRANSIENT:
                with self._lock:
                    self._version_checked = False  # check again next time: the pin or login may change
                raise
            log.warning("Salesforce version check skipped: %s", exc.error_code)

    def _url(self, token: AccessToken, path: str) -> str:
        if path.startswith("/services/"):
            return token.instance_url + path
        return f"{token.instance_url}/services/data/v{self.api_version}{path}"

    def _post_form(self, url: str, form: dict[str, str]) -> requests.Response:
        return self._send("POST", url, data=form)

    def _send(
        self,
        method: str,
        url: str,
        token: AccessToken | None = None,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        """Send once per attempt of the retry policy; return the last response."""
        all_headers = {"Accept": "application/json", **(headers or {})}
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token.value}"

        def once() -> requests.Response:
            response = self.session.request(
                method,
                url,
                json=json,
                params=params,
                data=data,
                headers=all_headers,
                timeout=self.timeout,
                verify=self.verify,
            )
            self._observe(response)
            if response.status_code in RETRY_STATUSES:
                raise _RetryableStatusError(response)
            return response

        try:
            response: requests.Response = self.retry(once)
        except _RetryableStatusError as exc:
            codes = parse_rest_errors(_decode_or_none(exc.response))
            raise DestinationUnavailableError(
                f"Salesforce kept answering HTTP {exc.response.status_code} ({_error_summary(codes)})",
                error_class=FailureClass.TRANSIENT,
                error_code=codes[0].code,
                http_status=exc.response.status_code,
            ) from exc
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise DestinationUnavailableError(
                f"Salesforce unreachable after retries: {type(exc).__name__}",
                error_class=FailureClass.TRANSIENT,
                error_code=type(exc).__name__,
            ) from exc
        return response

    def _observe(self, response: requests.Response) -> None:
        """Track the allowance and deprecation headers of any response."""
        quota = parse_limit_info(response.headers.get("Sforce-Limit-Info"))
        if quota is not None:
            self._quota = quota
        for name in DEPRECATION_HEADERS:
            value = response.headers.get(name)
            if value:
                self._signal(f"Salesforce sent {name}: {value[:300]}")

    def _signal(self, text: str) -> None:
        with self._lock:
            if text in self.deprecation_signals:
                return
            self.deprecation_signals.append(text)
        log.warning("Deprecation signal: %s", text)
        if self.on_deprecation is not None:
            self.on_deprecation(text)

    def _checked(self, response: requests.Response, method: str, path: str) -> requests.Response:
        status = response.status_code
        if status < 400:
            return response
        errors = parse_rest_errors(_decode_or_none(response))
        code = errors[0].code
        where = f"{method} {path.split('?', 1)[0]}"
        summary = _error_summary(errors)
        if status == 401:
            raise DestinationUnavailableError(
                f"Salesforce refused the session twice on {where}: {summary}",
                error_class=FailureClass.AUTH,
                error_code=code,
                http_status=status,
            )
        if code == "REQUEST_LIMIT_EXCEEDED":
            quota = self._quota
            if quota is not None:
                self._quota = QuotaState(remaining=0, limit=quota.limit, window=quota.window)
            raise DestinationUnavailableError(
                f"Salesforce API request limit exceeded on {where}",
                error_class=FailureClass.RATE_LIMITED,
                error_code=code,
                http_status=status,
            )
        if status in (403, 404):
            raise DestinationUnavailableError(
                f"Salesforce answered HTTP {status} on {where}: {summary}",
                error_class=classify_code(code) if status == 403 else FailureClass.PERMANENT,
                error_code=code,
                http_status=status,
            )
        raise BatchRejectedError(
            f"Salesforce refused {where} (HTTP {status}): {summary}",
            error_class=FailureClass.VALIDATION,
            error_code=code,
            http_status=status,
        )


def _decode_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def decode_json(response: requests.Response) -> Any:
    """Return a response's JSON; a body that is not JSON is a transient fault of the server."""
    try:
        return response.json()
    except ValueError as exc:
        raise DestinationUnavailableError(
            f"Salesforce answered HTTP {response.status_code} with a body that is not JSON",
            error_class=FailureClass.TRANSIENT,
            error_code="MALFORMED_RESPONSE",
            http_status=response.status_code,
        ) from exc
