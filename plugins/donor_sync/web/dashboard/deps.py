"""What every dashboard route shares: its settings, the signed-in user, refusals, the database.

``signed_in`` authenticates the request and needs the read permission; every route depends on it.
``decider`` also needs the decide permission. For a state-changing request authenticated by the
cookie, it also needs a valid CSRF token, in the form field ``csrf_token`` or the header
``X-CSRF-Token``. Both raise :class:`Refused`, which the app turns into a JSON answer under
``/api`` and a page elsewhere. ``watcher`` guards the health endpoint alone: it also takes the
monitor token of the ``sync_health_monitor`` connection, which opens nothing else.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import psycopg
from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from donor_sync.web.dashboard.auth import (
    MONITOR_CONNECTION,
    AuthenticationFailed,
    Authenticator,
    AuthUnavailable,
    CsrfTokens,
    Identity,
    Permission,
    TokenSource,
    credential_from,
    monitor_token_matches,
)
from donor_sync.web.dashboard.pages import Pages
from donor_sync.web.webhooks.secret_sources import SecretSource, SecretUnavailable

if TYPE_CHECKING:
    from donor_sync.resolve.donors import ResolveRules
    from donor_sync.web.dashboard.health_settings import HealthSettings

__all__ = [
    "CSRF_FIELD",
    "CSRF_HEADER",
    "ConnInfo",
    "DashboardState",
    "Decider",
    "Monitor",
    "Principal",
    "Refused",
    "SignedIn",
    "Watcher",
    "decider",
    "signed_in",
    "staging",
    "watcher",
]

log = logging.getLogger(__name__)

#: The staging database's libpq conninfo, or a function returning it (called per request).
ConnInfo = str | Callable[[], str]
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Refused(Exception):  # noqa: N818 - an answer, not a bug
    """A request the dashboard answers with an error status (the message names no value or PII)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class DashboardState:
    """The app's settings, kept in ``app.state.dashboard``."""

    conninfo: ConnInfo
    auth: Authenticator
    csrf: CsrfTokens
    rules: Callable[[], ResolveRules]
    pages: Pages
    health: Callable[[], HealthSettings]
    #: where the monitor tokens are (``sync_health_monitor``); None: no monitor token is accepted
    monitor: SecretSource | None = None


@dataclass(frozen=True)
class Principal:
    """The signed-in user of a request, and how the request proved it."""

    identity: Identity
    source: TokenSource

    @property
    def actor(self) -> str:
        """Return who acts, as ``sync.audit_log.actor`` records it."""
        return f"airflow:{self.identity.user_id}"


def state(request: Request) -> DashboardState:
    """Return the app's settings."""
    settings: DashboardState = request.app.state.dashboard
    return settings


async def signed_in(request: Request) -> Principal:
    """Authenticate the request with its Airflow token and check it may read the dashboard."""
    settings = state(request)
    credential = credential_from(request.headers, request.cookies)
    try:
        if credential is None:
            raise AuthenticationFailed("missing")
        identity = await settings.auth.authenticate(credential.token)
        allowed = await run_in_threadpool(settings.auth.is_authorized, identity, Permission.READ)
    except AuthenticationFailed as exc:
        log.info("dashboard: %s %s refused: token %s", request.method, request.url.path, exc.reason)
        raise Refused(
            401, f"token_{exc.reason}", "Sign in to Airflow to use the sync-health dashboard."
        ) from None
    except AuthUnavailable as exc:
        log.error("dashboard: cannot check tokens now (%s)", exc)
        raise Refused(503, "auth_unavailable", "Sign-in cannot be checked now; try again shortly.") from None
    if not allowed:
        log.info("dashboard: user %s may not read it", identity.user_id)
        raise Refused(
            403,
            "forbidden",
            "Your Airflow role may not view the sync-health dashboard (it needs read access to the"
            " donors_nightly DAG).",
        )
    return Principal(identity, credential.source)


SignedIn = Annotated[Principal, Depends(signed_in)]


async def decider(request: Request, principal: SignedIn) -> Principal:
    """Check the user may decide reviews and see their donors, and that a cookie-borne change is no CSRF."""
    settings = state(request)
    allowed = await run_in_threadpool(settings.auth.is_authorized, principal.identity, Permission.DECIDE)
    if not allowed:
        log.info("dashboard: user %s may not decide reviews", principal.identity.user_id)
        raise Refused(
            403,
            "forbidden",
            "Deciding reviews and viewing donor records needs permission to edit the donors_nightly DAG.",
        )
    if request.method not in _SAFE_METHODS and principal.source is TokenSource.COOKIE:
        token = request.headers.get(CSRF_HEADER)
        if token is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")
        ):
            value = (await request.form()).get(CSRF_FIELD)
            token = value if isinstance(value, str) else None
        if not settings.csrf.verify(principal.identity.user_id, token):
            log.warning(
                "dashboard: %s %s refused: CSRF token missing or invalid", request.method, request.url.path
            )
            raise Refused(
                403,
                "csrf_failed",
                "This form has expired or did not come from the dashboard; reload the page.",
            )
    return principal


Decider = Annotated[Principal, Depends(decider)]


@dataclass(frozen=True)
class Monitor:
    """An external monitor that presented the monitor token (it may read the health endpoint only)."""

    connection: str = MONITOR_CONNECTION

    @property
    def actor(self) -> str:
        """Return who asked, for the log."""
        return f"monitor:{self.connection}"


async def watcher(request: Request) -> Principal | Monitor:
    """Let in a monitor with the monitor token (Bearer header only), else a signed-in reader.

    A monitor token is not an Airflow token: every other route refuses it with 401. When the
    monitor tokens cannot be looked up and the request has no valid Airflow token either, the
    answer is 503 (try again), never a pass.
    """
    settings = state(request)
    credential = credential_from(request.headers, request.cookies)
    lookup_failed = False
    if credential is not None and credential.source is TokenSource.HEADER and settings.monitor is not None:
        try:
            configured = await run_in_threadpool(settings.monitor.secrets, MONITOR_CONNECTION)
        except SecretUnavailable as exc:
            log.error("dashboard: cannot read the monitor token now (%s)", exc)
            lookup_failed = True
        else:
            if monitor_token_matches(credential.token, configured):
                return Monitor()
    try:
        return await signed_in(request)
    except Refused as exc:
        if lookup_failed and exc.status == 401:
            raise Refused(
                503, "auth_unavailable", "The monitor token cannot be checked now; try again shortly."
            ) from None
        raise


Watcher = Annotated[Principal | Monitor, Depends(watcher)]


@contextmanager
def staging(settings: DashboardState) -> Iterator[psycopg.Connection]:
    """Open the staging database for one request (503 when it cannot be reached)."""
    from donor_sync.db import connect

    try:
        target = settings.conninfo() if callable(settings.conninfo) else settings.conninfo
        conn = connect(target, application_name="donor-sync-dashboard")
    except Exception as exc:  # the lookup (an Airflow connection) or the server failed
        log.error("dashboard: staging database unavailable (%s)", type(exc).__name__)
        raise Refused(503, "database_unavailable", "The staging database cannot be reached now.") from None
    with conn:
        yield conn
