"""Where webhook signing secrets come from, looked up by name at request time.

A secret name holds one or more secrets (newline- or comma-separated) so a secret can be rolled:
the platform signs with the new one while requests signed with the old one still verify, until
the old one is removed. In Airflow the names are connection ids (the plugin module supplies that
source); standalone they are environment variables or a secrets file; tests inject a mapping.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import yaml

__all__ = [
    "CachedSecrets",
    "ChainedSecrets",
    "EnvSecrets",
    "FileSecrets",
    "SecretSource",
    "SecretUnavailable",
    "StaticSecrets",
    "split_secrets",
]

log = logging.getLogger(__name__)


class SecretUnavailable(Exception):  # noqa: N818 - reads as a state, like KeyError
    """The secret could not be looked up (its store is down or refused); the request should be retried."""


@runtime_checkable
class SecretSource(Protocol):
    """Returns the secrets currently valid for a name (empty when the name is unknown)."""

    def secrets(self, name: str) -> tuple[str, ...]:
        """Return the secrets for ``name``; raise :class:`SecretUnavailable` when the store fails."""
        ...


def split_secrets(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """Split a stored value into its secrets: newlines or commas separate them, blanks are dropped."""
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else list(value)
    found: list[str] = []
    for item in items:
        for piece in str(item).replace(",", "\n").splitlines():
            if piece.strip() and piece.strip() not in found:
                found.append(piece.strip())
    return tuple(found)


class StaticSecrets:
    """Secrets given in code (tests, embedding)."""

    def __init__(self, secrets: Mapping[str, str | Sequence[str]]) -> None:
        self._secrets = {name: split_secrets(value) for name, value in secrets.items()}

    def secrets(self, name: str) -> tuple[str, ...]:
        """Return the secrets given for ``name``."""
        return self._secrets.get(name, ())

    def set(self, name: str, value: str | Sequence[str]) -> None:
        """Replace the secrets of ``name`` (a rotation)."""
        self._secrets[name] = split_secrets(value)


class EnvSecrets:
    """``$DONOR_SYNC_WEBHOOK_SECRET_<NAME>`` (name upper-cased), read at each lookup."""

    PREFIX = "DONOR_SYNC_WEBHOOK_SECRET_"

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = environ if environ is not None else os.environ

    def secrets(self, name: str) -> tuple[str, ...]:
        """Return the secrets in the variable for ``name``."""
        return split_secrets(self._environ.get(self.PREFIX + name.upper()))


class FileSecrets:
    """A YAML file ``{name: secret | [secrets]}`` readable by its owner only, re-read when it changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._loaded: tuple[float, dict[str, tuple[str, ...]]] | None = None
        self._lock = threading.Lock()

    def _read(self) -> dict[str, tuple[str, ...]]:
        try:
            info = self.path.stat()
        except OSError as exc:
            raise SecretUnavailable(f"cannot read the secrets file {self.path}: {exc.strerror}") from exc
        with self._lock:
            if self._loaded is not None and self._loaded[0] == info.st_mtime:
                return self._loaded[1]
            if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
                log.warning("secrets file %s is readable by others: chmod 600 it", self.path)
            try:
                raw = yaml.safe_load(self.path.read_text(encoding="utf-8")) or {}
            except (OSError, yaml.YAMLError) as exc:
                # The message of a YAML error may quote the file: never pass it on.
                raise SecretUnavailable(f"cannot parse the secrets file {self.path}") from exc
            if not isinstance(raw, dict):
                raise SecretUnavailable(
                    f"{self.path}: must map secret names to a secret or a list of secrets"
                )
            parsed = {str(k): split_secrets(v if isinstance(v, list) else str(v)) for k, v in raw.items()}
            self._loaded = (info.st_mtime, parsed)
            return parsed

    def secrets(self, name: str) -> tuple[str, ...]:
        """Return the secrets the file holds for ``name``."""
        return self._read().get(name, ())


class ChainedSecrets:
    """The first source that knows a name wins (e.g. the secrets file, then the environment)."""

    def __init__(self, *sources: SecretSource) -> None:
        self.sources = sources

    def secrets(self, name: str) -> tuple[str, ...]:
        """Return the secrets of the first source that has any for ``name``."""
        for source in self.sources:
            found = source.secrets(name)
            if found:
                return found
        return ()


class CachedSecrets:
    """Keep each name's secrets for ``ttl_s`` seconds, so a burst of deliveries costs one lookup.

    A rotation is seen within ``ttl_s``. Failures are not cached.
    """

    def __init__(
        self, source: SecretSource, ttl_s: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.source = source
        self.ttl_s = ttl_s
        self._clock = clock
        self._cache: dict[str, tuple[float, tuple[str, ...]]] = {}
        self._lock = threading.Lock()

    def secrets(self, name: str) -> tuple[str, ...]:
        """Return the cached secrets of ``name``, looking them up again once they are older than the TTL."""
        now = self._clock()
        with self._lock:
            hit = self._cache.get(name)
        if hit is not None and now - hit[0] < self.ttl_s:
            return hit[1]
        found = self.source.secrets(name)
        with self._lock:
            self._cache[name] = (now, found)
        return found
