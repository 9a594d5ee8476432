"""Communication-preferences routes: v3 subscribe/unsubscribe/status and v4 statuses."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from sandbox.emulators.hubspot.emulator import batch_inputs, batch_response, read_json, run_batch
from sandbox.emulators.hubspot.errors import HubSpotError, now_iso

if TYPE_CHECKING:
    from sandbox.emulators.hubspot.emulator import HubSpotEmulator


def _v3_routes(hs: HubSpotEmulator, app: FastAPI) -> None:
    """Register the v3 API (the one hubspot-api-client 12 wraps)."""

    @app.get("/communication-preferences/v3/definitions")
    async def definitions_v3() -> JSONResponse:
        with hs.lock:
            return JSONResponse({"subscriptionDefinitions": hs.subscriptions.definitions})

    @app.post("/communication-preferences/v3/subscribe")
    async def subscribe(request: Request) -> JSONResponse:
        body = await read_json(request) or {}
        with hs.lock:
            return JSONResponse(hs.subscriptions.v3_change(body, subscribe=True))

    @app.post("/communication-preferences/v3/unsubscribe")
    async def unsubscribe(request: Request) -> JSONResponse:
        body = await read_json(request) or {}
        with hs.lock:
            return JSONResponse(hs.subscriptions.v3_change(body, subscribe=False))

    @app.get("/communication-preferences/v3/status/email/{email}")
    async def status_v3(email: str) -> JSONResponse:
        with hs.lock:
            return JSONResponse(hs.subscriptions.v3_statuses(email))


def _write(hs: HubSpotEmulator, email: str, item: dict[str, Any]) -> dict[str, Any]:
    """Apply one v4 status input; return its status item."""
    if str(item.get("channel", "EMAIL")) != "EMAIL":
        raise HubSpotError(400, f"Unsupported channel {item.get('channel')!r}")
    definition = hs.subscriptions.definition(item.get("subscriptionId"))
    hs.subscriptions.set_status(
        email,
        definition["id"],
        str(item.get("statusState")),
        item.get("legalBasis"),
        item.get("legalBasisExplanation"),
    )
    return hs.subscriptions.v4_status(email, definition)


def _all_statuses(hs: HubSpotEmulator, email: str) -> list[dict[str, Any]]:
    return [hs.subscriptions.v4_status(email, d) for d in hs.subscriptions.definitions]


def _v4_routes(hs: HubSpotEmulator, app: FastAPI) -> None:
    """Register the v4 statuses API."""
    base = "/communication-preferences/v4"

    @app.get(base + "/definitions")
    async def definitions_v4() -> JSONResponse:
        with hs.lock:
            return JSONResponse({"results": hs.subscriptions.definitions})

    @app.post(base + "/statuses/batch/write")
    async def batch_write(request: Request) -> JSONResponse:
        body = await read_json(request)
        with hs.lock:

            def write(item: Any) -> list[Any]:
                return [_write(hs, str(item.get("subscriberIdString") or ""), item)]

            return run_batch(
                batch_inputs(body, int(hs.settings["batch_max_inputs"])),
                write,
                200,
                lambda item: str(item.get("subscriberIdString")),
            )

    @app.post(base + "/statuses/batch/read")
    async def batch_read(request: Request) -> JSONResponse:
        body = await read_json(request)
        with hs.lock:
            started = now_iso()
            emails = [str(e) for e in batch_inputs(body, int(hs.settings["batch_max_inputs"]))]
            return batch_response([s for e in emails for s in _all_statuses(hs, e)], [], started, 200)

    @app.post(base + "/statuses/batch/unsubscribe-all")
    async def batch_unsubscribe_all(request: Request) -> JSONResponse:
        body = await read_json(request)
        with hs.lock:
            started, emails = (
                now_iso(),
                [str(e) for e in batch_inputs(body, int(hs.settings["batch_max_inputs"]))],
            )
            for email in emails:
                hs.subscriptions.unsubscribe_all(email)
            return batch_response([s for e in emails for s in _all_statuses(hs, e)], [], started, 200)

    @app.get(base + "/statuses/{subscriber}")
    async def read_statuses(subscriber: str) -> JSONResponse:
        with hs.lock:
            return batch_response(_all_statuses(hs, subscriber), [], now_iso(), 200)

    @app.post(base + "/statuses/{subscriber}")
    async def write_status(subscriber: str, request: Request) -> JSONResponse:
        body = await read_json(request) or {}
        with hs.lock:
            return JSONResponse(_write(hs, subscriber, body))

    @app.post(base + "/statuses/{subscriber}/unsubscribe-all")
    async def unsubscribe_all(subscriber: str) -> JSONResponse:
        with hs.lock:
            hs.subscriptions.unsubscribe_all(subscriber)
            return batch_response(_all_statuses(hs, subscriber), [], now_iso(), 200)


def preference_routes(hs: HubSpotEmulator, app: FastAPI) -> None:
    """Register the v3 and v4 communication-preferences routes."""
    _v3_routes(hs, app)
    _v4_routes(hs, app)
