"""Named key rings: where donor-sync's keys come from, and keyed hashing with them.

Four purposes use keys, each its own ring so one can be rotated without touching the others:

* ``tombstone`` -- HMAC-SHA256 of an erased donor's identifiers (``core.erasure_tombstones``).
  Old keys must stay in the ring: a tombstone cannot be re-hashed without the erased value.
* ``pseudonym`` -- HMAC-SHA256 of fields a minimization profile pseudonymizes, and the keyed
  hashes written to logs instead of PII.
* ``encryption`` -- AES-256-GCM keys of field-level encryption at rest.
* ``links`` -- signatures of preference-centre links.

A ring is ``{"current": "<key id>", "keys": {"<key id>": "<base64 key, 32 bytes>", ...}}``. The
current key makes new hashes, ciphertexts and signatures; every key in the ring is accepted when
reading, which is what makes rotation possible without downtime.

Sources, first that has the ring wins (the same order in tasks, the API server and the CLI):

1. :class:`StaticKeys` -- given in code (tests).
2. Airflow: :mod:`donor_sync.hooks.privacy_keys` reads the ``privacy_keys`` connection (its extra
   is the JSON document below; a secrets backend serves it in production) and installs itself
   (:func:`install_source`) ahead of the environment: tasks and plugins when the operators or
   plugins are imported, the ``donor-sync`` command line when it starts (through Airflow's own
   connection lookup, when the shell has an Airflow configuration).
3. :class:`EnvKeys` -- ``$DONOR_SYNC_PRIVACY_KEYS``: the JSON document
   ``{"<purpose>": <ring>, ...}``, or ``@/path/to/file.json``.
4. :class:`LocalKeyFile` -- ``.local/privacy_keys.json`` (mode 0600), for the demo and a
   developer's checkout. It is read when it exists and made only on purpose (:meth:`LocalKeyFile.init`:
   ``donor-sync keys init``, ``donor-sync demo``, ``donor-sync airflow up``), never on first use:
   a process missing the deployment's keys fails with an error naming where it looked
   (:func:`missing_ring_error`) rather than inventing keys nobody else has.

Key material never appears in logs, errors or ``repr``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import stat
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from donor_sync.errors import ConfigError

Purpose = Literal["tombstone", "pseudonym", "encryption", "links"]
PURPOSES: tuple[Purpose, ...] = ("tombstone", "pseudonym", "encryption", "links")
ENV_VAR = "DONOR_SYNC_PRIVACY_KEYS"
#: ``0`` leaves the development key file out of the default chain.
LOCAL_ENV_VAR = "DONOR_SYNC_PRIVACY_KEYS_LOCAL"
LOCAL_FILE_NAME = "privacy_keys.json"
KEY_BYTES = 32
#: Where docs/encryption.md explains the sources.
SOURCES_DOC = "docs/encryption.md#where-keys-come-from"

__all__ = [
    "ENV_VAR",
    "LOCAL_ENV_VAR",
    "PURPOSES",
    "ChainedKeys",
    "DefaultKeys",
    "EnvKeys",
    "KeyRing",
    "KeySource",
    "LocalKeyFile",
    "StaticKeys",
    "default_key_source",
    "describe_sources",
    "install_source",
    "key_source_from_document",
    "missing_ring_error",
    "new_key",
    "uninstall_source",
]


def new_key() -> str:
    """Return a new random key, base64-encoded (32 bytes)."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


@dataclass(frozen=True)
class KeyRing:
    """The keys of one purpose: the current one writes, all of them read."""

    purpose: str
    current: str
    keys: Mapping[str, bytes] = field(repr=False)

    def __post_init__(self) -> None:
        if self.current not in self.keys:
            raise ConfigError(
                f"privacy keys: ring {self.purpose!r} has no key {self.current!r} (its current key)"
            )
        for key_id, key in self.keys.items():
            if len(key) < 16:
                raise ConfigError(
                    f"privacy keys: key {key_id!r} of ring {self.purpose!r} is shorter than 16 bytes"
                )

    @property
    def current_key(self) -> bytes:
        """Return the key new values are made with."""
        return self.keys[self.current]

    def key(self, key_id: str) -> bytes:
        """Return the key ``key_id``; :class:`ConfigError` when the ring no longer has it."""
        try:
            return self.keys[key_id]
        except KeyError:
            raise ConfigError(
                f"privacy keys: ring {self.purpose!r} has no key {key_id!r}; it was removed too early"
            ) from None

    def hmac(self, value: str | bytes, *, key_id: str | None = None) -> bytes:
        """Return HMAC-SHA256 of ``value`` under ``key_id`` (default: the current key)."""
        data = value.encode("utf-8") if isinstance(value, str) else value
        key = self.current_key if key_id is None else self.key(key_id)
        return hmac.new(key, data, hashlib.sha256).digest()

    def hmac_hex(self, value: str | bytes, *, key_id: str | None = None) -> str:
        """Return :meth:`hmac` as lower-case hex."""
        return self.hmac(value, key_id=key_id).hex()

    def hmac_all(self, value: str | bytes) -> dict[str, bytes]:
        """Return the HMAC of ``value`` under every key of the ring, by key id (lookups across rotations)."""
        return {key_id: self.hmac(value, key_id=key_id) for key_id in self.keys}

    @classmethod
    def from_document(cls, purpose: str, ring: Any, *, where: str) -> KeyRing:
        """Parse one ring of a keys document; errors name ``where`` and the field, never a key."""
        if not isinstance(ring, Mapping):
            raise ConfigError(f"{where}: {purpose} must be an object with 'current' and 'keys'")
        current = ring.get("current")
        keys = ring.get("keys")
        if not isinstance(current, str) or not current:
            raise ConfigError(f"{where}: {purpose}.current must name a key id")
        if not isinstance(keys, Mapping) or not keys:
            raise ConfigError(f"{where}: {purpose}.keys must map key ids to base64 keys")
        decoded: dict[str, bytes] = {}
        for key_id, encoded in keys.items():
            try:
                decoded[str(key_id)] = base64.b64decode(str(encoded), validate=True)
            except ValueError:
                raise ConfigError(f"{where}: {purpose}.keys.{key_id} is not valid base64") from None
        return cls(purpose, current, decoded)


