"""Donorbox extraction: donations into ``raw``, re-scanning a trailing window.

Donorbox has no updated-since filter (only ``date_from`` on the donation date, by day), so a
refund of an older donation is only seen by reading that donation again: each run re-reads a
trailing window (the watermark's overlap, 30 days by default) and raw keeps any changed version.
Pages are bare arrays; the last page is the first short one.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
import tenacity

from donor_sync.sources.extract import StreamResult, extract_stream, listed_record
from donor_sync.sources.http import JsonApi
from donor_sync.sources.raw_landing import RawRecord

__all__ = ["SOURCE", "DonorboxApi", "extract_donorbox"]

SOURCE = "donorbox"
PAGE_SIZE = 100
RESCAN_WINDOW = timedelta(days=30)
INITIAL_START = datetime(2010, 1, 1, tzinfo=UTC)


class DonorboxApi:
    """Donorbox API v1 with HTTP Basic auth (organisation email, API key)."""

    def __init__(
        self,
        base_url: str,
        email: str,
        api_key: str,
        *,
        verify: str | bool = True,
        timeout: float = 30.0,
        retry: tenacity.Retrying | None = None,
    ) -> None:
        self._http = JsonApi("Donorbox", base_url, verify=verify, timeout=timeout)
        if retry is not None:
            self._http.retry = retry
        self._auth = (email, api_key)

    def donation_pages(self, *, date_from: datetime) -> Iterator[list[dict[str, Any]]]:
        """Yield pages of donations dated on or after ``date_from``'s day, oldest first."""
        page = 1
        while True:
            params = {
                "date_from": date_from.strftime("%Y-%m-%d"),
                "order": "asc",
                "page": page,
                "per_page": PAGE_SIZE,
            }
            data: list[dict[str, Any]] = self._http.get("/api/v1/donations", params, auth=self._auth)
            if data:
                yield data
            if len(data) < PAGE_SIZE:
                return
            page += 1


def extract_donorbox(
    conn: psycopg.Connection,
    api: DonorboxApi,
    *,
    run_id: UUID | None,
    initial_start: datetime = INITIAL_START,
) -> list[StreamResult]:
    """Extract donations into ``raw.records`` as one batch; return its counts."""

    def read_window(start: datetime) -> Iterator[RawRecord]:
        for page in api.donation_pages(date_from=start):
            for donation in page:
                yield listed_record(donation, entity="donation", time_keys=("donation_date",))

    return [
        extract_stream(
            conn,
            source=SOURCE,
            stream="donations",
            run_id=run_id,
            read_window=read_window,
            initial_start=initial_start,
            overlap=RESCAN_WINDOW,
        )
    ]
