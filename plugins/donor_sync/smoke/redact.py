"""Keep secrets out of the smoke test's output, whatever a vendor or a library put in a message.

Reasons are composed from safe parts, but an exception's text is shown when nothing better is
known, and that text may quote a URL or a header. :class:`Redactor` replaces every secret it was
told about (connection passwords and secret-looking extras) and, whatever it was told, the
credentials of URLs (``user:password@``), their query strings, and Slack webhook paths.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["MASK", "Redactor", "mask_data", "secret_values"]

MASK = "***"
#: Shorter values are not masked: they would mangle ordinary words (and are no real secrets).
MIN_SECRET_LENGTH = 6
#: Extras whose names contain one of these hold secrets (``client_secret``, ``private_key``...).
SECRET_EXTRA_WORDS = ("secret", "password", "token", "private_key", "api_key", "apikey", "key_pem")

_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@]+(?::[^/\s@]*)?@")
_URL_QUERY = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s?#'\"]+)\?[^\s#'\"]+")
_SLACK_PATH = re.compile(r"/services/T[A-Za-z0-9]+/B[A-Za-z0-9]+/[A-Za-z0-9]+")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{6,}")


def secret_values(password: str | None, extra: Mapping[str, Any] | None) -> list[str]:
    """Return a connection's secrets: its password (each comma-separated part too) and secret extras."""
    found: list[str] = []
    if password:
        found.append(password)
        found += [part.strip() for part in password.replace("\n", ",").split(",")]
    for name, value in (extra or {}).items():
        if isinstance(value, str) and any(word in name.lower() for word in SECRET_EXTRA_WORDS):
            found.append(value)
    return [value for value in found if len(value) >= MIN_SECRET_LENGTH]


class Redactor:
    """Masks known secrets and credential-bearing URL parts in text (thread-safe)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._lock = threading.Lock()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Remember more secrets to mask (short values are ignored)."""
        with self._lock:
            self._secrets.update(s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH)

    def __call__(self, text: str) -> str:
        """Return ``text`` with every secret masked."""
        with self._lock:
            secrets = sorted(self._secrets, key=len, reverse=True)  # longest first: no partial leftovers
        for secret in secrets:
            text = text.replace(secret, MASK)
        text = _URL_CREDENTIALS.sub(rf"\1{MASK}@", text)
        text = _URL_QUERY.sub(rf"\1?{MASK}", text)
        text = _SLACK_PATH.sub(f"/services/{MASK}", text)
        return _BEARER.sub(rf"\1 {MASK}", text)


def mask_data(value: Any, mask: Callable[[str], str]) -> Any:
    """Return ``value`` (figures, lists, mappings) with every string in it passed through ``mask``."""
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, Mapping):
        return {str(k): mask_data(v, mask) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_data(v, mask) for v in value]
    return value
