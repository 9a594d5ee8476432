"""Classy (GoFundMe Pro) extraction: transactions changed since the watermark into ``raw``.

Client-credentials OAuth: the token is cached and fetched again when it expires. A cached token
Classy answers 401 to (revoked, or expired early) is dropped, a new one fetched once and the call
retried; only a 401 on a freshly fetched token is permanent (an error naming the connection,
never the secret). Transactions are filtered on ``updated_at`` and sorted by it, so refunds and
other later changes are read as they happen.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import psycopg
import requests
import tenacity

from donor_sync.errors import PermanentError
from donor_sync.sources.extract import StreamResult, extract_stream, listed_record
from donor_sync.sources.http import JsonApi, SourceAuthError
from donor_sync.sources.raw_landing import RawRecord

__all__ = ["SOURCE", "ClassyApi", "extract_classy"]

log = logging.getLogger(__name__)

SOURCE = "classy"
PAGE_SIZE = 100
INITIAL_START = datetime(2010, 1, 1, tzinfo=UTC)
_TOKEN_MARGIN_S = 60


class ClassyApi:
    """Classy API 2.0 with client-credentials OAuth.

    :param connection: the Airflow connection the credentials come from, named in errors.
    """

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        organization_id: int,
        *,
        verify: str | bool = True,
        timeout: float = 30.0,
        retry: tenacity.Retrying | None = None,
        connection: str = "classy",
    ) -> None:
        self._http = JsonApi("Classy", base_url, verify=verify, timeout=timeout)
        if retry is not None:
            self._http.retry = retry
        self._client = (client_id, client_secret)
        self.organization_id = organization_id
        self.connection = connection
        self._token: tuple[str, float] | None = None
        #: The ``total`` the last listing's first page reported (for reconciliation).
        self.last_total: int | None = None

    def _token_due(self) -> bool:
        """Whether the next call needs a new token (none cached, or about to expire)."""
        return self._token is None or self._token[1] - _TOKEN_MARGIN_S < time.time()

    def _bearer(self) -> dict[str, str]:
        token = self._token
        if token is None or self._token_due():
            response = self._http.session.post(
                f"{self._http.base_url.rstrip('/')}/oauth2/auth",
                data={
                    "grant_type": "client_credentials",
                    "client_id": self._client[0],
                    "client_secret": self._client[1],
                },
                timeout=self._http.timeout,
                verify=self._http.verify,
            )
            if response.status_code != requests.codes.ok:
                raise PermanentError(
                    f"Classy refused the client credentials of connection {self.connection!r}"
                    f" (HTTP {response.status_code}): check its client id and secret"
                )
            body = response.json()
            token = (str(body["access_token"]), time.time() + float(body.get("expires_in", 3600)))
            self._token = token
        return {"Authorization": f"Bearer {token[0]}"}

    def _get(self, path: str, params: dict[str, Any]) -> Any:
        """GET ``path`` with the cached token; on a 401 to a cached token, once with a new one.

        :raises PermanentError: 401 on a freshly fetched token, or 403 (naming the connection).
        """
        fresh = self._token_due()
        try:
            return self._http.get(path, params, headers=self._bearer())
        except SourceAuthError as exc:
            if exc.status != 401 or fresh:
                raise self._refused(exc.status, path) from None
        log.info(
            "Classy answered 401 to the cached access token of connection %s; fetching a new one",
            self.connection,
        )
        self._token = None
        try:
            return self._http.get(path, params, headers=self._bearer())
        except SourceAuthError as exc:
            raise self._refused(exc.status, path) from None

    def _refused(self, status: int, path: str) -> PermanentError:
        what = "a freshly fetched access token" if status == 401 else "the access token"
        return PermanentError(
            f"Classy refused {what} of connection {self.connection!r} (HTTP {status}) on {path}: check"
            f" that its client may read organization {self.organization_id}"
        )

    def transaction_pages(self, *, updated_since: datetime) -> Iterator[list[dict[str, Any]]]:
        """Yield pages of the organisation's transactions updated at or after ``updated_since``."""
        since = updated_since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        page = 1
        while True:
            params = {
                "filter": f"updated_at>={since}",
                "sort": "updated_at:asc",
                "page": page,
                "per_page": PAGE_SIZE,
            }
            body = self._get(f"/2.0/organizations/{self.organization_id}/transactions", params)
            data: list[dict[str, Any]] = body.get("data", [])
            if page == 1:
                self.last_total = int(body["total"]) if body.get("total") is not None else None
            if data:
                yield data
            if page >= int(body.get("last_page") or 1) or not data:
                return
            page += 1


def extract_classy(
    conn: psycopg.Connection, api: ClassyApi, *, run_id: UUID | None, initial_start: datetime = INITIAL_START
) -> list[StreamResult]:
    """Extract transactions into ``raw.records`` as one batch; return its counts."""

    def read_window(start: datetime) -> Iterator[RawRecord]:
        for page in api.transaction_pages(updated_since=start):
            for transaction in page:
                yield listed_record(transaction, entity="transaction", time_keys=("updated_at", "created_at"))

    return [
        extract_stream(
            conn,
            source=SOURCE,
            stream="transactions",
            run_id=run_id,
            read_window=read_window,
            initial_start=initial_start,
            reported=lambda: api.last_total,
        )
    ]
