"""The sync-health dashboard as a FastAPI app (mounted by ``plugins/donor_sync_dashboard_plugin.py``).

Routes, relative to where the app is mounted (``/sync-health`` in Airflow):

=========================================  ===================================================
``GET  /``                                 overview: charts, last successful runs, open
                                           circuits, review queue, dead letters
``GET  /circuits``                         open and half-open circuit breakers
``GET  /dead-letters``                     dead letters (read-only) with the commands to act
``GET  /reviews``                          the dedup review queue (ids and scores)
``GET  /reviews/{id}``                     both donors of a pair (PII: decide permission, audited)
``POST /reviews/{id}/decision``            approve, reject or defer from the page's form
``POST /api/reviews/{id}/decision``        the same as JSON, for scripts
``GET  /api/summary``                      counts and open circuits as JSON
``GET  /api/health``                       health for external monitors (200 ok/degraded, 503 down)
=========================================  ===================================================

Every route needs a valid Airflow login (:mod:`.auth`); ``/api/health`` also takes the monitor
token, which opens nothing else. Without one the answer is 401: JSON
under ``/api``, a page elsewhere, and for a browser a redirect to Airflow's login page. Answers
never quote a token or a donor value, and every response carries the headers of
:func:`~donor_sync.web.dashboard.pages.security_headers`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from donor_sync.web.dashboard import health_routes, review_routes
from donor_sync.web.dashboard.auth import Authenticator, AuthUnavailable, CsrfTokens
from donor_sync.web.dashboard.deps import ConnInfo, DashboardState, Refused
from donor_sync.web.dashboard.pages import Pages

if TYPE_CHECKING:
    from donor_sync.resolve.donors import ResolveRules
    from donor_sync.web.dashboard.health_settings import HealthSettings
    from donor_sync.web.webhooks.secret_sources import SecretSource

__all__ = ["create_app"]

log = logging.getLogger(__name__)


def _route_path(request: Request) -> str:
    """Return the request's path inside this app (without the prefix it is mounted at)."""
    path: str = request.scope["path"]
    root: str = request.scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def _is_api(request: Request) -> bool:
    return _route_path(request).startswith("/api/")


def _wants_page(request: Request) -> bool:
    """Return whether a browser asked for a page (a GET preferring HTML outside ``/api``)."""
    return (
        request.method == "GET" and not _is_api(request) and "text/html" in request.headers.get("accept", "")
    )


def create_app(
    *,
    conninfo: ConnInfo,
    auth: Authenticator,
    csrf: CsrfTokens,
    rules: Callable[[], ResolveRules] | None = None,
    airflow_base_path: str = "/",
    health: Callable[[], HealthSettings] | None = None,
    monitor_tokens: SecretSource | None = None,
) -> FastAPI:
    """Build the dashboard.

    Nothing is opened here. The database is reached per request, and Airflow only when a token
    is checked.

    :param conninfo: the staging database (a libpq string, or a function called per request).
    :param auth: checks tokens and permissions (:class:`~.auth.AirflowAuthenticator` in Airflow).
    :param csrf: issues and checks the forms' CSRF tokens.
    :param rules: returns the resolve rules a merge applies (default: the shipped ones, read once).
    :param airflow_base_path: the Airflow UI's base path, for links to DAG pages.
    :param health: returns the health endpoint's thresholds (default: the shipped ones, read once).
    :param monitor_tokens: where the monitor tokens are looked up (by the name
        ``sync_health_monitor``); None: ``/api/health`` takes Airflow tokens only.
    """
    app = FastAPI(title="donor-sync sync health", openapi_url=None, docs_url=None, redoc_url=None)
    pages = Pages(airflow_base_path=airflow_base_path)
    app.state.dashboard = DashboardState(
        conninfo=conninfo,
        auth=auth,
        csrf=csrf,
        rules=rules or review_routes.shipped_rules,
        pages=pages,
        health=health or health_routes.shipped_health_settings,
        monitor=monitor_tokens,
    )
    app.include_router(health_routes.router)
    app.include_router(review_routes.router)

    @app.middleware("http")
    async def headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        for name, value in pages.headers.items():
            response.headers.setdefault(name, value)
        return response

    def refuse(request: Request, status: int, code: str, message: str) -> Response:
        extra = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
        if _is_api(request):
            return JSONResponse({"error": code, "message": message}, status_code=status, headers=extra)
        login = None
        if status == 401:
            # Back to this page after signing in; a refused form post goes back to the overview.
            here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            login = auth.login_url(here if request.method == "GET" else request.url_for("overview").path)
            if login and _wants_page(request):
                return RedirectResponse(login, status_code=303)
        return pages.render(
            request,
            "error.html",
            status_code=status,
            headers=extra,
            status=status,
            code=code,
            message=message,
            login_url=login,
        )

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> Response:
        return refuse(request, exc.status, exc.code, exc.message)

    @app.exception_handler(AuthUnavailable)
    async def unavailable(request: Request, exc: AuthUnavailable) -> Response:
        log.error(
            "dashboard: %s %s: sign-in checks unavailable (%s)", request.method, _route_path(request), exc
        )
        return refuse(request, 503, "auth_unavailable", "Sign-in cannot be checked now; try again shortly.")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        fields = sorted({".".join(str(p) for p in e.get("loc", ())[1:]) for e in exc.errors()})
        return refuse(request, 400, "bad_request", f"Invalid or missing: {', '.join(fields) or 'request'}.")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        codes = {404: "not_found", 405: "method_not_allowed"}
        return refuse(
            request, exc.status_code, codes.get(exc.status_code, f"http_{exc.status_code}"), str(exc.detail)
        )

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> Response:
        log.error("dashboard: %s %s failed: %s", request.method, _route_path(request), type(exc).__name__)
        return refuse(
            request, 500, "internal_error", "The dashboard failed; the error is in the API server's log."
        )

    return app
