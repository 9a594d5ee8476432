"""The preference centre as a FastAPI app: ``GET`` and ``POST /preferences/{token}``.

* ``GET`` returns the form (text and version) and the donor's current choice for every purpose
  and channel the settings offer: statuses only, no PII (not even a name).
* ``POST`` takes ``{"choices": [{"purpose", "channel", "status": "opt_in" | "opt_out"}]}``,
  records each choice that differs from the current state as a consent event (source
  ``preference_centre``, evidence: the form text and version), and returns the new choices.

The token is a signed link (:mod:`donor_sync.privacy.consent.links`): a malformed, tampered or
unknown-key token is refused with 403, an expired one with 410, and so is a link to an erased
donor (410); a merged donor's link opens the survivor's choices. Bodies over the settings'
``max_body_bytes`` are refused with 413 before they are read. Every read and change writes an
audit row (``preferences.viewed`` / ``preferences.changed``, donor id and counts). Error bodies are
``{"error": code, "message": ...}`` and never quote the token.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from donor_sync.db import connect
from donor_sync.observability import audit
from donor_sync.privacy.consent.links import LinkRefused, verify_link
from donor_sync.privacy.consent.vocabulary import Channel, Purpose
from donor_sync.privacy.keys import KeySource, default_key_source
from donor_sync.web.preferences.choices import choices_of, find_donor, record_choices
from donor_sync.web.preferences.config import PreferenceCentreSettings
from donor_sync.web.webhooks.request_checks import Rejected, check_content_length, read_capped

__all__ = ["ConnInfo", "create_app"]

log = logging.getLogger(__name__)

ConnInfo = str | Callable[[], str]
ACTOR = "preference_centre"


class _Choice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    purpose: Purpose
    channel: Channel
    status: Literal["opt_in", "opt_out"]


class _Change(BaseModel):
    model_config = ConfigDict(extra="forbid")

    choices: list[_Choice] = Field(min_length=1, max_length=40)


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status)


class _Refusal(Exception):  # noqa: N818 - an outcome
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(code)
        self.status, self.code, self.message = status, code, message


def create_app(  # noqa: PLR0915 - the routes share the closures
    settings: PreferenceCentreSettings,
    *,
    conninfo: ConnInfo,
    keys: KeySource | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> FastAPI:
    """Build the preference centre.

    :param conninfo: the staging database (a string, or a function called per request).
    :param keys: where the ``links`` key ring comes from (default: :func:`default_key_source`).
    :param clock: now (tests move it to expire links).
    """
    app = FastAPI(title="donor-sync preference centre", openapi_url=None, docs_url=None, redoc_url=None)
    source = keys or default_key_source()

    def claims_of(token: str, now: datetime) -> str:
        ring = source.ring("links")
        if ring is None:
            raise _Refusal(503, "keys_unavailable", "the preference centre is not configured")
        try:
            return verify_link(ring, token, now=now).donor_id
        except LinkRefused as refused:
            if refused.reason == "expired":
                raise _Refusal(410, "link_expired", "this link has expired; ask for a new one") from None
            raise _Refusal(403, "link_invalid", "this link is not valid") from None

    def open_donor(conn: Any, donor_id: str) -> str:
        found = find_donor(conn, donor_id)
        if found.status != "live" or found.donor_id is None:
            raise _Refusal(410, "donor_gone", "there are no choices held for this link")
        return found.donor_id

    def database() -> Any:
        return connect(conninfo() if callable(conninfo) else conninfo, application_name="donor-sync-prefs")

    def read(token: str) -> dict[str, Any]:
        now = clock()
        linked = claims_of(token, now)
        with database() as conn:
            donor_id = open_donor(conn, linked)
            choices = choices_of(conn, donor_id, settings)
            audit.record(
                conn,
                actor=ACTOR,
                action="preferences.viewed",
                object_type="donor",
                object_id=donor_id,
                details={"linked_donor_id": linked, "choices": len(choices)},
            )
            conn.commit()
        return {"form_version": settings.form_version, "form_text": settings.form_text, "choices": choices}

    def change(token: str, body: bytes, url: str) -> dict[str, Any]:
        now = clock()
        linked = claims_of(token, now)
        try:
            parsed = _Change.model_validate_json(body)
        except ValidationError as exc:
            fields = sorted({".".join(str(p) for p in e["loc"]) for e in exc.errors()})
            raise _Refusal(422, "invalid_choices", f"invalid fields: {', '.join(fields)}") from None
        offered = settings.offered()
        unknown = [
            f"{c.purpose}/{c.channel}" for c in parsed.choices if (c.purpose, c.channel) not in offered
        ]
        if unknown:
            raise _Refusal(422, "not_offered", f"not offered here: {', '.join(sorted(set(unknown)))}")
        requested = list({(c.purpose, c.channel): c.status for c in parsed.choices}.items())
        with database() as conn:
            donor_id = open_donor(conn, linked)
            result = record_choices(
                conn,
                donor_id,
                [(p, c, s) for (p, c), s in requested],
                settings,
                now=now,
                actor=ACTOR,
                url=url,
            )
            audit.record(
                conn,
                actor=ACTOR,
                action="preferences.changed",
                object_type="donor",
                object_id=donor_id,
                details={"linked_donor_id": linked, "events": list(result.event_ids)},
            )
            choices = choices_of(conn, donor_id, settings)
            conn.commit()
        log.info("preference centre: donor %s recorded %d consent events", donor_id, result.recorded)
        return {
            "form_version": settings.form_version,
            "recorded": result.recorded,
            "choices": choices,
        }

    @app.get("/preferences/{token}")
    async def get_preferences(token: str) -> JSONResponse:
        try:
            return JSONResponse(await run_in_threadpool(read, token), headers={"Cache-Control": "no-store"})
        except _Refusal as refusal:
            return _error(refusal.status, refusal.code, refusal.message)

    @app.post("/preferences/{token}")
    async def post_preferences(token: str, request: Request) -> JSONResponse:
        try:
            check_content_length(request.headers.get("content-length"), settings.max_body_bytes)
            body = await read_capped(request.stream(), settings.max_body_bytes)
            url = str(request.url).rsplit("/", 1)[0] + "/{token}"  # never store the token
            result = await run_in_threadpool(change, token, body, url)
        except Rejected as refused:
            return _error(refused.status, refused.code, refused.message)
        except _Refusal as refusal:
            return _error(refusal.status, refusal.code, refusal.message)
        return JSONResponse(result, headers={"Cache-Control": "no-store"})

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.error("preference centre failed: %s", type(exc).__name__)
        return _error(500, "internal_error", "something went wrong; nothing was changed")

    return app
