"""The HubSpot CRM emulator: private-app auth, request limits, and the CRM/association/preference routes.

Every response to the vendor API carries the ``X-HubSpot-RateLimit-*`` headers. A request beyond
``rate_limit_max`` in a rolling ``rate_limit_interval_ms`` window (per token) answers 429 with
``policyName: TEN_SECONDLY_ROLLING``; beyond ``daily_limit`` requests, 429 ``DAILY``. Tokens not
in ``access_tokens`` answer 401 ``INVALID_AUTHENTICATION`` (any token passes when the list is
empty); tokens in ``expired_tokens`` answer HubSpot's expired-token 401.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from sandbox.common.emulator import Emulator
from sandbox.emulators.hubspot.associations import AssociationStore
from sandbox.emulators.hubspot.errors import (
    HubSpotError,
    correlation_id,
    expired_auth_body,
    generic_body,
    invalid_auth_body,
    now_iso,
    rate_limit_body,
)
from sandbox.emulators.hubspot.limits import RateLimiter
from sandbox.emulators.hubspot.objects import ObjectStore, builtin_types
from sandbox.emulators.hubspot.subscriptions import SubscriptionStore

_DEFINITIONS: list[dict[str, Any]] = [
    {"id": "1001", "name": "Newsletter", "description": "Monthly newsletter"},
    {"id": "1002", "name": "Appeals", "description": "Fundraising appeals and campaigns"},
    {"id": "1003", "name": "Events", "description": "Event invitations"},
]


def _full_definition(raw: dict[str, Any]) -> dict[str, Any]:
    """Return a ``SubscriptionDefinition`` with every required field filled."""
    stamp = "2024-01-01T00:00:00.000Z"
    return {
        "id": str(raw["id"]),
        "name": raw["name"],
        "description": raw.get("description", raw["name"]),
        "purpose": raw.get("purpose", "Marketing"),
        "communicationMethod": raw.get("communicationMethod", "Email"),
        "isActive": raw.get("isActive", True),
        "isDefault": raw.get("isDefault", False),
        "isInternal": raw.get("isInternal", False),
        "businessUnitId": raw.get("businessUnitId", 0),
        "createdAt": raw.get("createdAt", stamp),
        "updatedAt": raw.get("updatedAt", stamp),
    }


class HubSpotEmulator(Emulator):
    """HubSpot CRM v3/v4: objects, batch, search, merge, GDPR delete, associations, subscriptions."""

    name: ClassVar[str] = "hubspot"
    default_settings: ClassVar[dict[str, Any]] = {
        "portal_id": 1234567,
        "access_tokens": ["pat-na1-sandbox"],
        "expired_tokens": ["pat-na1-expired"],
        "rate_limit_max": 100,
        "rate_limit_interval_ms": 10_000,
        "daily_limit": 250_000,
        "batch_max_inputs": 100,
        "batch_read_history_max_inputs": 50,
        "association_batch_read_max_inputs": 100,
        "list_max_limit": 100,
        "search_max_limit": 200,
        "search_result_cap": 10_000,
        "strict_properties": True,
        "unique_properties": {},
        "extra_properties": {},
        "gdpr_enabled": True,
        "subscription_definitions": _DEFINITIONS,
    }

    def reset_state(self) -> None:
        """Forget every record, association, status, blocklisted email and request count."""
        types = builtin_types(self.settings["unique_properties"], self.settings["extra_properties"])
        self.store = ObjectStore(types, strict_properties=bool(self.settings["strict_properties"]))
        self.associations = AssociationStore()
        definitions = [_full_definition(d) for d in self.settings["subscription_definitions"]]
        self.subscriptions = SubscriptionStore(definitions, gdpr_enabled=bool(self.settings["gdpr_enabled"]))
        self.limiter = RateLimiter()
        self.next_schema_id = 1

    def snapshot(self) -> dict[str, Any]:
        """Return records per type (first 500), counts, the GDPR blocklist, links and statuses."""
        objects: dict[str, Any] = {}
        for kind in self.store.types.values():
            live = [r for r in self.store.of(kind).values() if not r.archived]
            objects[kind.name] = {"count": len(live), "records": [r.written() for r in live[:500]]}
        links = sum(len(specs) for targets in self.associations.links.values() for specs in targets.values())
        return {
            "objects": objects,
            "gdpr_blocklist": sorted(self.store.blocklist),
            "association_links": links,
            "subscription_statuses": self.subscriptions.statuses,
            "daily_requests_used": self.limiter.daily_used,
        }

    def seed(self, kind: str, records: list[dict[str, Any]]) -> int:
        """Load records of an object type (property dicts, or objects with ``properties``)."""
        try:
            object_type = self.store.resolve(kind)
        except HubSpotError:
            return super().seed(kind, records)
        for record in records:
            props = record.get("properties", record)
            object_type.add_properties([{"name": n} for n in props if n not in object_type.properties])
            self.store.create(object_type, props)
        return len(records)

    def error_body(self, status: int, kind: str) -> tuple[bytes, str]:
        """Return HubSpot's error body for an injected fault."""
        if kind == "expired_token":
            body = expired_auth_body(datetime.now(UTC) - timedelta(minutes=5))
        elif status == 429:
            body = rate_limit_body("TEN_SECONDLY_ROLLING")
        elif status == 401:
            body = invalid_auth_body()
        else:
            body = generic_body(status)
        return json.dumps(body).encode(), "application/json;charset=utf-8"

    # -- request gate ------------------------------------------------------------------------------
    def _gate(self, request: Request) -> tuple[JSONResponse | None, dict[str, str]]:
        """Check the bearer token and count the request; return a refusal (or None) and headers."""
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else ""
        with self.lock:
            if token and token in self.settings["expired_tokens"]:
                expired = datetime.now(UTC) - timedelta(minutes=5)
                return JSONResponse(expired_auth_body(expired), status_code=401), {}
            allowed = self.settings["access_tokens"]
            if not token or (allowed and token not in allowed):
                return JSONResponse(invalid_auth_body(), status_code=401), {}
            verdict = self.limiter.check(
                token,
                max_per_interval=int(self.settings["rate_limit_max"]),
                interval_ms=int(self.settings["rate_limit_interval_ms"]),
                daily_limit=int(self.settings["daily_limit"]),
            )
        if verdict.policy:
            return JSONResponse(rate_limit_body(verdict.policy), status_code=429), verdict.headers
        return None, verdict.headers

    def routes(self, app: FastAPI) -> None:
        """Register the gate, the error handler and every HubSpot route."""
        from sandbox.emulators.hubspot.routes_associations import association_routes
        from sandbox.emulators.hubspot.routes_crm import crm_routes
        from sandbox.emulators.hubspot.routes_preferences import preference_routes

        @app.middleware("http")
        async def gate(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
            if request.url.path.startswith("/__admin"):
                return await call_next(request)
            refusal, headers = self._gate(request)
            response = refusal or await call_next(request)
            response.headers.update(headers)
            response.headers["X-HubSpot-Correlation-Id"] = correlation_id()
            return response

        @app.exception_handler(HubSpotError)
        async def hubspot_error(request: Request, exc: HubSpotError) -> JSONResponse:
            return JSONResponse(exc.body(), status_code=exc.status)

        @app.exception_handler(StarletteHTTPException)
        async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
            if request.url.path.startswith("/__admin"):
                return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
            return JSONResponse(generic_body(exc.status_code), status_code=exc.status_code)

        @app.exception_handler(RequestValidationError)
        async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
            names = [".".join(str(p) for p in error["loc"][1:]) for error in exc.errors()]
            error = HubSpotError(
                400, f"Invalid input: {', '.join(names)}", context={"invalidPropertyName": names}
            )
            return JSONResponse(error.body(), status_code=400)

        crm_routes(self, app)
        association_routes(self, app)
        preference_routes(self, app)


async def read_json(request: Request) -> Any:
    """Return the request's JSON body or raise HubSpot's 400 for invalid JSON."""
    raw = await request.body()
    try:
        return json.loads(raw or b"null")
    except ValueError as exc:
        raise HubSpotError(400, f"Invalid input JSON on line 1, column 1: {exc}") from exc


def batch_inputs(body: Any, cap: int) -> list[Any]:
    """Return ``body["inputs"]``; 400 when missing or longer than ``cap``."""
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
        raise HubSpotError(
            400, "Invalid input JSON: inputs must be an array", context={"inputs": ["missing"]}
        )
    inputs: list[Any] = body["inputs"]
    if len(inputs) > cap:
        raise HubSpotError(
            400,
            f"The maximum number of inputs supported in a batch request is {cap}; got {len(inputs)}.",
            context={"inputs": [str(len(inputs))]},
        )
    return inputs


def run_batch(
    inputs: list[Any],
    apply: Callable[[Any], list[Any]],
    ok_status: int,
    error_id: Callable[[Any], str | None] = lambda _item: None,
) -> JSONResponse:
    """Apply each input; an input whose ``apply`` raises becomes a per-input error (207)."""
    started, results, errors = now_iso(), [], []
    for item in inputs:
        try:
            results.extend(apply(item))
        except HubSpotError as exc:
            errors.append(exc.standard(error_id(item)))
    return batch_response(results, errors, started, ok_status)


def batch_response(
    results: list[Any], errors: list[dict[str, Any]], started: str, ok_status: int
) -> JSONResponse:
    """Return a batch body: ``ok_status`` when every input succeeded, else 207 with ``numErrors``."""
    body: dict[str, Any] = {
        "status": "COMPLETE",
        "results": results,
        "startedAt": started,
        "completedAt": now_iso(),
    }
    if errors:
        body["numErrors"] = len(errors)
        body["errors"] = errors
        return JSONResponse(body, status_code=207)
    return JSONResponse(body, status_code=ok_status)
