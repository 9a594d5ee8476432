"""The base of every emulator: state, settings, the admin API and fault injection around its routes.

Admin API (same on every emulator, never faulted, not part of the vendor's API):

- ``GET /__admin/state`` — the emulator's state summary (``snapshot()``);
- ``POST /__admin/reset`` — back to the start: settings, state, faults, request log;
- ``GET /__admin/settings``, ``PATCH /__admin/settings`` — limits and batch caps;
- ``GET|PUT|DELETE /__admin/faults`` — fault rules (see :mod:`sandbox.common.faults`);
- ``GET /__admin/requests`` — the last requests served (method, path, status);
- ``POST /__admin/seed/{kind}`` — load records (a JSON array) into the emulator, e.g. sample data.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections import deque
from collections.abc import Mapping, MutableMapping
from typing import Any, ClassVar

from fastapi import APIRouter, Body, FastAPI, HTTPException

from sandbox.common.faults import (
    ASGIApp,
    FaultInjector,
    FaultMiddleware,
    FaultRule,
    Receive,
    Scope,
    Send,
    abort_connection,
)


class Emulator:
    """One vendor API. Subclasses set ``name`` and ``default_settings`` and implement the hooks below.

    State lives in memory and is guarded by ``self.lock`` (uvicorn runs sync endpoints in threads).
    """

    name: ClassVar[str] = "emulator"
    default_settings: ClassVar[dict[str, Any]] = {}

    def __init__(self, settings: Mapping[str, Any] | None = None, *, seed: int = 0) -> None:
        unknown = set(settings or {}) - set(self.default_settings)
        if unknown:
            raise ValueError(f"{self.name}: unknown settings {sorted(unknown)}")
        self._initial_settings = copy.deepcopy({**self.default_settings, **(settings or {})})
        self.settings: dict[str, Any] = copy.deepcopy(self._initial_settings)
        self.faults = FaultInjector(seed=seed)
        self.lock = threading.RLock()
        self.request_log: deque[dict[str, Any]] = deque(maxlen=2000)
        self.base_url = ""
        self.reset_state()

    # -- hooks for subclasses ----------------------------------------------------------------
    def reset_state(self) -> None:
        """Forget all vendor state."""

    def snapshot(self) -> dict[str, Any]:
        """Return a JSON-serialisable summary of the state, for tests and people."""
        return {}

    def seed(self, kind: str, records: list[dict[str, Any]]) -> int:
        """Load ``records`` of ``kind``; return how many were loaded."""
        raise HTTPException(status_code=404, detail=f"{self.name} takes no seed data of kind {kind!r}")

    def error_body(self, status: int, kind: str) -> tuple[bytes, str]:
        """Return the vendor-shaped body and content type for an injected error."""
        return json.dumps({"error": {"status": status, "kind": kind}}).encode(), "application/json"

    def routes(self, app: FastAPI) -> None:
        """Register the vendor's endpoints on ``app``."""

    # -- wiring ----------------------------------------------------------------------------------
    def reset(self) -> None:
        """Reset settings (to those the emulator started with), state, faults and the request log."""
        with self.lock:
            self.settings.clear()
            self.settings.update(copy.deepcopy(self._initial_settings))
            self.reset_state()
            self.faults.clear()
            self.request_log.clear()

    def _admin_router(self) -> APIRouter:
        router = APIRouter()

        @router.get("/state")
        def state() -> dict[str, Any]:
            with self.lock:
                return {"name": self.name, **self.snapshot()}

        @router.post("/reset")
        def reset() -> dict[str, str]:
            self.reset()
            return {"status": "reset"}

        @router.get("/settings")
        def get_settings() -> dict[str, Any]:
            return self.settings

        @router.patch("/settings")
        def patch_settings(changes: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
            unknown = set(changes) - set(self.default_settings)
            if unknown:
                raise HTTPException(status_code=400, detail=f"unknown settings {sorted(unknown)}")
            with self.lock:
                self.settings.update(changes)
            return self.settings

        @router.get("/faults")
        def get_faults() -> list[dict[str, Any]]:
            return self.faults.describe()

        @router.put("/faults")
        def put_faults(rules: list[FaultRule], seed: int | None = None) -> list[dict[str, Any]]:
            self.faults.set(rules, seed=seed)
            return self.faults.describe()

        @router.delete("/faults")
        def delete_faults() -> dict[str, str]:
            self.faults.clear()
            return {"status": "cleared"}

        @router.get("/requests")
        def requests_log(limit: int = 200) -> list[dict[str, Any]]:
            return list(self.request_log)[-limit:]

        @router.post("/seed/{kind}")
        def seed(kind: str, records: list[dict[str, Any]] = Body(...)) -> dict[str, int]:  # noqa: B008
            with self.lock:
                return {"loaded": self.seed(kind, records)}

        return router

    def build_app(self) -> ASGIApp:
        """Return the ASGI app: request log, then faults, then admin API and vendor routes."""
        app = FastAPI(title=f"{self.name} emulator", openapi_url=None, docs_url=None, redoc_url=None)
        app.include_router(self._admin_router(), prefix="/__admin")
        self.routes(app)
        faulted = FaultMiddleware(app, self.faults, self.error_body)
        log = self.request_log

        async def logged(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await faulted(scope, receive, send)
                return
            entry: dict[str, Any] = {"method": scope["method"], "path": scope["path"], "at": time.time()}
            logged_entry = not scope["path"].startswith("/__admin")

            async def recording_send(message: MutableMapping[str, Any]) -> None:
                nonlocal logged_entry
                if message["type"] == "http.response.start" and logged_entry:
                    # Log before the response leaves, so a client that reads the log right after
                    # its call always finds the call there.
                    entry["status"] = message["status"]
                    log.append(entry)
                    logged_entry = False
                await send(message)

            # Faults that reset the connection need the server's transport, which only the
            # server's own `send` exposes: capture it before wrapping.
            scope["sandbox.abort"] = lambda: abort_connection(send)
            try:
                await faulted(scope, receive, recording_send)
            finally:
                if logged_entry:  # no response was sent: the connection was dropped
                    entry["status"] = None
                    log.append(entry)

        return logged
