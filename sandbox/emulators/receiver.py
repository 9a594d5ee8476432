"""A generic receiver for donor-sync's outbound webhooks: records every delivery it gets.

Any ``POST /hooks/{name}`` is recorded with its headers and body and answered 200 ``{"received": true}``
(or whatever status ``respond_status`` sets for that hook, to test retries).
"""

from __future__ import annotations

import base64
import time
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from sandbox.common.emulator import Emulator


class ReceiverEmulator(Emulator):
    """Records outbound webhook deliveries."""

    name: ClassVar[str] = "receiver"
    default_settings: ClassVar[dict[str, Any]] = {"respond_status": {}}

    def reset_state(self) -> None:
        """Forget deliveries."""
        self.deliveries: list[dict[str, Any]] = []

    def snapshot(self) -> dict[str, Any]:
        """Return every delivery, body as text when it is UTF-8 and base64 otherwise."""
        return {"deliveries": list(self.deliveries)}

    def routes(self, app: FastAPI) -> None:
        """Register the catch-all hook endpoint."""

        @app.post("/hooks/{name}")
        async def receive(name: str, request: Request) -> JSONResponse:
            raw = await request.body()
            try:
                body: dict[str, str] = {"text": raw.decode("utf-8")}
            except UnicodeDecodeError:
                body = {"base64": base64.b64encode(raw).decode()}
            with self.lock:
                self.deliveries.append(
                    {
                        "hook": name,
                        "headers": {k.lower(): v for k, v in request.headers.items()},
                        **body,
                        "received_at": time.time(),
                    }
                )
                status = int(self.settings["respond_status"].get(name, 200))
            return JSONResponse({"received": status < 300}, status_code=status)
