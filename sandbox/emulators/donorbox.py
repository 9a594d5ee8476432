"""Donorbox API v1 (``https://donorbox.org/api/v1/…``), as its README documents it.

- HTTP Basic auth: user name = the organisation's login email, password = the API key; anything
  else is 401 with Rails' plain-text ``HTTP Basic: Access denied.`` and a ``WWW-Authenticate`` challenge.
- ``GET /api/v1/{donations|campaigns|donors|plans|events|tickets|purchases}`` answer **bare JSON
  arrays**: no total, no next link; clients stop on a short or empty page.
- ``page`` (default 1) and ``per_page`` (default 50, max 100): a ``per_page`` above the maximum, or
  not a positive integer, silently falls back to the default (50).
- Donation filters: ``email``, ``date_from`` / ``date_to`` on the donation date (formats
  ``YYYY-mm-dd``, ``YYYY/mm/dd``, ``YYYYmmdd``, ``dd-mm-YYYY``; ``date_to`` includes its whole day),
  ``campaign_id``, ``campaign_name``, ``id``, ``first_name``, ``last_name``, ``donor_id``,
  ``amount[usd][min]`` / ``amount[usd][max]``, and ``order=asc|desc`` (default ``desc``, by donation date).
- Rate limit: not documented by Donorbox, so off by default (``requests_per_window`` 0); when set,
  the excess is answered 429 ``Retry later`` with ``Retry-After`` (Rack::Attack's default answer; unverified).
"""

from __future__ import annotations

import base64
import bisect
import contextlib
import hmac
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from sandbox.common.emulator import Emulator

