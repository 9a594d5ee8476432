"""Classy (GoFundMe Pro) API 2.0: client-credentials OAuth and an organisation's transactions.

- ``POST /oauth2/auth`` (form or JSON: ``grant_type=client_credentials``, ``client_id``,
  ``client_secret``) → ``{"access_token", "token_type": "bearer", "expires_in"}``; calling again gives
  a fresh token. Bad clients are 400 ``invalid_client``, other grants 400 ``unsupported_grant_type``.
- ``GET /2.0/organizations/{id}/transactions`` (also under ``/api/2.0``, the spec's host) with a
  bearer token. An expired token is 401 ``expired_token``, an unknown or revoked one 401
  ``invalid_token`` (``{"error", "error_description"}`` and a ``WWW-Authenticate: Bearer``
  challenge, as PHP OAuth2 servers answer; unverified). Another organisation's data is 403.
- ``POST /__admin/tokens/revoke``: revoke every issued token (an administrator revoking the
  application's access, a rotated secret): each is then 401 ``invalid_token`` before its expiry,
  while the client credentials still get a fresh token.
- Query: ``page`` (default 1), ``per_page`` (default 20, 1-100, else 400), ``filter`` =
  ``{attribute}{operand}{value}`` with operands ``= != <> > < >= <=`` (URL-encoded), several joined by
  commas (all must hold), e.g. ``filter=updated_at%3E2024-01-01T00:00:00Z``; ``sort=field:asc|desc``
  (default ``id:asc``); ``fields`` to pick attributes; ``with`` is accepted.
- Answers the paginated envelope: ``current_page, data, first_page_url, from, last_page,
  last_page_url, next_page_url, path, per_page, prev_page_url, to, total``.
- 1,800 requests per minute per application (``requests_per_window`` / ``rate_limit_window_s``):
  ``X-RateLimit-Limit`` and ``X-RateLimit-Remaining`` on every answer; beyond it 429
  ``{"message": "Too Many Attempts.", "retry_after": n}`` with ``Retry-After`` and ``X-RateLimit-Reset``.
"""

from __future__ import annotations

import bisect
import hmac
import json
import math
import operator
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import parse_qs

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from sandbox.common.emulator import Emulator

_FILTER = re.compile(r"^([A-Za-z_][\w.]*)(>=|<=|!=|<>|=|>|<)(.*)$", re.DOTALL)
_RANGE_OPS = (">", ">=", "<", "<=")
_OPERANDS: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<>": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
    ">=": operator.ge,
    "<=": operator.le,
}