@runtime_checkable
class KeySource(Protocol):
    """Returns the key ring of a purpose, or ``None`` when it does not hold one."""

    def ring(self, purpose: str) -> KeyRing | None:
        """Return the ring of ``purpose`` (``None``: not here)."""
        ...


def _parse_document(document: Any, *, where: str) -> dict[str, KeyRing]:
    if isinstance(document, str | bytes):
        try:
            document = json.loads(document)
        except ValueError:
            raise ConfigError(f"{where}: not a JSON document") from None
    if not isinstance(document, Mapping):
        raise ConfigError(f"{where}: must be a JSON object of key rings by purpose")
    unknown = sorted(set(document) - set(PURPOSES))
    if unknown:
        raise ConfigError(
            f"{where}: unknown purpose(s) {', '.join(unknown)}; purposes are {', '.join(PURPOSES)}"
        )
    return {p: KeyRing.from_document(p, document[p], where=where) for p in document}


class StaticKeys:
    """Rings given in code: ``StaticKeys({"tombstone": {"current": "k1", "keys": {"k1": ...}}})``."""

    def __init__(self, document: Mapping[str, Any] | str, *, where: str = "static privacy keys") -> None:
        self.where = where
        self._rings = _parse_document(document, where=where)

    def ring(self, purpose: str) -> KeyRing | None:
        """Return the ring of ``purpose`` given at construction."""
        return self._rings.get(purpose)


def key_source_from_document(document: Mapping[str, Any] | str, *, where: str) -> StaticKeys:
    """Return a source over a keys document (an Airflow connection's extra, a secrets backend value)."""
    return StaticKeys(document, where=where)


class EnvKeys:
    """``$DONOR_SYNC_PRIVACY_KEYS``: the keys document itself, or ``@<path>`` of a file holding it."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = environ if environ is not None else os.environ

    @property
    def where(self) -> str:
        """Name this source in errors (whether the variable is set; never its value)."""
        return f"${ENV_VAR}" + ("" if self._environ.get(ENV_VAR, "").strip() else " (not set)")

    def ring(self, purpose: str) -> KeyRing | None:
        """Return the ring of ``purpose`` from the variable (``None`` when unset)."""
        value = self._environ.get(ENV_VAR, "").strip()
        if not value:
            return None
        where = f"${ENV_VAR}"
        if value.startswith("@"):
            path = Path(value[1:]).expanduser()
            where = str(path)
            try:
                value = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(f"{where}: cannot read the privacy keys file ({exc.strerror})") from exc
        return _parse_document(value, where=where).get(purpose)


class LocalKeyFile:
    """A development key file (``.local/privacy_keys.json``, mode 0600).

    Reading never makes it: :meth:`init` does, where that is the point (``donor-sync keys init``,
    the demo, the local Airflow, the test suite). Without the file this source holds no rings.
    """

    def __init__(self, path: Path | None = None) -> None:
        self._path = path
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        """Return the file's path (naming it creates nothing)."""
        if self._path is None:
            from donor_sync.paths import local_state_dir

            self._path = local_state_dir(create=False) / LOCAL_FILE_NAME
        return self._path

    @property
    def where(self) -> str:
        """Name this source in errors."""
        if self.path.exists():
            return f"the development key file {self.path}"
        return (
            f"the development key file {self.path} (none: `donor-sync keys init` makes one, for "
            "development only)"
        )

    def _read(self) -> dict[str, Any] | None:
        path = self.path
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            return None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            path.chmod(0o600)
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            raise ConfigError(f"{path}: not a JSON document") from None
        if not isinstance(document, dict):
            raise ConfigError(f"{path}: must be a JSON object of key rings by purpose")
        return document

    def document(self) -> dict[str, Any]:
        """Return the file's whole keys document.

        :raises ConfigError: there is no file (it is never made here), or it is invalid.
        """
        found = self._read()
        if found is None:
            raise ConfigError(
                f"no development key file {self.path}: `donor-sync keys init` makes one (development "
                "only; a deployment's keys are the privacy_keys connection or "
                f"${ENV_VAR}, {SOURCES_DOC})"
            )
        _parse_document(found, where=str(self.path))
        return found

    def ring(self, purpose: str) -> KeyRing | None:
        """Return the ring of ``purpose`` (``None`` when there is no file or it lacks the ring)."""
        document = self._read()
        if document is None:
            return None
        return _parse_document(document, where=str(self.path)).get(purpose)

    def init(self) -> list[str]:
        """Give the file a ring with a random key for each purpose it lacks, making it if needed.

        For the demo and development only. Rings already there are kept; two processes making
        the file at once end with the same keys. Returns the purposes added (none: it had them all).
        """
        path = self.path
        with self._lock:
            while True:
                existing = self._read()
                document = dict(existing or {})
                missing: list[str] = [p for p in PURPOSES if p not in document]
                if not missing:
                    return []
                for purpose in missing:
                    document[purpose] = {"current": "dev1", "keys": {"dev1": new_key()}}
                _parse_document(document, where=str(path))
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = self._private_copy(document)
                try:
                    if existing is not None:
                        os.replace(tmp, path)
                        return missing
                    try:
                        os.link(tmp, path)  # only when no other process made it meanwhile
                    except FileExistsError:
                        continue  # read theirs and add what it lacks, if anything
                    return missing
                finally:
                    tmp.unlink(missing_ok=True)

    def write(self, document: Mapping[str, Any]) -> None:
        """Replace the file's rings (``donor-sync keys`` commands and tests use it)."""
        _parse_document(document, where=str(self.path))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            os.replace(self._private_copy(document), self.path)

    def _private_copy(self, document: Mapping[str, Any]) -> Path:
        """Write ``document`` to a new mode-0600 file beside the key file; return its path."""
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(dict(document), handle, indent=2)
        return tmp


