"""The safety net under donor-sync's logs: no email, phone number or known secret gets through.

Code logs ids, counts and classes, and a leak is fixed where it is logged
(``tests/observability/test_no_pii_in_logs.py`` looks for them). This filter catches what slips
past review: in each donor_sync record's formatted message and traceback,

* an email address becomes ``email#<tag>`` and a phone-like number ``phone#<tag>``, where the tag
  is the first 8 hex digits of an HMAC-SHA256 of the normalised value. The key is the current key
  of the ``pseudonym`` ring when ``$DONOR_SYNC_PRIVACY_KEYS`` holds the rings inline (reading
  them needs no I/O), so a tag is the same in every process and a person holding the key can
  check which address it was; otherwise a random key of this process, so tags still tell lines
  about one address apart from another but mean nothing outside the process. The ring is never
  fetched from a file or the Airflow connection here: a log call must not do I/O, nor log.
* a known secret becomes ``***``: values given to :func:`register_secret`, the passwords and
  sensitive extras of ``AIRFLOW_CONN_*`` connections, the password of ``$DONOR_SYNC_DB_URL`` and
  the keys in ``$DONOR_SYNC_PRIVACY_KEYS`` (the environment is read again at most once a
  second). In a task, Airflow's own masker also hides every connection's password in the task log.

Phone-like numbers are matched by shape, so a ten-digit id shaped like a North American number
is tagged too: a safety net errs on the side of hiding.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from donor_sync.errors import ConfigError
from donor_sync.privacy.keys import ENV_VAR as PRIVACY_KEYS_ENV
from donor_sync.privacy.keys import EnvKeys

EMAIL = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
#: International numbers (``+44 20 7946 0958``, ``+13053520903``) and North American ones
#: (``(907) 908-6398``, ``816-390-1164``, ``8163901164``), not inside a longer word or number.
PHONE = re.compile(
    r"(?<![\w+.-])(?:"
    r"\+[1-9]\d{0,2}(?:[ .-]?\(?\d{1,4}\)?){2,6}"
    r"|(?:1[ .-]?)?\(?[2-9]\d{2}\)?[ .-]?[2-9]\d{2}[ .-]?\d{4}"
    r")(?![\w-])"
)
MASK = "***"
#: Shorter values are not masked (they would blank ordinary words and numbers).
MIN_SECRET_LENGTH = 6
#: Connection extras whose name contains one of these hold secrets (Airflow masks the same names).
SENSITIVE_NAMES = ("password", "passwd", "secret", "token", "key", "private", "passphrase", "credential")
#: How often the environment's connections and keys are read again.
ENV_RECHECK_S = 1.0
#: Environment variables holding a database URL (its password is a secret).
DATABASE_URL_VARS = ("DONOR_SYNC_DB_URL", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")

_registered: set[str] = set()
_cache_lock = threading.Lock()
_cache: dict[str, Any] = {}
_PROCESS_KEY = secrets.token_bytes(32)
_TRACEBACK = logging.Formatter()


def register_secret(value: str | None) -> None:
    """Never let ``value`` reach a donor_sync log line (tokens obtained at run time, for example)."""
    if value and len(value) >= MIN_SECRET_LENGTH:
        _registered.add(value)


def redact_text(text: str, environ: Mapping[str, str] | None = None) -> str:
    """Return ``text`` with known secrets masked and emails and phone numbers replaced by tags.

    :param environ: where the connections and keys are read (default ``os.environ``, read at
        most once every :data:`ENV_RECHECK_S` seconds).
    """
    masks, key = _state(environ)
    for secret, encoded in masks:
        if secret in text:
            text = text.replace(secret, MASK)
        if encoded in text:
            text = text.replace(encoded, MASK)
    text = EMAIL.sub(lambda m: _tag("email", m.group(0).strip().lower(), key), text)
    return PHONE.sub(lambda m: _phone(m.group(0), key), text)


def _tag(kind: str, value: str, key: bytes) -> str:
    digest = hmac.new(key, f"log|{kind}|{value}".encode(), hashlib.sha256).hexdigest()
    return f"{kind}#{digest[:8]}"


def _phone(match: str, key: bytes) -> str:
    digits = re.sub(r"\D", "", match)
    if not 8 <= len(digits) <= 15:
        return match
    return _tag("phone", digits[-10:], key)


class RedactingFilter(logging.Filter):
    """Rewrite a record's message (and traceback) through :func:`redact_text`; never drops a record.

    When the traceback held something to hide, the cleaned traceback is folded into the message
    and the exception is taken off the record, so no handler renders the original.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Clean the record in place."""
        try:
            message = record.getMessage()
        except Exception:  # a bad format string is for the handler that writes it to report
            return True
        clean = redact_text(message)
        if record.exc_info and record.exc_info[1] is not None:
            trace = record.exc_text or _TRACEBACK.formatException(record.exc_info)
            clean_trace = redact_text(trace)
            if clean_trace != trace:
                record.msg, record.args = f"{clean}\n{clean_trace}", None
                record.exc_info, record.exc_text = None, None
                return True
        if clean != message:
            record.msg, record.args = clean, None
        return True


def _state(environ: Mapping[str, str] | None) -> tuple[tuple[tuple[str, str], ...], bytes]:
    """Return the secrets to mask (longest first, each with its URL-encoded form) and the tag key."""
    live = environ is None
    now = time.monotonic()
    with _cache_lock:
        if (
            live
            and _cache
            and now - _cache["at"] < ENV_RECHECK_S
            and _cache["registered"] == len(_registered)
        ):
            return _cache["masks"], _cache["key"]
    relevant = tuple(
        (name, value)
        for name, value in (os.environ if environ is None else environ).items()
        if name.startswith("AIRFLOW_CONN_") or name in DATABASE_URL_VARS or name == PRIVACY_KEYS_ENV
    )
    found = set(_registered)
    key = _PROCESS_KEY
    for name, value in relevant:
        if name == PRIVACY_KEYS_ENV:
            found.update(_privacy_key_values(value))
            key = _pseudonym_key(value) or key
        elif name in DATABASE_URL_VARS:
            found.update(_url_secrets(value))
        else:
            found.update(_connection_secrets(value))
    masks = tuple(
        (s, quote(s, safe="")) for s in sorted(found, key=len, reverse=True) if len(s) >= MIN_SECRET_LENGTH
    )
    if live:
        with _cache_lock:
            _cache.update(at=now, registered=len(_registered), masks=masks, key=key)
    return masks, key


def _sensitive(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in SENSITIVE_NAMES)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, str | int) and not isinstance(value, bool):
        yield str(value)


def _sensitive_values(extra: Any) -> Iterator[str]:
    if isinstance(extra, str):
        try:
            extra = json.loads(extra)
        except ValueError:
            return
    if isinstance(extra, Mapping):
        for name, value in extra.items():
            if _sensitive(str(name)):
                yield from _strings(value)
            elif isinstance(value, Mapping):
                yield from _sensitive_values(value)


def _connection_secrets(value: str) -> Iterable[str]:
    """The password and sensitive extras of an ``AIRFLOW_CONN_*`` value (JSON or URI)."""
    value = value.strip()
    if value.startswith("{"):
        try:
            document = json.loads(value)
        except ValueError:
            return []
        if not isinstance(document, Mapping):
            return []
        found = [str(document["password"])] if document.get("password") else []
        return [*found, *_sensitive_values(document.get("extra"))]
    found = list(_url_secrets(value))
    query = urlsplit(value).query
    found += [v for k, v in parse_qsl(query) if _sensitive(k)]
    return found


def _url_secrets(value: str) -> Iterable[str]:
    """The password of a URL (``scheme://user:password@host``) or libpq ``key=value`` string."""
    try:
        password = urlsplit(value.strip()).password
    except ValueError:
        password = None
    if password:
        return [unquote(password), password]
    found = re.search(r"(?:^|\s)password\s*=\s*'?([^'\s]+)", value)
    return [found.group(1)] if found else []


def _privacy_key_values(value: str) -> Iterable[str]:
    if value.strip().startswith("@"):
        return []  # a file: reading it is I/O, and its keys are not in this process's environment
    try:
        document = json.loads(value)
    except ValueError:
        return []
    rings = document.values() if isinstance(document, Mapping) else []
    return [
        str(key)
        for ring in rings
        if isinstance(ring, Mapping) and isinstance(ring.get("keys"), Mapping)
        for key in ring["keys"].values()
    ]


def _pseudonym_key(value: str) -> bytes | None:
    if not value.strip() or value.strip().startswith("@"):
        return None
    try:
        ring = EnvKeys({PRIVACY_KEYS_ENV: value}).ring("pseudonym")
    except ConfigError:
        return None
    return ring.current_key if ring is not None else None