class ClassyError(Exception):
    """An error answer: status, JSON body and headers."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


def _oauth_error(status: int, error: str, description: str) -> ClassyError:
    """Return an OAuth2-style error (token endpoint and protected resources)."""
    headers = {}
    if status == 401:
        headers["WWW-Authenticate"] = (
            f'Bearer realm="Service", error="{error}", error_description="{description}"'
        )
    return ClassyError(status, {"error": error, "error_description": description}, headers)


def parse_datetime(value: Any) -> datetime | None:
    """Parse an ISO-8601 datetime (``Z``, ``+00:00`` or ``+0000``); None when it is not one."""
    if not isinstance(value, str) or len(value) < 10 or value[4:5] != "-":
        return None
    text = value.strip().replace(" ", "+") if "T" in value else value.strip()
    text = re.sub(r"Z$", "+00:00", text)
    text = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _now_iso() -> str:
    """Return the current time as Classy writes datetimes (``YYYY-MM-DDTHH:mm:ss.sssZ``)."""
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def _lookup(record: dict[str, Any], path: str) -> Any:
    """Return the value at a dotted ``path`` (associations) of ``record``."""
    value: Any = record
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _compare(left: Any, op: str, raw: str) -> bool:
    """Compare a record value with a filter value: as datetimes, numbers, or text, in that order."""
    if left is None:
        return (op in ("!=", "<>") and raw.lower() != "null") or (op == "=" and raw.lower() == "null")
    a: Any
    b: Any
    left_dt, right_dt = parse_datetime(left), parse_datetime(raw)
    if left_dt is not None and right_dt is not None:
        a, b = left_dt, right_dt
    else:
        try:
            a, b = float(left), float(raw)
        except (TypeError, ValueError):
            a, b = str(left).lower(), raw.lower()
    return bool(_OPERANDS[op](a, b))


class _Transactions:
    """Transactions by id, with an index on ``updated_at`` for the usual incremental filter."""

    def __init__(self) -> None:
        self.by_id: dict[int, dict[str, Any]] = {}
        self.next_id = 1
        self._updated: list[tuple[float, int]] | None = None
        self._ids: list[int] | None = None

    def load(self, records: list[dict[str, Any]], organization_id: int) -> int:
        """Add or replace transactions by ``id``, filling ``id``, timestamps and the organisation."""
        for record in records:
            rid = record.get("id")
            if not isinstance(rid, int):
                rid = self.next_id
            now = _now_iso()
            full = {"created_at": now, "updated_at": record.get("created_at") or now, **record, "id": rid}
            full.setdefault("organization_id", organization_id)
            self.by_id[rid] = full
            self.next_id = max(self.next_id, rid + 1)
        self._updated = None
        self._ids = None
        return len(records)

    def ids(self) -> list[int]:
        """Return every id, ascending."""
        if self._ids is None:
            self._ids = sorted(self.by_id)
        return self._ids

    def updated_range(self, bounds: list[tuple[str, datetime]]) -> list[int]:
        """Return ids whose ``updated_at`` satisfies every (operand, datetime) bound, by updated_at."""
        if self._updated is None:
            keys = []
            for rid, record in self.by_id.items():
                when = parse_datetime(record.get("updated_at"))
                keys.append((when.timestamp() if when else float("-inf"), rid))
            self._updated = sorted(keys)
        index = self._updated
        lo, hi = 0, len(index)
        for op, when in bounds:
            ts = when.timestamp()
            if op == ">":
                lo = max(lo, bisect.bisect_right(index, (ts, math.inf)))
            elif op == ">=":
                lo = max(lo, bisect.bisect_left(index, (ts, -math.inf)))
            elif op == "<":
                hi = min(hi, bisect.bisect_left(index, (ts, -math.inf)))
            else:
                hi = min(hi, bisect.bisect_right(index, (ts, math.inf)))
        return [rid for _, rid in index[lo:hi]] if hi > lo else []


class ClassyEmulator(Emulator):
    """Classy's OAuth token endpoint and organisation transactions."""

    name: ClassVar[str] = "classy"
    default_settings: ClassVar[dict[str, Any]] = {
        "clients": {"sandbox-classy-client": "sandbox-classy-secret"},
        "organization_ids": [1],
        "token_ttl_s": 3600,
        "default_per_page": 20,
        "max_per_page": 100,
        "requests_per_window": 1800,
        "rate_limit_window_s": 60.0,
    }

    def reset_state(self) -> None:
        """Forget transactions, tokens and rate-limit windows."""
        self.transactions = _Transactions()
        self.tokens: dict[str, tuple[str, float]] = {}
        self._hits: dict[str, deque[float]] = {}
        self._rate_lock = threading.Lock()

    def snapshot(self) -> dict[str, Any]:
        """Return counts of transactions and live tokens."""
        now = time.time()
        return {
            "transactions": len(self.transactions.by_id),
            "live_tokens": sum(1 for _, exp in self.tokens.values() if exp > now),
        }

    def seed(self, kind: str, records: list[dict[str, Any]]) -> int:
        """Load Classy-shaped ``transactions`` (into their ``organization_id``, else the first one)."""
        if kind != "transactions":
            raise HTTPException(status_code=404, detail=f"classy takes no seed data of kind {kind!r}")
        return self.transactions.load(records, int(self.settings["organization_ids"][0]))

    def error_body(self, status: int, kind: str) -> tuple[bytes, str]:
        """Answer injected faults as Classy does."""
        if kind == "expired_token":
            body: dict[str, Any] = _oauth_error(
                401, "expired_token", "The access token provided has expired"
            ).body
        elif status == 401:
            body = _oauth_error(401, "invalid_token", "The access token provided is invalid").body
        elif status == 429:
            body = {"message": "Too Many Attempts.", "retry_after": 60}
        else:
            body = {"message": {500: "Server Error", 503: "Service Unavailable"}.get(status, "Error")}
        return json.dumps(body).encode(), "application/json"

    def expire_tokens(self) -> None:
        """Make every issued token expired (tests of the refresh path)."""
        with self.lock:
            self.tokens = {t: (c, 0.0) for t, (c, _) in self.tokens.items()}

    def revoke_tokens(self) -> int:
        """Revoke every issued token before its expiry (401 ``invalid_token`` from now on); return
        how many were live."""
        now = time.time()
        with self.lock:
            live = sum(1 for _, expires in self.tokens.values() if expires > now)
            self.tokens = {}
        return live

    # -- OAuth -----------------------------------------------------------------------------------
    def issue_token(self, form: dict[str, str]) -> dict[str, Any]:
        """Check client credentials and return a new bearer token."""
        if form.get("grant_type") != "client_credentials":
            raise _oauth_error(
                400, "unsupported_grant_type", f'Grant type "{form.get("grant_type", "")}" not supported'
            )
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        expected = self.settings["clients"].get(client_id)
        if expected is None or not hmac.compare_digest(str(expected), secret):
            raise _oauth_error(400, "invalid_client", "The client credentials are invalid")
        token = secrets.token_hex(20)
        ttl = int(self.settings["token_ttl_s"])
        with self.lock:
            self.tokens[token] = (client_id, time.time() + ttl)
        return {"access_token": token, "token_type": "bearer", "expires_in": ttl}

    def _client_for(self, request: Request) -> str:
        """Return the client id of the request's live bearer token, or raise 401."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ClassyError(
                401, {"message": "Unauthenticated."}, {"WWW-Authenticate": 'Bearer realm="Service"'}
            )
        with self.lock:
            found = self.tokens.get(token.strip())
        if found is None:
            raise _oauth_error(401, "invalid_token", "The access token provided is invalid")
        if found[1] <= time.time():
            raise _oauth_error(401, "expired_token", "The access token provided has expired")
        return found[0]

    def _take(self, client: str) -> dict[str, str]:
        """Count a request of ``client``; return the rate-limit headers or raise 429."""
        limit = int(self.settings["requests_per_window"])
        window = float(self.settings["rate_limit_window_s"])
        now = time.monotonic()
        with self._rate_lock:
            hits = self._hits.setdefault(client, deque())
            while hits and hits[0] <= now - window:
                hits.popleft()
            if len(hits) >= limit:
                wait = max(1, math.ceil(hits[0] + window - now))
                headers = {
                    "X-RateLimit-Limit": str(limit),
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": str(int(time.time()) + wait),
                    "Retry-After": str(wait),
                }
                raise ClassyError(429, {"message": "Too Many Attempts.", "retry_after": wait}, headers)
            hits.append(now)
            return {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(limit - len(hits))}

    # -- transactions ----------------------------------------------------------------------------
    def _page_params(self, request: Request) -> tuple[int, int]:
        """Return (page, per_page), or raise 400 for values out of range."""
        params = request.query_params
        try:
            page = int(params.get("page", "1"))
            per_page = int(params.get("per_page", str(self.settings["default_per_page"])))
        except ValueError:
            raise ClassyError(400, {"message": "page and per_page must be integers"}) from None
        maximum = int(self.settings["max_per_page"])
        if page < 1:
            raise ClassyError(400, {"message": "page must be at least 1"})
        if not 1 <= per_page <= maximum:
            raise ClassyError(400, {"message": f"per_page must be between 1 and {maximum}"})
        return page, per_page

    def _matching(
        self, filter_param: str | None, sort_param: str | None, organization: int
    ) -> list[dict[str, Any]]:
        """Return the organisation's transactions passing ``filter``, in ``sort`` order."""
        clauses = _parse_filters(filter_param)
        bounds: list[tuple[str, datetime]] = []
        rest: list[tuple[str, str, str]] = []
        for field, op, value in clauses:
            when = parse_datetime(value)
            if field == "updated_at" and op in _RANGE_OPS and when is not None:
                bounds.append((op, when))
            else:
                rest.append((field, op, value))
        ids = self.transactions.updated_range(bounds) if bounds else self.transactions.ids()
        by_id = self.transactions.by_id
        found = [
            by_id[i]
            for i in ids
            if by_id[i].get("organization_id") == organization
            and all(_compare(_lookup(by_id[i], f), o, v) for f, o, v in rest)
        ]
        return _sorted(found, sort_param, presorted_by_updated=bool(bounds))

    def _transactions_page(self, request: Request, organization: int) -> dict[str, Any]:
        """Return one page of an organisation's transactions in the paginated envelope."""
        if organization not in [int(o) for o in self.settings["organization_ids"]]:
            raise ClassyError(403, {"message": "You do not have permission to access this organization."})
        page, per_page = self._page_params(request)
        params = request.query_params
        with self.lock:
            found = self._matching(params.get("filter"), params.get("sort"), organization)
        total = len(found)
        chunk = found[(page - 1) * per_page : page * per_page]
        fields = [f for f in (params.get("fields") or "").split(",") if f]
        if fields:
            chunk = [{k: r.get(k) for k in fields} for r in chunk]
        last_page = max(1, math.ceil(total / per_page))
        path = f"{self.base_url}{request.url.path}"
        return {
            "current_page": page,
            "data": chunk,
            "first_page_url": f"{path}?page=1",
            "from": (page - 1) * per_page + 1 if chunk else None,
            "last_page": last_page,
            "last_page_url": f"{path}?page={last_page}",
            "next_page_url": f"{path}?page={page + 1}" if page < last_page else None,
            "path": path,
            "per_page": per_page,
            "prev_page_url": f"{path}?page={page - 1}" if page > 1 else None,
            "to": (page - 1) * per_page + len(chunk) if chunk else None,
            "total": total,
        }

    def routes(self, app: FastAPI) -> None:
        """Register the token endpoint and the transactions list."""

        @app.post("/__admin/tokens/revoke")
        def revoke() -> dict[str, int]:
            return {"revoked": self.revoke_tokens()}

        @app.post("/oauth2/auth")
        async def token(request: Request) -> JSONResponse:
            raw = await request.body()
            if request.headers.get("content-type", "").startswith("application/json"):
                try:
                    loaded = json.loads(raw or b"{}")
                except ValueError:
                    loaded = {}
                form = {str(k): str(v) for k, v in loaded.items()} if isinstance(loaded, dict) else {}
            else:
                form = {k: v[-1] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
            try:
                return JSONResponse(self.issue_token(form), headers={"Cache-Control": "no-store"})
            except ClassyError as err:
                return JSONResponse(err.body, status_code=err.status, headers=err.headers)

        def transactions(organization: int, request: Request) -> JSONResponse:
            headers: dict[str, str] = {}
            try:
                client = self._client_for(request)
                headers = self._take(client)
                return JSONResponse(self._transactions_page(request, organization), headers=headers)
            except ClassyError as err:
                return JSONResponse(err.body, status_code=err.status, headers={**headers, **err.headers})

        for prefix in ("/2.0", "/api/2.0"):
            app.add_api_route(
                f"{prefix}/organizations/{{organization}}/transactions",
                transactions,
                methods=["GET"],
                name=f"transactions{prefix}",
            )


def _parse_filters(raw: str | None) -> list[tuple[str, str, str]]:
    """Split ``filter`` into (attribute, operand, value) clauses, or raise 400."""
    if not raw:
        return []
    clauses = []
    for part in raw.split(","):
        found = _FILTER.match(part.strip())
        if found is None:
            raise ClassyError(400, {"message": f"Invalid filter: {part}"})
        clauses.append((found.group(1), found.group(2), found.group(3)))
    return clauses


def _sorted(
    records: list[dict[str, Any]], sort_param: str | None, *, presorted_by_updated: bool
) -> list[dict[str, Any]]:
    """Order ``records`` by ``sort`` (``field:dir`` pairs, comma separated; default ``id:asc``)."""
    keys = [part.split(":", 1) for part in (sort_param or "id:asc").split(",") if part]
    if (
        presorted_by_updated
        and [k[0] for k in keys] == ["updated_at"]
        and (keys[0][1:] or ["asc"])[0] == "asc"
    ):
        return records
    out = list(records)
    for key in reversed(keys):
        field, direction = key[0], (key[1] if len(key) > 1 else "asc").lower()
        if direction not in ("asc", "desc"):
            raise ClassyError(400, {"message": f"Invalid sort direction: {direction}"})
        out.sort(key=_sort_key(field), reverse=direction == "desc")
    return out


def _sort_key(field: str) -> Callable[[dict[str, Any]], tuple[int, Any]]:
    """Return a sort key putting missing values first and comparing datetimes as datetimes."""

    def key(record: dict[str, Any]) -> tuple[int, Any]:
        value = _lookup(record, field)
        if value is None:
            return (0, 0)
        when = parse_datetime(value)
        if when is not None:
            return (1, when.timestamp())
        if isinstance(value, int | float):
            return (2, value)
        return (3, str(value))

    return key
