"""The row a verified webhook becomes in ``raw.webhook_inbox``, and writing it durably.

The receiver answers 2xx only after :func:`write_event` has committed, so a platform that gets
a 2xx can forget the event; when the database cannot be reached the receiver answers 503 and the
platform retries. A second delivery of the same event id (a retry, a replay, a duplicate the
platform sends on its own) is a no-op on ``(source, event_id)``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from donor_sync.web.webhooks.config import EndpointSettings, Scheme
from donor_sync.web.webhooks.jsonpath import MISSING, lookup, to_datetime
from donor_sync.web.webhooks.request_checks import CREDENTIAL_HEADERS, IpAddress, Rejected

__all__ = ["InboxEvent", "InboxUnavailable", "ParsedBody", "parse_body", "stored_headers", "write_event"]

log = logging.getLogger(__name__)

_CONNECT_TIMEOUT_S = 5
_STATEMENT_TIMEOUT = "10s"
_MAX_EVENT_ID = 255
_MAX_EVENT_TYPE = 200
#: Header names that look like credentials even when not in the fixed list (tokens, keys, sessions).
_SECRET_LOOKING = re.compile(r"token|secret|passw|api[-_]?key|session")


class InboxUnavailable(Exception):  # noqa: N818 - a state the receiver answers 503 for
    """The staging database cannot be reached or did not answer in time; the platform should retry."""


@dataclass(frozen=True)
class ParsedBody:
    """The parts of a verified body the inbox row needs."""

    text: str
    event_id: str
    event_type: str | None
    event_created_at: datetime | None


@dataclass(frozen=True)
class InboxEvent:
    """One verified delivery, ready to insert."""

    source: str
    event_id: str
    event_type: str | None
    event_created_at: datetime | None
    headers: dict[str, str]
    content_type: str
    body_text: str
    body_sha256: bytes
    body_bytes: int
    scheme: Scheme
    verified: bool
    remote_addr: IpAddress | None

    @classmethod
    def build(
        cls,
        endpoint: EndpointSettings,
        *,
        raw: bytes,
        parsed: ParsedBody,
        headers: dict[str, str],
        content_type: str,
        remote_addr: IpAddress | None,
    ) -> InboxEvent:
        """Assemble the row for ``raw`` (the exact bytes received) and its parsed parts."""
        return cls(
            source=endpoint.source,
            event_id=parsed.event_id,
            event_type=parsed.event_type,
            event_created_at=parsed.event_created_at,
            headers=headers,
            content_type=content_type,
            body_text=parsed.text,
            body_sha256=hashlib.sha256(raw).digest(),
            body_bytes=len(raw),
            scheme=endpoint.scheme,
            verified=endpoint.scheme != "none",
            remote_addr=remote_addr,
        )


def stored_headers(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Return request headers with lower-case names, repeated ones joined, credentials dropped."""
    kept: dict[str, str] = {}
    for name, value in items:
        key = name.lower()
        if key in CREDENTIAL_HEADERS or _SECRET_LOOKING.search(key):
            continue
        kept[key] = f"{kept[key]}, {value}" if key in kept else value
    return kept


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_body(raw: bytes, endpoint: EndpointSettings) -> ParsedBody:
    """Parse a verified body and find its event id, type and time at the endpoint's paths.

    :raises Rejected: 400 when the body is not a UTF-8 JSON object or has no usable event id.
    """
    try:
        text = raw.decode("utf-8")
        doc = json.loads(text, parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError):
        raise Rejected(400, "invalid_json", "the body is not UTF-8 JSON") from None
    if not isinstance(doc, dict):
        raise Rejected(400, "invalid_json", "the body is not a JSON object")
    event_id = lookup(doc, endpoint.event.id)
    if isinstance(event_id, bool) or not isinstance(event_id, str | int) or not str(event_id).strip():
        raise Rejected(400, "missing_event_id", f"no event id at '{endpoint.event.id}'")
    if len(str(event_id)) > _MAX_EVENT_ID:
        raise Rejected(400, "invalid_event_id", f"the event id is longer than {_MAX_EVENT_ID} characters")
    event_type = lookup(doc, endpoint.event.type) if endpoint.event.type else MISSING
    created = lookup(doc, endpoint.event.created) if endpoint.event.created else MISSING
    return ParsedBody(
        text=text,
        event_id=str(event_id).strip(),
        event_type=event_type[:_MAX_EVENT_TYPE] if isinstance(event_type, str) else None,
        event_created_at=to_datetime(created) if created is not MISSING else None,
    )


def write_event(conninfo: str, event: InboxEvent) -> tuple[bool, int]:
    """Insert ``event`` unless its (source, event id) is already held, and commit.

    :return: (whether it was new, its inbox id).
    :raises InboxUnavailable: the database cannot be reached or timed out (answer 503).
    :raises Rejected: 400 when Postgres refuses the JSON (``\\u0000``, lone surrogates).
    """
    try:
        with psycopg.connect(
            conninfo, connect_timeout=_CONNECT_TIMEOUT_S, application_name="donor-sync-webhooks"
        ) as conn:
            conn.execute(f"SET LOCAL statement_timeout = '{_STATEMENT_TIMEOUT}'")
            row = conn.execute(
                """
                INSERT INTO raw.webhook_inbox
                    (source, event_id, event_type, event_created_at, headers, content_type, body,
                     body_sha256, body_bytes, signature_scheme, signature_verified, remote_addr)
                VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s)
                ON CONFLICT (source, event_id) DO NOTHING
                RETURNING webhook_event_id
                """,
                (
                    event.source,
                    event.event_id,
                    event.event_type,
                    event.event_created_at,
                    Jsonb(event.headers),
                    event.content_type,
                    event.body_text,
                    event.body_sha256,
                    event.body_bytes,
                    event.scheme,
                    event.verified,
                    event.remote_addr,
                ),
            ).fetchone()
            if row is not None:
                return True, int(row[0])
            held = conn.execute(
                "SELECT webhook_event_id, body_sha256 FROM raw.webhook_inbox"
                " WHERE source = %s AND event_id = %s",
                (event.source, event.event_id),
            ).fetchone()
            assert held is not None
            if bytes(held[1]) != event.body_sha256:
                # Platforms resend an event with a changed envelope (Stripe's pending_webhooks counts
                # down between deliveries); the first copy is kept. Logged at info so a sender that
                # reuses ids for different events can still be traced.
                log.info(
                    "webhook %s event %s: duplicate id with a different body", event.source, event.event_id
                )
            return False, int(held[0])
    except psycopg.DataError:
        raise Rejected(400, "invalid_json", "the database refused the JSON body") from None
    except psycopg.OperationalError as exc:  # refused, dropped, or timed out (QueryCanceled)
        raise InboxUnavailable(type(exc).__name__) from exc
