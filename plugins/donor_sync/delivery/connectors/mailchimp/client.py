"""HTTP to one Mailchimp account: Basic auth with the API key, data centre, retries, errors.

* Auth: HTTP Basic with any user name and the API key (``anystring:<key>``); the key's suffix
  (``…-us6``) is the data centre, so the base URL is ``https://us6.api.mailchimp.com/3.0``
  unless the connection's host names another (the sandbox emulator).
* Retries (tenacity, in this module only): 429 (Mailchimp allows 10 simultaneous connections per
  account and sends no rate-limit headers; a ``Retry-After`` is honoured if one ever comes),
  5xx, timeouts and dropped connections, with exponential backoff and jitter; then a transient
  :class:`DestinationUnavailableError`.
* Errors are problem+json (``type``, ``title``, ``status``, ``detail``). The ``detail`` echoes
  emails ("x@y.org is already a list member"), so only the status and the title (as a code such
  as ``RESOURCE_NOT_FOUND``) are ever passed on.

``verify`` (a CA bundle path or True) is passed on every request: ``requests`` lets
``REQUESTS_CA_BUNDLE`` override a session's own setting.
"""

from __future__ import annotations

import email.utils
import hashlib
import logging
import re
import threading
import time
from collections.abc import Callable, Collection, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import requests
import tenacity

from donor_sync.delivery.connectors.retrying import RetryableError, default_retry, refusal
from donor_sync.delivery.contracts import DestinationUnavailableError, FailureClass
from donor_sync.errors import ConfigError

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
DEFAULT_TIMEOUT_S = 30.0
#: Requests one process keeps in flight. Mailchimp allows 10 simultaneous connections per account:
#: the ``mailchimp_api`` pool (2 tasks) times this stays within it.
DEFAULT_MAX_CONNECTIONS = 5
#: The longest a vendor's Retry-After is waited inside one call; longer waits go to the ladder.
_DC = re.compile(r"-([a-z]{2,4}\d{1,3})$")
_CODE = re.compile(r"[^A-Z0-9]+")


def subscriber_hash(email_address: str) -> str:
    """Return Mailchimp's member id for an email: the MD5 of its lower-cased form."""
    return hashlib.md5(email_address.strip().lower().encode(), usedforsecurity=False).hexdigest()


def data_centre(api_key: str) -> str:
    """Return the data centre a key belongs to (``…-us6`` → ``us6``).

    :raises ConfigError: the key has no data-centre suffix (its text is never shown).
    """
    found = _DC.search(api_key.strip())
    if found is None:
        raise ConfigError("mailchimp connection: password: the API key has no data-centre suffix (…-us6)")
    return found.group(1)


def base_url_for(api_key: str, host: str | None = None) -> str:
    """Return the API base URL (``…/3.0``): the connection's host when given, else the key's data centre."""
    if host:
        root = host if "://" in host else f"https://{host}"
        root = root.rstrip("/")
        return root if root.endswith("/3.0") else f"{root}/3.0"
    return f"https://{data_centre(api_key)}.api.mailchimp.com/3.0"


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Return the wait a ``Retry-After`` header asks for (seconds or an HTTP date), if any."""
    value = headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


@dataclass(frozen=True)
class Reply:
    """A Mailchimp answer: status and decoded JSON body (None when empty)."""

    status: int
    body: Any


def _problem_code(body: Any, status: int) -> str:
    """Return the problem's title as a code (``Resource Not Found`` → ``RESOURCE_NOT_FOUND``)."""
    title = body.get("title") if isinstance(body, dict) else None
    if not isinstance(title, str) or not title.strip():
        return f"HTTP_{status}"
    return _CODE.sub("_", title.upper()).strip("_")[:60] or f"HTTP_{status}"