class ChainedKeys:
    """The first source holding a purpose's ring wins."""

    def __init__(self, *sources: KeySource) -> None:
        self.sources = sources

    @property
    def where(self) -> str:
        """Name the sources, in the order they are read."""
        return "; ".join(_where(source) for source in self.sources) or "no source"

    def ring(self, purpose: str) -> KeyRing | None:
        """Return the first ring of ``purpose`` found."""
        for source in self.sources:
            found = source.ring(purpose)
            if found is not None:
                return found
        return None

    def require(self, purpose: str) -> KeyRing:
        """Return the ring of ``purpose``, or raise :class:`ConfigError` saying where to put it."""
        found = self.ring(purpose)
        if found is None:
            raise missing_ring_error(purpose, self)
        return found


def _where(source: object) -> str:
    where = getattr(source, "where", None)
    return where if isinstance(where, str) else type(source).__name__


def describe_sources(source: KeySource) -> str:
    """Name where ``source`` looks for key rings, in order (no key material), for error messages."""
    return _where(source)


def missing_ring_error(purpose: str, source: KeySource, *, needed_by: str = "") -> ConfigError:
    """Return the error for a ring no source holds: it names every place looked in, in order.

    :param needed_by: what needs the ring, e.g. ``" for the salesforce privacy gate"``.
    """
    return ConfigError(
        f"no {purpose!r} key ring{needed_by}; looked in: {describe_sources(source)}. Give this process "
        f"the deployment's keys (the privacy_keys connection or ${ENV_VAR}; {SOURCES_DOC})"
    )


_installed: list[KeySource] = []


def install_source(source: KeySource) -> None:
    """Put ``source`` first in every default chain of this process (Airflow installs its connection).

    Installing the same source object twice keeps one.
    """
    if not any(existing is source for existing in _installed):
        _installed.insert(0, source)


def uninstall_source(source: KeySource) -> None:
    """Remove a source :func:`install_source` put in (tests)."""
    _installed[:] = [existing for existing in _installed if existing is not source]


def default_key_source(*first: KeySource, allow_local: bool | None = None) -> ChainedKeys:
    """Return the chain: ``first``, installed sources (Airflow connection), the env var, the local file.

    The local file (read, never made) is in the chain unless ``allow_local`` is false or
    ``DONOR_SYNC_PRIVACY_KEYS_LOCAL=0``.
    """
    if allow_local is None:
        allow_local = os.environ.get(LOCAL_ENV_VAR, "1") != "0"
    sources: list[KeySource] = [*first, *_installed, EnvKeys()]
    if allow_local:
        sources.append(LocalKeyFile())
    return ChainedKeys(*sources)


class DefaultKeys:
    """The default chain, looked up afresh at each call (the environment and installed sources as
    they are now): for process-wide objects that outlive a change of ``$DONOR_SYNC_PRIVACY_KEYS``."""

    @property
    def where(self) -> str:
        """Name the default chain's sources as they are now."""
        return default_key_source().where

    def ring(self, purpose: str) -> KeyRing | None:
        """Return the ring of ``purpose`` from :func:`default_key_source` as it is at this call."""
        return default_key_source().ring(purpose)