KINDS = ("donations", "campaigns", "donors", "plans", "events", "tickets", "purchases")
_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y%m%d", "%d-%m-%Y")
_DATE_FIELD = {"donations": "donation_date", "plans": "started_at"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class DonorboxError(Exception):
    """An error answer: status, body and headers."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def parse_timestamp(value: Any) -> datetime | None:
    """Parse an ISO-8601 timestamp as Donorbox writes it (``2017-12-21T17:54:13.432Z``), else None."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_filter_date(raw: str, param: str) -> date:
    """Parse a ``date_from`` / ``date_to`` value in one of the documented formats."""
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(raw, fmt).date()
        except ValueError:
            continue
    raise DonorboxError(JSONResponse({"error": f"Invalid date format for {param}: {raw}"}, status_code=400))


def _decimal(value: Any) -> Decimal | None:
    """Return ``value`` as a Decimal, or None when it is not a number."""
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def _usd_amount(donation: dict[str, Any]) -> Decimal | None:
    """Return the donation's amount in US dollars (its converted amount when converted to USD)."""
    if str(donation.get("converted_currency", "")).upper() == "USD":
        return _decimal(donation.get("converted_amount"))
    if str(donation.get("currency", "")).upper() == "USD":
        return _decimal(donation.get("amount"))
    return None


class _Collection:
    """One kind of record, kept sorted by (date, id) for date-range filters and ordering."""

    def __init__(self, date_field: str | None) -> None:
        self.date_field = date_field
        self.records: list[dict[str, Any]] = []
        self.keys: list[tuple[float, int]] = []
        self.by_id: dict[int, int] = {}
        self.next_id = 1

    def load(self, records: list[dict[str, Any]]) -> int:
        """Add or replace records (by ``id``); ids are given out to records without one."""
        merged: dict[int, dict[str, Any]] = {int(r["id"]): r for r in self.records}
        for given in records:
            rid = given.get("id")
            if not isinstance(rid, int):
                rid = self.next_id
            self.next_id = max(self.next_id, rid + 1)
            merged[rid] = {**given, "id": rid}
        pairs = sorted(((self._key(r), r) for r in merged.values()), key=lambda p: p[0])
        self.keys = [k for k, _ in pairs]
        self.records = [r for _, r in pairs]
        self.by_id = {int(r["id"]): i for i, r in enumerate(self.records)}
        return len(records)

    def _key(self, record: dict[str, Any]) -> tuple[float, int]:
        when = parse_timestamp(record.get(self.date_field)) if self.date_field else None
        return ((when or _EPOCH).timestamp(), int(record["id"]))


class DonorboxEmulator(Emulator):
    """Donorbox's read API: donations, campaigns, donors and the other documented lists."""

    name: ClassVar[str] = "donorbox"
    default_settings: ClassVar[dict[str, Any]] = {
        "email": "api@sandbox.donor-sync.test",
        "api_key": "sandbox-donorbox-key",
        "default_per_page": 50,
        "max_per_page": 100,
        "requests_per_window": 0,
        "rate_limit_window_s": 60.0,
    }

    def reset_state(self) -> None:
        """Forget every record and the rate-limit window."""
        self.collections: dict[str, _Collection] = {k: _Collection(_DATE_FIELD.get(k)) for k in KINDS}
        self._hits: deque[float] = deque()
        self._rate_lock = threading.Lock()

    def snapshot(self) -> dict[str, Any]:
        """Return how many records of each kind are loaded."""
        return {"counts": {kind: len(c.records) for kind, c in self.collections.items()}}

    def seed(self, kind: str, records: list[dict[str, Any]]) -> int:
        """Load Donorbox-shaped records of ``kind`` (``donations``, ``campaigns``, ``donors``, …)."""
        if kind not in self.collections:
            raise HTTPException(status_code=404, detail=f"donorbox takes no seed data of kind {kind!r}")
        return self.collections[kind].load(records)

    def error_body(self, status: int, kind: str) -> tuple[bytes, str]:
        """Answer injected faults as Donorbox (a Rails app) would."""
        if status == 401 or kind == "expired_token":
            return b"HTTP Basic: Access denied.\n", "text/html; charset=utf-8"
        if status == 429:
            return b"Retry later\n", "text/plain"
        return b'{"status":%d,"error":"Internal Server Error"}' % status, "application/json; charset=utf-8"

    # -- request handling ------------------------------------------------------------------------
    def _authenticate(self, request: Request) -> None:
        """Check HTTP Basic credentials against the account email and API key."""
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        user, password = "", ""
        if scheme.lower() == "basic":
            with contextlib.suppress(ValueError, UnicodeDecodeError):
                user, _, password = base64.b64decode(encoded).decode().partition(":")
        if not (
            hmac.compare_digest(user.lower(), str(self.settings["email"]).lower())
            and hmac.compare_digest(password, str(self.settings["api_key"]))
        ):
            raise DonorboxError(
                PlainTextResponse(
                    "HTTP Basic: Access denied.\n",
                    status_code=401,
                    headers={"WWW-Authenticate": 'Basic realm="Application"'},
                    media_type="text/html",
                )
            )

    def _throttle(self) -> None:
        """Apply the (optional) request limit per window."""
        limit = int(self.settings["requests_per_window"])
        if limit <= 0:
            return
        window = float(self.settings["rate_limit_window_s"])
        now = time.monotonic()
        with self._rate_lock:
            while self._hits and self._hits[0] <= now - window:
                self._hits.popleft()
            if len(self._hits) >= limit:
                wait = self._hits[0] + window - now
                raise DonorboxError(
                    PlainTextResponse(
                        "Retry later\n", status_code=429, headers={"Retry-After": str(math.ceil(wait))}
                    )
                )
            self._hits.append(now)

    def _page(self, request: Request) -> tuple[int, int]:
        """Return (page, per_page) with Donorbox's fallbacks."""
        default = int(self.settings["default_per_page"])
        per_page = _positive_int(request.query_params.get("per_page"))
        if per_page is None or per_page > int(self.settings["max_per_page"]):
            per_page = default
        return _positive_int(request.query_params.get("page")) or 1, per_page

    def _list(self, kind: str, request: Request) -> list[dict[str, Any]]:
        """Return one page of ``kind`` after its filters and order."""
        page, per_page = self._page(request)
        params = request.query_params
        with self.lock:
            collection = self.collections[kind]
            lo, hi = 0, len(collection.records)
            match: Callable[[dict[str, Any]], bool] | None = None
            if kind == "donations":
                lo, hi = _date_range(collection, params.get("date_from"), params.get("date_to"))
                match = _donation_matcher(dict(params))
            elif kind == "donors":
                match = _donor_matcher(dict(params))
            ascending = params.get("order", "desc").lower() == "asc"
            indexes = range(lo, hi) if ascending else range(hi - 1, lo - 1, -1)
            skip = (page - 1) * per_page
            if match is None:
                chosen = indexes[skip : skip + per_page]
                return [collection.records[i] for i in chosen]
            out: list[dict[str, Any]] = []
            for index in indexes:
                record = collection.records[index]
                if not match(record):
                    continue
                if skip:
                    skip -= 1
                    continue
                out.append(record)
                if len(out) == per_page:
                    break
            return out

    def routes(self, app: FastAPI) -> None:
        """Register ``GET /api/v1/{kind}`` for every documented list."""
        for kind in KINDS:
            self._list_route(app, kind)

    def _list_route(self, app: FastAPI, kind: str) -> None:
        def list_records(request: Request) -> Response:
            try:
                self._authenticate(request)
                self._throttle()
                return JSONResponse(self._list(kind, request))
            except DonorboxError as err:
                return err.response

        app.add_api_route(f"/api/v1/{kind}", list_records, methods=["GET"], name=f"list_{kind}")


def _positive_int(raw: str | None) -> int | None:
    """Return ``raw`` as a positive integer, or None."""
    try:
        value = int(raw) if raw is not None else None
    except ValueError:
        return None
    return value if value is not None and value > 0 else None


def _date_range(collection: _Collection, date_from: str | None, date_to: str | None) -> tuple[int, int]:
    """Return the index range of donations whose date is within ``date_from``..``date_to`` (whole days)."""
    lo, hi = 0, len(collection.records)
    if date_from:
        start = datetime.combine(parse_filter_date(date_from, "date_from"), datetime.min.time(), UTC)
        lo = bisect.bisect_left(collection.keys, (start.timestamp(), -1))
    if date_to:
        end = datetime.combine(
            parse_filter_date(date_to, "date_to") + timedelta(days=1), datetime.min.time(), UTC
        )
        hi = bisect.bisect_left(collection.keys, (end.timestamp(), -1))
    return lo, max(lo, hi)


def _text_equal(left: Any, right: str) -> bool:
    return str(left if left is not None else "").strip().lower() == right.strip().lower()


def _donation_matcher(params: dict[str, str]) -> Callable[[dict[str, Any]], bool] | None:
    """Return a predicate for the donation filters other than dates, or None when there are none."""
    checks: list[Callable[[dict[str, Any]], bool]] = []

    def donor(d: dict[str, Any]) -> dict[str, Any]:
        found = d.get("donor")
        return found if isinstance(found, dict) else {}

    def campaign(d: dict[str, Any]) -> dict[str, Any]:
        found = d.get("campaign")
        return found if isinstance(found, dict) else {}

    if "email" in params:
        checks.append(lambda d: _text_equal(donor(d).get("email"), params["email"]))
    if "first_name" in params:
        checks.append(lambda d: _text_equal(donor(d).get("first_name"), params["first_name"]))
    if "last_name" in params:
        checks.append(lambda d: _text_equal(donor(d).get("last_name"), params["last_name"]))
    if "donor_id" in params:
        checks.append(lambda d: str(donor(d).get("id")) == params["donor_id"])
    if "campaign_id" in params:
        checks.append(lambda d: str(campaign(d).get("id")) == params["campaign_id"])
    if "campaign_name" in params:
        checks.append(lambda d: _text_equal(campaign(d).get("name"), params["campaign_name"]))
    if "id" in params:
        checks.append(lambda d: str(d.get("id")) == params["id"])
    low, high = _decimal(params.get("amount[usd][min]")), _decimal(params.get("amount[usd][max]"))
    if low is not None or high is not None:

        def in_range(d: dict[str, Any]) -> bool:
            amount = _usd_amount(d)
            return amount is not None and (low is None or amount >= low) and (high is None or amount <= high)

        checks.append(in_range)
    if not checks:
        return None
    return lambda d: all(check(d) for check in checks)


def _donor_matcher(params: dict[str, str]) -> Callable[[dict[str, Any]], bool] | None:
    """Return a predicate for the donor filters (``email``, ``first_name``, ``last_name``, ``id``)."""
    wanted = {k: params[k] for k in ("email", "first_name", "last_name") if k in params}
    if not wanted and "id" not in params:
        return None
    return lambda d: (
        all(_text_equal(d.get(k), v) for k, v in wanted.items())
        and ("id" not in params or str(d.get("id")) == params["id"])
    )
