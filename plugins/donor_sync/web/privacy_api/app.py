"""The privacy-request API: record a donor's erasure, export or consent-change request, read its state.

Protected by Airflow's own auth exactly as the dashboard is (:mod:`donor_sync.web.dashboard.auth`):
the token is checked with the API server's auth manager, and authorization is asked on the
``privacy_requests`` DAG -- read (GET) to see a request, edit (PUT) to create one. Creating needs the
token in the ``Authorization: Bearer`` header: a request carried by the UI's cookie alone is
refused, so no other site can make a signed-in browser file requests (no CSRF surface).

Answers hold ids, kinds, states, deadlines and receipts, never the donor's data; the identifier in a
``POST`` body is normalized, hashed with the ``tombstone`` key ring and discarded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from donor_sync.errors import DonorSyncError
from donor_sync.privacy.keys import KeySource
from donor_sync.web.dashboard.auth import (
    AuthenticationFailed,
    Authenticator,
    AuthUnavailable,
    Identity,
    Permission,
    TokenSource,
    credential_from,
)

log = logging.getLogger(__name__)

#: The DAG whose permissions govern the API.
PRIVACY_DAG_ID = "privacy_requests"


class NewRequest(BaseModel):
    """``POST /requests`` body: a kind and exactly one way to name the donor."""

    kind: Literal["erasure", "export", "consent_change"]
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=40)
    donor_id: str | None = None
    source_id: str | None = Field(default=None, max_length=200)
    details: dict[str, Any] = Field(default_factory=dict)

    def __repr__(self) -> str:  # never show identifiers
        return f"NewRequest(kind={self.kind!r})"


class _Refused(Exception):  # noqa: N818 - an answer
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def create_app(  # noqa: PLR0915 - the routes and their helpers share the settings
    *, conninfo: str | Callable[[], str], auth: Authenticator, keys: KeySource
) -> FastAPI:
    """Return the API app.

    :param conninfo: the staging database's conninfo, or a function returning it per request.
    :param auth: checks tokens and permissions (Airflow's, with ``dag_id='privacy_requests'``).
    :param keys: where the ``tombstone`` key ring comes from.
    """
    app = FastAPI(title="donor-sync privacy requests", docs_url=None, redoc_url=None)

    @app.exception_handler(_Refused)
    async def refused(_: Request, exc: _Refused) -> JSONResponse:
        return JSONResponse({"error": exc.code, "message": exc.message}, status_code=exc.status)

    async def principal(request: Request, permission: Permission) -> Identity:
        credential = credential_from(request.headers, request.cookies)
        try:
            if credential is None:
                raise AuthenticationFailed("missing")
            identity = await auth.authenticate(credential.token)
            allowed = await run_in_threadpool(auth.is_authorized, identity, permission)
        except AuthenticationFailed as exc:
            raise _Refused(
                401, f"token_{exc.reason}", "Send an Airflow token (Authorization: Bearer)."
            ) from None
        except AuthUnavailable:
            raise _Refused(
                503, "auth_unavailable", "Tokens cannot be checked now; try again shortly."
            ) from None
        if not allowed:
            raise _Refused(
                403, "forbidden", f"Your Airflow role may not do this on the {PRIVACY_DAG_ID} DAG."
            )
        if permission is Permission.DECIDE and credential.source is not TokenSource.HEADER:
            raise _Refused(403, "header_token_required", "Creating requests needs the Authorization header.")
        return identity

    def connect_db() -> Any:
        from donor_sync.db import connect

        try:
            return connect(
                conninfo() if callable(conninfo) else conninfo, application_name="donor-sync-privacy-api"
            )
        except Exception as exc:
            log.error("privacy api: staging database unavailable (%s)", type(exc).__name__)
            raise _Refused(
                503, "database_unavailable", "The staging database cannot be reached now."
            ) from None

    def _create(body: NewRequest, actor: str) -> dict[str, Any]:
        from donor_sync.privacy.requests.identifiers import normalize
        from donor_sync.privacy.requests.store import create_request

        given = {k: getattr(body, k) for k in ("email", "phone", "donor_id", "source_id") if getattr(body, k)}
        if len(given) != 1:
            raise _Refused(
                422, "one_identifier", "Name the donor by exactly one of email, phone, donor_id, source_id."
            )
        try:
            identifiers = [normalize(kind, value) for kind, value in given.items()]
            ring = keys.ring("tombstone")
            if ring is None:
                raise _Refused(503, "keys_unavailable", "The privacy key ring is not configured.")
            with connect_db() as conn:
                view = create_request(
                    conn,
                    kind=body.kind,
                    identifiers=identifiers,
                    ring=ring,
                    channel="api",
                    requested_by=actor,
                    details=body.details,
                )
                conn.commit()
        except DonorSyncError as exc:
            raise _Refused(422, "invalid_request", str(exc)) from None
        return view.as_json()

    def _show(request_id: str) -> dict[str, Any]:
        from donor_sync.privacy.requests.store import RequestNotFoundError, get_request

        with connect_db() as conn:
            try:
                return get_request(conn, request_id).as_json()
            except RequestNotFoundError:
                raise _Refused(404, "not_found", "No privacy request has that id.") from None

    @app.post("/requests", status_code=201)
    async def create(request: Request, body: NewRequest) -> dict[str, Any]:
        identity = await principal(request, Permission.DECIDE)
        return await run_in_threadpool(_create, body, f"api:{identity.user_id}")

    @app.get("/requests/{request_id}")
    async def show(request: Request, request_id: str) -> dict[str, Any]:
        await principal(request, Permission.READ)
        return await run_in_threadpool(_show, request_id)

    return app
