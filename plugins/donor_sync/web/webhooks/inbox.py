"""The row a verified webhook becomes in ``raw.webhook_inbox``, and writing it durably.

The receiver answers 2xx only after :func:`write_event` has committed, so a platform that gets
a 2xx can forget the event; when the database cannot be reached the receiver answers 503 and the
platform retries. A second delivery of the same event id (a retry, a replay, a duplicate the
platform sends on its own) is a no-op on ``(source, event_id)``.

A verified, well-formed event is not refused for what jsonb cannot hold (the platform would
retry it forever). It is stored with those values made storable, by the rules
:mod:`donor_sync.sources.raw_landing` applies to raw.records:

* the escapes jsonb refuses -- ``\\u0000`` (NUL) and a UTF-16 surrogate escape that is not half
  of a pair -- become ``\\ufffd`` (U+FFFD; standardization flags such a value as
  ``invalid_encoding``), and the event id and type are read from the body as stored;
* a number beyond Postgres's numeric range (``1e1000000``) becomes its JSON token in a string.

Only those characters and tokens change, ``body_sha256`` and ``body_bytes`` still describe the
exact bytes received, and the receiver logs how many were replaced (never the values).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
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
#: A JSON escape: ``\uXXXX`` (its hex digits captured), or a backslash and the character it escapes.
_ESCAPE = re.compile(r"\\(?:u([0-9a-fA-F]{4})|.)", re.DOTALL)
_REPLACEMENT_ESCAPE = "\\ufffd"
#: A JSON string (left alone) or a JSON number (captured).
_STRING_OR_NUMBER = re.compile(r'"(?:[^"\\]|\\.)*"|(-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)')
#: Postgres numeric: at most 131072 digits before the decimal point and 16383 after it.
_MAX_NUMERIC_INTEGER_DIGITS = 131_072
_MAX_NUMERIC_SCALE = 16_383


class InboxUnavailable(Exception):  # noqa: N818 - a state the receiver answers 503 for
    """The staging database cannot be reached or did not answer in time; the platform should retry."""


@dataclass(frozen=True)
class ParsedBody:
    """The parts of a verified body the inbox row needs."""

    text: str
    event_id: str
    event_type: str | None
    event_created_at: datetime | None
    #: Escapes jsonb cannot hold, stored as U+FFFD (see the module docstring).
    replaced: int = 0


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


def _is_surrogate(code: int) -> bool:
    return 0xD800 <= code <= 0xDFFF


def storable_escapes(text: str) -> tuple[str, int]:
    """Return the JSON ``text`` with each escape jsonb refuses written as ``\\ufffd``, and how many.

    jsonb refuses ``\\u0000`` and a surrogate escape that is not a high one directly followed by a
    low one. Nothing else changes. ``text`` must be valid JSON, in which every backslash opens an
    escape (``\\\\u0000`` is a backslash and the text ``u0000``, left alone).
    """
    if "\\u" not in text:
        return text, 0
    escapes = [(m.start(), m.end(), int(m.group(1), 16)) for m in _ESCAPE.finditer(text) if m.group(1)]
    parts: list[str] = []
    done = replaced = i = 0
    while i < len(escapes):
        start, end, code = escapes[i]
        if 0xD800 <= code <= 0xDBFF and i + 1 < len(escapes):
            next_start, _, next_code = escapes[i + 1]
            if next_start == end and 0xDC00 <= next_code <= 0xDFFF:
                i += 2  # a surrogate pair: one character jsonb holds
                continue
        if code == 0 or _is_surrogate(code):
            parts += [text[done:start], _REPLACEMENT_ESCAPE]
            done = end
            replaced += 1
        i += 1
    return "".join([*parts, text[done:]]), replaced


def _beyond_numeric(token: str) -> bool:
    number = Decimal(token)
    exponent = number.as_tuple().exponent
    assert isinstance(exponent, int)  # a JSON number is finite
    if -exponent > _MAX_NUMERIC_SCALE:
        return True
    return not number.is_zero() and number.adjusted() >= _MAX_NUMERIC_INTEGER_DIGITS


def storable_numbers(text: str) -> tuple[str, int]:
    """Return the JSON ``text`` with each number beyond Postgres's numeric range as a string, and how many."""
    replaced = 0

    def one(match: re.Match[str]) -> str:
        nonlocal replaced
        token = match.group(1)
        if token is None or not _beyond_numeric(token):
            return match.group(0)
        replaced += 1
        return f'"{token}"'

    return _STRING_OR_NUMBER.sub(one, text), replaced


