"""The Salesforce (NPSP) emulator: OAuth, REST, Collections, Bulk API 2.0, SOQL, limits, NPSP.

Beyond the vendor's API it has NPSP's recurring-donation automation (setting
``npsp_installments``, on by default: see :mod:`.npsp`), a recycle bin seen by ``queryAll``, and
``POST /__admin/merge/{SObject}`` ``{"master_id", "merged_ids", "fields"?}``: a staff merge (see
:mod:`.merge`).

Every call under ``/services/data/vXX.X/`` needs ``Authorization: Bearer <token>`` from
``/services/oauth2/token`` (401 ``INVALID_SESSION_ID`` otherwise), counts against the daily API
allocation (403 ``REQUEST_LIMIT_EXCEEDED`` once spent; no 429, no Retry-After) and answers with
``Sforce-Limit-Info: api-usage=used/max``.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from fastapi import Body, FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse

from sandbox.common.emulator import Emulator
from sandbox.emulators.salesforce import auth, dml, ingest, merge, npsp, rest
from sandbox.emulators.salesforce.bulk import Job
from sandbox.emulators.salesforce.objects import SOBJECTS, SfError, find_sobject
from sandbox.emulators.salesforce.rest import sf_error
from sandbox.emulators.salesforce.store import Change, Store

_VERSIONED = re.compile(r"^/services/data/v(\d+\.\d)(/.*)?$")
_INVALID_SESSION = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
_ERROR_CODES = {
    400: ("Bad request", "INVALID_REQUEST"),
    401: ("Session expired or invalid", "INVALID_SESSION_ID"),
    403: ("TotalRequests Limit exceeded.", "REQUEST_LIMIT_EXCEEDED"),
    404: ("The requested resource does not exist", "NOT_FOUND"),
    500: (
        "An unexpected error occurred. Please include this ErrorId if you contact support",
        "UNKNOWN_EXCEPTION",
    ),
    502: ("Bad gateway", "SERVER_UNAVAILABLE"),
    503: ("Server is temporarily unavailable", "SERVER_UNAVAILABLE"),
    504: ("Request timed out", "REQUEST_RUNNING_TOO_LONG"),
}


class SalesforceEmulator(Emulator):
    """Salesforce core REST + Bulk API 2.0 with the NPSP objects."""

    name: ClassVar[str] = "salesforce"
    default_settings: ClassVar[dict[str, Any]] = {
        "client_id": "donor-sync-consumer-key",
        "client_secret": "donor-sync-consumer-secret",
        "users": ["integration@donor-sync.test"],
        "jwt_public_key": "",
        "jwt_audiences": ["https://login.salesforce.com", "https://test.salesforce.com"],
        "refresh_tokens": [],
        "token_ttl_s": 7200.0,
        "min_api_version": 31.0,
        "max_api_version": 62.0,
        "daily_api_requests": 100_000,
        "api_window_s": 86_400.0,
        "collections_max_records": 200,
        "query_batch_size": 2000,
        "unable_to_lock_rate": 0.0,
        "unable_to_lock_keys": [],
        "lock_seed": 0,
        "bulk_queued_s": 0.0,
        "bulk_processing_s": 0.0,
        "bulk_max_upload_bytes": 150 * 1024 * 1024,
        "daily_bulk_batches": 15_000,
        "snapshot_max_records": 1000,
        "npsp_installments": True,
    }

    # -- state ---------------------------------------------------------------------------------
    def reset_state(self) -> None:
        """Forget records, sessions, jobs, cursors and usage."""
        self.store = Store(after_write=self._automation)
        self.sessions: dict[str, auth.Session] = {}
        self.api_calls: deque[float] = deque()
        self.bulk_batches: deque[tuple[float, int]] = deque()
        self.jobs: dict[str, Job] = {}
        self.cursors: dict[str, list[dict[str, Any]]] = {}
        self.counter = 0
        self.lock_rng = random.Random(int(self.settings["lock_seed"]))  # noqa: S311 - simulated faults

    def snapshot(self) -> dict[str, Any]:
        """Return record counts, records (up to ``snapshot_max_records`` each), jobs and API usage."""
        cap = int(self.settings["snapshot_max_records"])
        return {
            "counts": {name: len(table) for name, table in self.store.tables.items()},
            "recycle_bin": {name: len(table) for name, table in self.store.recycle_bin.items()},
            "records": {name: list(table.values())[:cap] for name, table in self.store.tables.items()},
            "jobs": [job.info(detail=True) for job in self.jobs.values()],
            "api_usage": self.api_usage(),
            "sessions": len(self.sessions),
        }

    def seed(self, kind: str, records: list[dict[str, Any]]) -> int:
        """Insert ``records`` of sObject ``kind`` (e.g. ``Contact``) as they are, without lock faults."""
        obj = find_sobject(kind)
        if obj is None:
            raise HTTPException(status_code=404, detail=f"no sObject {kind!r}; known: {sorted(SOBJECTS)}")
        for record in records:
            try:
                dml.insert(self.store, obj, record)
            except SfError as exc:
                raise HTTPException(status_code=400, detail=exc.as_rest()) from exc
        return len(records)

    def error_body(self, status: int, kind: str) -> tuple[bytes, str]:
        """Return Salesforce's JSON-array error (INVALID_SESSION_ID for an expired token)."""
        if kind == "expired_token":
            return json.dumps(_INVALID_SESSION).encode(), "application/json;charset=UTF-8"
        message, code = _ERROR_CODES.get(status, ("Unexpected error", "UNKNOWN_EXCEPTION"))
        return json.dumps(
            [{"message": message, "errorCode": code}]
        ).encode(), "application/json;charset=UTF-8"

    def _automation(self, store: Store, change: Change) -> None:
        """Run the org's automation after a write: NPSP installments unless turned off."""
        if self.settings["npsp_installments"]:
            npsp.after_write(store, change)

    def merge(
        self, kind: str, master_id: str, merged_ids: list[str], fields: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Merge records of sObject ``kind`` as staff do in the UI; return what moved."""
        obj = find_sobject(kind)
        if obj is None:
            raise HTTPException(status_code=404, detail=f"no sObject {kind!r}; known: {sorted(SOBJECTS)}")
        with self.lock:
            try:
                return merge.merge(
                    self.store, obj, master_id, merged_ids, now=dt.datetime.now(dt.UTC), fields=fields
                )
            except SfError as exc:
                raise HTTPException(status_code=400, detail=exc.as_rest()) from exc

    # -- helpers for the route modules ---------------------------------------------------------
    def next_number(self) -> int:
        """Return a fresh number for job and cursor ids."""
        self.counter += 1
        return self.counter

    def lock_policy(self) -> dml.LockPolicy:
        """Return the UNABLE_TO_LOCK_ROW policy from the settings."""
        keys = [str(k) for k in self.settings["unable_to_lock_keys"]]
        return dml.LockPolicy(float(self.settings["unable_to_lock_rate"]), keys, self.lock_rng)

    def api_usage(self) -> int:
        """Return the API calls made in the current rolling window."""
        horizon = time.time() - float(self.settings["api_window_s"])
        while self.api_calls and self.api_calls[0] < horizon:
            self.api_calls.popleft()
        return len(self.api_calls)

    def bulk_batches_used(self) -> int:
        """Return the Bulk API batches used in the current rolling window."""
        horizon = time.time() - float(self.settings["api_window_s"])
        while self.bulk_batches and self.bulk_batches[0][0] < horizon:
            self.bulk_batches.popleft()
        return sum(n for _, n in self.bulk_batches)

    def limit_info(self) -> str:
        """Return the ``Sforce-Limit-Info`` header value."""
        return f"api-usage={self.api_usage()}/{int(self.settings['daily_api_requests'])}"

    def _session_valid(self, header: str | None) -> bool:
        if not header:
            return False
        scheme, _, token = header.partition(" ")
        session = self.sessions.get(token.strip()) if scheme.lower() in ("bearer", "oauth") else None
        if session is None:
            return False
        if session.expires_at < time.time():
            del self.sessions[session.token]
            return False
        return True

    def _gate(self, request: Request) -> Response | None:
        """Check version, session and allocation for a versioned call; count it."""
        match = _VERSIONED.match(request.url.path)
        if match is None:
            return None
        version = float(match.group(1))
        if not self.settings["min_api_version"] <= version <= self.settings["max_api_version"]:
            return sf_error(404, "NOT_FOUND", "The requested resource does not exist")
        with self.lock:
            if not self._session_valid(request.headers.get("authorization")):
                return JSONResponse(_INVALID_SESSION, status_code=401)
            if self.api_usage() >= int(self.settings["daily_api_requests"]):
                return sf_error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
            self.api_calls.append(time.time())
        return None

    # -- routes --------------------------------------------------------------------------------
    def routes(self, app: FastAPI) -> None:
        """Register OAuth, versions, REST and Bulk API 2.0 endpoints."""

        @app.middleware("http")
        async def gate(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
            response = self._gate(request) or await call_next(request)
            if request.url.path.startswith("/services/data"):
                with self.lock:
                    response.headers["Sforce-Limit-Info"] = self.limit_info()
            return response

        @app.post("/services/oauth2/token")
        async def token(request: Request) -> JSONResponse:
            form = {k: str(v) for k, v in (await request.form()).items()}
            basic = auth.basic_auth(request.headers.get("authorization"))
            with self.lock:
                try:
                    username = auth.authenticate(form, basic, self.settings, self.base_url)
                except auth.OAuthError as exc:
                    return JSONResponse(exc.body(), status_code=400)
                session, body = auth.issue(username, self.settings, self.base_url)
                self.sessions[session.token] = session
            return JSONResponse(body)

        @app.get("/services/data")
        @app.get("/services/data/")
        def versions() -> list[dict[str, str]]:
            low, high = int(self.settings["min_api_version"]), int(self.settings["max_api_version"])
            return [
                {"label": f"v{v}.0", "url": f"/services/data/v{v}.0", "version": f"{v}.0"}
                for v in range(low, high + 1)
            ]

        @app.post("/__admin/merge/{kind}")
        def merge_records(kind: str, body: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
            master_id, merged_ids = body.get("master_id"), body.get("merged_ids")
            if not isinstance(master_id, str) or not isinstance(merged_ids, list):
                raise HTTPException(status_code=400, detail="body needs master_id and a merged_ids list")
            fields = body.get("fields")
            if fields is not None and not isinstance(fields, dict):
                raise HTTPException(status_code=400, detail="fields must be an object")
            return self.merge(kind, master_id, [str(i) for i in merged_ids], fields)

        rest.register(self, app)
        ingest.register(self, app)