@dataclass
class MailchimpClient:
    """JSON calls to one Mailchimp account.

    :param base_url: ``https://<dc>.api.mailchimp.com/3.0`` (see :func:`base_url_for`).
    :param api_key: the API key (Basic auth password); never logged.
    :param retry: builds the retry policy per call (tests pass a zero-wait one).
    :param slots: bounds the requests this process has in flight (Mailchimp refuses an account's
        11th simultaneous connection with a 429); shared by every thread using the client.
    """

    base_url: str
    api_key: str = field(repr=False)
    verify: str | bool = True
    timeout_s: float = DEFAULT_TIMEOUT_S
    retry: Callable[[], tenacity.Retrying] = default_retry
    session: requests.Session = field(default_factory=requests.Session)
    calls: int = 0
    retries: int = 0
    slots: threading.BoundedSemaphore | None = None

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        accept: Collection[int] = (),
    ) -> Reply:
        """Send one call (429/5xx/network retried) and return its reply.

        :param accept: error statuses handed back as a reply instead of raised (e.g. 404).
        :raises DestinationUnavailableError: auth (401), permission (403), a missing resource
            (404 not accepted), or failures that outlasted the retries (transient/rate limited).
        :raises BatchRejectedError: Mailchimp refused the content (other 4xx).
        """
        attempt = 0

        def once() -> Reply:
            nonlocal attempt
            attempt += 1
            if attempt > 1:
                self.retries += 1
            return self._attempt(method, path, json=json, params=params, accept=accept)

        try:
            return self.retry()(once)
        except RetryableError as exc:
            rate_limited = exc.status == 429
            raise DestinationUnavailableError(
                f"Mailchimp {method} {_template(path)} kept failing ({exc.code}) after {attempt} attempts",
                error_class=FailureClass.RATE_LIMITED if rate_limited else FailureClass.TRANSIENT,
                error_code=exc.code,
                http_status=exc.status,
                retry_after_s=exc.retry_after_s,
            ) from None

    def get(self, path: str, *, params: Mapping[str, Any] | None = None) -> Any:
        """Return the JSON body of ``GET path``."""
        return self.request("GET", path, params=params).body

    # -- members -----------------------------------------------------------------------------------
    def get_member(self, list_id: str, email_or_hash: str) -> dict[str, Any] | None:
        """Return a list member (by email or subscriber hash), or None when the list has none."""
        member_hash = subscriber_hash(email_or_hash) if "@" in email_or_hash else email_or_hash
        reply = self.request("GET", f"/lists/{_seg(list_id)}/members/{member_hash}", accept=(404,))
        return reply.body if reply.status == 200 and isinstance(reply.body, dict) else None

    def delete_member_permanently(self, list_id: str, member_hash: str) -> bool:
        """Erase a member for good (``actions/delete-permanent``); False when it was not there.

        Mailchimp then refuses to re-import the email ("Forgotten Email Not Subscribed").
        """
        path = f"/lists/{_seg(list_id)}/members/{member_hash}/actions/delete-permanent"
        return self.request("POST", path, accept=(404,)).status != 404

    def archive_member(self, list_id: str, member_hash: str) -> bool:
        """Archive a member (``DELETE``; the data stays in Mailchimp); False when it was not there."""
        path = f"/lists/{_seg(list_id)}/members/{member_hash}"
        return self.request("DELETE", path, accept=(404, 405)).status not in (404, 405)

    def list_ids(self) -> list[str]:
        """Return the ids of every audience of the account (paged by 1000)."""
        ids: list[str] = []
        offset = 0
        while True:
            body = self.get(
                "/lists", params={"count": 1000, "offset": offset, "fields": "lists.id,total_items"}
            )
            page = [str(item["id"]) for item in (body or {}).get("lists", []) if isinstance(item, dict)]
            ids += page
            offset += len(page)
            if not page or offset >= int((body or {}).get("total_items", 0)):
                return ids

    def download(self, url: str) -> bytes:
        """Return the bytes at ``url`` (a /batches results archive), without the API key.

        Mailchimp serves batch results from a storage URL that is signed already: the key is
        never sent there. Failures are retried like API calls.
        """

        def once() -> bytes:
            try:
                with self.slots or nullcontext():
                    response = self.session.get(
                        url, timeout=(min(10.0, self.timeout_s), self.timeout_s * 4), verify=self.verify
                    )
            except requests.Timeout as exc:
                raise RetryableError("TIMEOUT") from exc
            except requests.ConnectionError as exc:
                raise RetryableError("CONNECTION_ERROR") from exc
            self.calls += 1
            if response.status_code in RETRY_STATUSES or response.status_code == 404:
                # A results file can lag its batch's "finished" status for a moment.
                raise RetryableError(f"HTTP_{response.status_code}", response.status_code)
            if response.status_code >= 400:
                raise DestinationUnavailableError(
                    f"Mailchimp batch results download answered HTTP {response.status_code}",
                    error_class=FailureClass.TRANSIENT,
                    error_code=f"HTTP_{response.status_code}",
                    http_status=response.status_code,
                )
            return response.content

        try:
            return self.retry()(once)
        except RetryableError as exc:
            raise DestinationUnavailableError(
                f"Mailchimp batch results download kept failing ({exc.code})",
                error_class=FailureClass.TRANSIENT,
                error_code=exc.code,
                http_status=exc.status,
            ) from None

    # -- internals -----------------------------------------------------------------------------
    def _attempt(
        self,
        method: str,
        path: str,
        *,
        json: Any,
        params: Mapping[str, Any] | None,
        accept: Collection[int],
    ) -> Reply:
        try:
            with self.slots or nullcontext():
                response = self.session.request(
                    method,
                    f"{self.base_url.rstrip('/')}{path}",
                    json=json,
                    params=params,
                    auth=("donor-sync", self.api_key),
                    headers={"Accept": "application/json"},
                    timeout=(min(10.0, self.timeout_s), self.timeout_s),
                    verify=self.verify,
                )
        except requests.Timeout as exc:
            raise RetryableError("TIMEOUT") from exc
        except requests.ConnectionError as exc:
            raise RetryableError("CONNECTION_ERROR") from exc
        self.calls += 1
        status = response.status_code
        body = _decode(response)
        if status in RETRY_STATUSES:
            log.info("Mailchimp HTTP %s on %s %s; retrying", status, method, _template(path))
            raise RetryableError(_problem_code(body, status), status, retry_after_seconds(response.headers))
        if status < 400 or status in accept:
            return Reply(status, body)
        code = _problem_code(body, status)
        raise refusal(
            f"Mailchimp {method} {_template(path)}",
            status,
            code,
            credentials=f"the API key was refused ({code}); check the connection's key and data centre",
        )