def parse_body(raw: bytes, endpoint: EndpointSettings) -> ParsedBody:
    """Parse a verified body and find its event id, type and time at the endpoint's paths.

    The escapes jsonb cannot hold are replaced first (module docstring), so the id and type are
    those stored.

    :raises Rejected: 400 when the body is not a UTF-8 JSON object or has no usable event id.
    """
    try:
        text, replaced = storable_escapes(raw.decode("utf-8"))
        doc = json.loads(text, parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError):
        raise Rejected(400, "invalid_json", "the body is not UTF-8 JSON") from None
    except RecursionError:
        raise Rejected(400, "invalid_json", "the body is nested too deeply") from None
    if not isinstance(doc, dict):
        raise Rejected(400, "invalid_json", "the body is not a JSON object")
    event_id = lookup(doc, endpoint.event.id)
    if isinstance(event_id, bool) or not isinstance(event_id, str | int) or not str(event_id).strip():
        raise Rejected(400, "missing_event_id", f"no event id at '{endpoint.event.id}'")
    if len(str(event_id)) > _MAX_EVENT_ID:
        raise Rejected(400, "invalid_event_id", f"the event id is longer than {_MAX_EVENT_ID} characters")
    event_type = lookup(doc, endpoint.event.type) if endpoint.event.type else MISSING
    created = lookup(doc, endpoint.event.created) if endpoint.event.created else MISSING
    parsed = ParsedBody(
        text=text,
        event_id=str(event_id).strip(),
        event_type=event_type[:_MAX_EVENT_TYPE] if isinstance(event_type, str) else None,
        event_created_at=to_datetime(created) if created is not MISSING else None,
        replaced=replaced,
    )
    if replaced:
        log.warning(
            "webhook %s event %s: %d NUL or lone-surrogate escape(s) stored as U+FFFD",
            endpoint.source, parsed.event_id, replaced,
        )  # fmt: skip
    return parsed


def write_event(conninfo: str, event: InboxEvent) -> tuple[bool, int]:
    """Insert ``event`` unless its (source, event id) is already held, and commit.

    A body whose numbers jsonb refuses is stored with them as strings (module docstring).

    :return: (whether it was new, its inbox id).
    :raises InboxUnavailable: the database cannot be reached or timed out (answer 503).
    :raises Rejected: 400 when Postgres still refuses the body after that (not expected).
    """
    try:
        with psycopg.connect(
            conninfo, connect_timeout=_CONNECT_TIMEOUT_S, application_name="donor-sync-webhooks"
        ) as conn:
            try:
                return _insert(conn, event)
            except psycopg.DataError:
                conn.rollback()
            text, replaced = storable_numbers(event.body_text)
            if not replaced:
                raise Rejected(400, "invalid_json", "the database refused the JSON body")
            log.warning(
                "webhook %s event %s: %d number(s) beyond Postgres's numeric range stored as strings",
                event.source, event.event_id, replaced,
            )  # fmt: skip
            return _insert(conn, replace(event, body_text=text))
    except psycopg.DataError:
        raise Rejected(400, "invalid_json", "the database refused the JSON body") from None
    except psycopg.OperationalError as exc:  # refused, dropped, or timed out (QueryCanceled)
        raise InboxUnavailable(type(exc).__name__) from exc


def _insert(conn: psycopg.Connection, event: InboxEvent) -> tuple[bool, int]:
    """Insert the row (or find the one held for its event id) and commit."""
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
        conn.commit()
        return True, int(row[0])
    held = conn.execute(
        "SELECT webhook_event_id, body_sha256 FROM raw.webhook_inbox WHERE source = %s AND event_id = %s",
        (event.source, event.event_id),
    ).fetchone()
    conn.commit()
    assert held is not None
    if bytes(held[1]) != event.body_sha256:
        # Platforms resend an event with a changed envelope (Stripe's pending_webhooks counts
        # down between deliveries); the first copy is kept. Logged at info so a sender that
        # reuses ids for different events can still be traced.
        log.info("webhook %s event %s: duplicate id with a different body", event.source, event.event_id)
    return False, int(held[0])
