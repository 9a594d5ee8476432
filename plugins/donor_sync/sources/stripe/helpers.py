"""Stripe's REST list API: bearer auth and cursor paging (retries and errors in ``sources.http``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import tenacity

from donor_sync.sources.http import JsonApi, SourceTransientError
from donor_sync.sources.stripe.settings import PAGE_SIZE

#: Kept for callers that catch Stripe's failures by name.
StripeTransientError = SourceTransientError


class StripeApi:
    """A small client for Stripe's list endpoints."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        verify: str | bool = True,
        timeout: float = 30.0,
        retry: tenacity.Retrying | None = None,
    ) -> None:
        self._http = JsonApi("Stripe", base_url, verify=verify, timeout=timeout)
        if retry is not None:
            self._http.retry = retry
        self._headers = {"Authorization": f"Bearer {api_key}"}

    def list_pages(self, resource: str, *, created_gte: int) -> Iterator[list[dict[str, Any]]]:
        """Yield pages of ``resource`` created at or after ``created_gte`` (unix seconds), newest first."""
        params: dict[str, Any] = {"limit": PAGE_SIZE, "created[gte]": created_gte}
        while True:
            body = self._http.get(f"/v1/{resource}", params, headers=self._headers)
            data: list[dict[str, Any]] = body.get("data", [])
            if data:
                yield data
            if not body.get("has_more") or not data:
                return
            params["starting_after"] = data[-1]["id"]