def _decode(response: requests.Response) -> Any:
    if response.status_code == 204 or not response.content:
        return None
    try:
        return response.json()
    except ValueError as exc:
        if response.status_code < 400:
            raise RetryableError("MALFORMED_RESPONSE", response.status_code) from exc
        return None


def _seg(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", value):
        raise ValueError("not a Mailchimp id")
    return value


_HASH_IN_PATH = re.compile(r"/members/[0-9a-f]{32}")


def _template(path: str) -> str:
    """Return ``path`` with subscriber hashes replaced (they are derived from emails)."""
    return _HASH_IN_PATH.sub("/members/{hash}", path)


def client_from_connection(
    host: str | None,
    password: str | None,
    extra: Mapping[str, Any],
    *,
    retry: Callable[[], tenacity.Retrying] = default_retry,
) -> MailchimpClient:
    """Return a client for a ``mailchimp`` (plain ``http``) connection's fields.

    Password = API key; host = base URL override (the sandbox); extras ``ca_bundle``,
    ``timeout`` and ``max_connections`` (requests in flight from this process, 1..10).

    :raises ConfigError: the key is missing (or has no data centre and no host is set), or
        ``max_connections`` is not a whole number from 1 to 10.
    """
    if not password:
        raise ConfigError("mailchimp connection: password: the API key is empty")
    timeout = extra.get("timeout")
    raw_slots = extra.get("max_connections") or DEFAULT_MAX_CONNECTIONS
    try:
        slots = int(raw_slots)
    except (TypeError, ValueError):
        slots = 0
    if not 1 <= slots <= 10:
        raise ConfigError("mailchimp connection: extra max_connections: a whole number from 1 to 10")
    return MailchimpClient(
        base_url_for(password, host),
        password,
        verify=str(extra["ca_bundle"]) if extra.get("ca_bundle") else True,
        timeout_s=float(timeout) if timeout else DEFAULT_TIMEOUT_S,
        retry=retry,
        slots=threading.BoundedSemaphore(slots),
    )
