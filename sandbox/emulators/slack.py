"""Slack incoming webhooks: ``POST /services/T…/B…/…``, plain-text ``ok`` and plain-text errors.

One message per second per webhook (a short burst of ``burst`` is tolerated); beyond that,
429 with ``Retry-After``. Webhook URLs registered as revoked answer 404 ``no_service``.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse

from sandbox.common.emulator import Emulator

_WEBHOOK_PATH = "/services/{team}/{bot}/{secret}"


class SlackEmulator(Emulator):
    """Slack incoming webhooks."""

    name: ClassVar[str] = "slack"
    default_settings: ClassVar[dict[str, Any]] = {
        "messages_per_second": 1.0,
        "burst": 3,
        "revoked_webhooks": [],
    }

    def reset_state(self) -> None:
        """Forget received messages and rate-limit buckets."""
        self.messages: list[dict[str, Any]] = []
        self._buckets: dict[str, tuple[float, float]] = {}

    def snapshot(self) -> dict[str, Any]:
        """Return the messages received, in order."""
        return {"messages": list(self.messages)}

    def error_body(self, status: int, kind: str) -> tuple[bytes, str]:
        """Slack answers errors in plain text."""
        text = {429: "rate_limited", 401: "invalid_token", 403: "invalid_token", 404: "no_service"}.get(
            status, "rollup_error"
        )
        return text.encode(), "text/plain; charset=utf-8"

    def _take_token(self, webhook: str) -> float:
        """Token bucket per webhook; return 0 when allowed, else seconds until a token is free."""
        rate = float(self.settings["messages_per_second"])
        burst = float(self.settings["burst"])
        now = time.monotonic()
        tokens, last = self._buckets.get(webhook, (burst, now))
        tokens = min(burst, tokens + (now - last) * rate)
        if tokens >= 1:
            self._buckets[webhook] = (tokens - 1, now)
            return 0.0
        self._buckets[webhook] = (tokens, now)
        return (1 - tokens) / rate

    def routes(self, app: FastAPI) -> None:
        """Register the webhook endpoint."""

        @app.post(_WEBHOOK_PATH)
        async def webhook(team: str, bot: str, secret: str, request: Request) -> PlainTextResponse:
            path = f"/services/{team}/{bot}/{secret}"
            raw = await request.body()
            with self.lock:
                if path in self.settings["revoked_webhooks"]:
                    return PlainTextResponse("no_service", status_code=404)
                wait = self._take_token(path)
                if wait:
                    return PlainTextResponse(
                        "rate_limited", status_code=429, headers={"Retry-After": str(math.ceil(wait))}
                    )
                try:
                    payload = json.loads(raw)
                except ValueError:
                    return PlainTextResponse("invalid_payload", status_code=400)
                if not isinstance(payload, dict):
                    return PlainTextResponse("invalid_payload", status_code=400)
                if not payload.get("text") and not payload.get("blocks") and not payload.get("attachments"):
                    return PlainTextResponse("no_text", status_code=400)
                self.messages.append({"webhook": path, "payload": payload, "received_at": time.time()})
            return PlainTextResponse("ok")
