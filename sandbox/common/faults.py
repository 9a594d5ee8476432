"""Fault injection per endpoint, as an outermost ASGI middleware.

A fault rule matches requests by method and path regex and fires with a probability (seeded, so
a test is repeatable) or for the next ``count`` matching requests. Kinds:

- ``status``: answer ``status`` (e.g. 500, 503, 429) with the vendor's own error body;
- ``timeout``: hold the request for ``delay_s`` (longer than the client's timeout), then answer 504;
- ``slow``: wait ``delay_s``, then serve normally;
- ``reset``: drop the TCP connection with a RST before any response;
- ``malformed``: answer 200 with a truncated JSON body;
- ``expired_token``: answer the vendor's "session expired" 401.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import socket
import struct
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

FaultKind = Literal["status", "timeout", "slow", "reset", "malformed", "expired_token"]


class FaultRule(BaseModel):
    """One fault to inject (the admin API's request body)."""

    model_config = ConfigDict(extra="forbid")

    kind: FaultKind
    path: str = Field(default=".*", description="regex matched against the request path")
    method: str | None = Field(default=None, description="HTTP method; any when empty")
    rate: float = Field(default=1.0, ge=0.0, le=1.0, description="probability per matching request")
    count: int | None = Field(default=None, ge=1, description="fire at most this many times")
    status: int = Field(default=503, ge=400, le=599)
    delay_s: float = Field(default=0.0, ge=0.0, le=120.0)
    headers: dict[str, str] = Field(default_factory=dict)


@dataclass
class _ActiveRule:
    rule: FaultRule
    pattern: re.Pattern[str]
    fired: int = 0


@dataclass
class FaultInjector:
    """The active fault rules of one emulator; thread-safe."""

    seed: int = 0
    _rules: list[_ActiveRule] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _random: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        self._random.seed(self.seed)

    def set(self, rules: list[FaultRule], seed: int | None = None) -> None:
        """Replace the rules (and optionally reseed)."""
        with self._lock:
            self._rules = [_ActiveRule(r, re.compile(r.path)) for r in rules]
            if seed is not None:
                self._random.seed(seed)

    def clear(self) -> None:
        """Remove every rule."""
        self.set([])

    def describe(self) -> list[dict[str, Any]]:
        """Return the rules and how often each fired."""
        with self._lock:
            return [{**a.rule.model_dump(), "fired": a.fired} for a in self._rules]

    def pick(self, method: str, path: str) -> FaultRule | None:
        """Return the rule to apply to this request, if any fires."""
        with self._lock:
            for active in self._rules:
                rule = active.rule
                if rule.method and rule.method.upper() != method.upper():
                    continue
                if not active.pattern.search(path):
                    continue
                if rule.count is not None and active.fired >= rule.count:
                    continue
                if rule.rate < 1.0 and self._random.random() >= rule.rate:
                    continue
                active.fired += 1
                return rule
        return None


ErrorResponder = Callable[[int, str], tuple[bytes, str]]


async def _respond(send: Send, status: int, body: bytes, content_type: str, headers: dict[str, str]) -> None:
    raw_headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    raw_headers += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


def abort_connection(send: Send) -> bool:
    """Reset the client's TCP connection (uvicorn exposes the transport on its ``send``)."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:
        return False
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    return True


class FaultMiddleware:
    """ASGI middleware applying a :class:`FaultInjector`'s rules (admin paths are never faulted).

    :param error_body: builds the vendor-shaped body for an error:
        ``(status, kind) -> (body, content type)``.
    """

    def __init__(self, app: ASGIApp, injector: FaultInjector, error_body: ErrorResponder) -> None:
        self.app = app
        self.injector = injector
        self.error_body = error_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/__admin"):
            await self.app(scope, receive, send)
            return
        rule = self.injector.pick(scope["method"], scope["path"])
        if rule is None:
            await self.app(scope, receive, send)
            return
        if rule.kind == "slow":
            await asyncio.sleep(rule.delay_s)
            await self.app(scope, receive, send)
        elif rule.kind == "timeout":
            await asyncio.sleep(rule.delay_s or 30.0)
            body, ctype = self.error_body(504, "timeout")
            await _respond(send, 504, body, ctype, rule.headers)
        elif rule.kind == "reset":
            abort = scope.get("sandbox.abort") or (lambda: abort_connection(send))
            if not abort():
                body, ctype = self.error_body(502, "reset")
                await _respond(send, 502, body, ctype, rule.headers)
        elif rule.kind == "malformed":
            await _respond(send, 200, b'{"data": [{"id": "trunc', "application/json", rule.headers)
        elif rule.kind == "expired_token":
            body, ctype = self.error_body(401, "expired_token")
            await _respond(send, 401, body, ctype, rule.headers)
        else:
            body, ctype = self.error_body(rule.status, "status")
            await _respond(send, rule.status, body, ctype, rule.headers)
