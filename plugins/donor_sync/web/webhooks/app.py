"""The webhook receiver as a FastAPI app: ``POST /stripe``, ``/donorbox``, ``/classy`` and ``/{source}``.

Each request goes through the same steps, cheapest and most telling first, and is refused at the
first that fails; nothing is written for a refused request:

1. the endpoint is configured (404), the caller's address is allowed (403);
2. the declared size is within the limit (413), the content type is accepted (415);
3. the body is read, stopping at the limit whatever was declared (413);
4. the signature verifies on the exact bytes received (401, or 400 for a malformed header);
5. the body is a JSON object with an event id (400); values jsonb cannot hold (NUL, lone
   surrogates, numbers beyond Postgres's range) are made storable, never refused
   (:mod:`donor_sync.web.webhooks.inbox`);
6. the event is committed to ``raw.webhook_inbox`` (200 ``stored`` or ``duplicate``), or the
   database is unavailable (503 with ``Retry-After``: the platform retries).

Error bodies are ``{"error": code, "message": ...}`` and never quote the body or a secret. Logs carry
the source, event id, outcome and caller address only.

The app does not authenticate callers otherwise: mounted in Airflow's API server it is not behind
Airflow's login, which is right for webhooks (the signature is the authentication).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from donor_sync.web.webhooks.config import EndpointSettings, WebhookSettings
from donor_sync.web.webhooks.inbox import (
    InboxEvent,
    InboxUnavailable,
    parse_body,
    stored_headers,
    write_event,
)
from donor_sync.web.webhooks.request_checks import (
    IpAddress,
    Rejected,
    check_allowed,
    check_content_length,
    check_content_type,
    client_address,
    read_capped,
)
from donor_sync.web.webhooks.secret_sources import SecretSource, SecretUnavailable
from donor_sync.web.webhooks.signatures import (
    HMAC_SIGNATURE_HEADER,
    HMAC_TIMESTAMP_HEADER,
    STRIPE_HEADER,
    SignatureRejected,
    verify_hmac_sha256,
    verify_stripe_v1,
)

__all__ = ["ConnInfo", "create_app"]

log = logging.getLogger(__name__)

#: The staging database's libpq conninfo, or a function returning it (looked up per request, e.g.
#: from an Airflow connection, so a changed connection is used without a restart).
ConnInfo = str | Callable[[], str]

#: Platforms with their own route (any other configured source is served by ``/{source}``).
NAMED_ROUTES = ("stripe", "donorbox", "classy")
_RETRY_AFTER_S = "30"


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)


def _verify(endpoint: EndpointSettings, secrets: SecretSource, raw: bytes, headers: Any, now: float) -> None:
    """Verify the request's signature under the endpoint's scheme (secrets are looked up here)."""
    if endpoint.scheme == "none":
        return
    found = secrets.secrets(endpoint.secret_name)
    if endpoint.scheme == "stripe_v1":
        verify_stripe_v1(raw, headers.get(STRIPE_HEADER), found, tolerance_s=endpoint.tolerance_s, now=now)
    else:
        verify_hmac_sha256(
            raw,
            headers.get(HMAC_TIMESTAMP_HEADER),
            headers.get(HMAC_SIGNATURE_HEADER),
            found,
            tolerance_s=endpoint.tolerance_s,
            now=now,
        )


def create_app(
    settings: WebhookSettings,
    secrets: SecretSource,
    *,
    conninfo: ConnInfo,
    clock: Callable[[], float] = time.time,
) -> FastAPI:
    """Build the receiver for ``settings``' endpoints.

    :param secrets: where each endpoint's signing secrets are looked up, at request time.
    :param conninfo: the staging database (a string, or a function called per request).
    :param clock: unix time now (tests move it to check the tolerance).
    """
    app = FastAPI(title="donor-sync webhooks", openapi_url=None, docs_url=None, redoc_url=None)

    def store(event: InboxEvent) -> tuple[bool, int]:
        try:
            target = conninfo() if callable(conninfo) else conninfo
        except Exception as exc:  # the connection lookup itself failed (Airflow's DB, a backend)
            raise InboxUnavailable(type(exc).__name__) from exc
        return write_event(target, event)

    async def receive(source: str, request: Request) -> JSONResponse:
        endpoint = settings.endpoint(source)
        if endpoint is None:
            return _error(404, "unknown_source", "no webhook endpoint is configured for this source")
        address: IpAddress | None = None
        try:
            address = client_address(
                request.client.host if request.client else None,
                request.headers.getlist("x-forwarded-for"),
                settings.trusted_proxies,
            )
            check_allowed(address, endpoint.allow_ips)
            check_content_length(request.headers.get("content-length"), endpoint.max_body_bytes)
            media_type = check_content_type(request.headers.get("content-type"), endpoint.content_types)
            raw = await read_capped(request.stream(), endpoint.max_body_bytes)
            # Secret lookups may block (an Airflow connection is read from its database).
            await run_in_threadpool(_verify, endpoint, secrets, raw, request.headers, clock())
            parsed = parse_body(raw, endpoint)
            event = InboxEvent.build(
                endpoint,
                raw=raw,
                parsed=parsed,
                headers=stored_headers(
                    (k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw
                ),
                content_type=media_type,
                remote_addr=address,
            )
            is_new, inbox_id = await run_in_threadpool(store, event)
        except (Rejected, SignatureRejected) as refused:
            log.warning("webhook %s refused %s %s from %s", source, refused.status, refused.code, address)
            retry = {"Retry-After": _RETRY_AFTER_S} if refused.status == 503 else None
            return _error(refused.status, refused.code, refused.message, retry)
        except SecretUnavailable as exc:
            log.error("webhook %s: signing secret unavailable (%s)", source, type(exc).__name__)
            return _error(
                503,
                "secret_unavailable",
                "the signing secret cannot be read now; retry later",
                {"Retry-After": _RETRY_AFTER_S},
            )
        except InboxUnavailable as exc:
            log.error("webhook %s: staging database unavailable (%s)", source, exc)
            return _error(
                503,
                "database_unavailable",
                "the event was not stored; retry later",
                {"Retry-After": _RETRY_AFTER_S},
            )
        except ClientDisconnect:
            log.warning("webhook %s: caller %s disconnected before the body was read", source, address)
            return _error(400, "client_disconnected", "the request body did not arrive")
        outcome = "stored" if is_new else "duplicate"
        log.info("webhook %s event %s: %s (inbox id %s)", source, event.event_id, outcome, inbox_id)
        return JSONResponse({"status": outcome})

    def named_route(name: str) -> Callable[[Request], Any]:
        async def named(request: Request) -> JSONResponse:
            return await receive(name, request)

        return named

    for name in NAMED_ROUTES:
        app.add_api_route(f"/{name}", named_route(name), methods=["POST"], name=f"receive_{name}")
    app.add_api_route("/{source}", receive, methods=["POST"], name="receive")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed"}
        return _error(exc.status_code, codes.get(exc.status_code, f"http_{exc.status_code}"), str(exc.detail))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.error("webhook receiver failed: %s", type(exc).__name__)
        return _error(500, "internal_error", "the receiver failed; the event was not stored")

    return app
