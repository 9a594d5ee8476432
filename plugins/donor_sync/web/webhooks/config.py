"""Webhook endpoint settings: ``include/mappings/webhooks.yaml``, validated with pydantic.

The file holds only what is safe to commit: the signature scheme, limits, allowed content types,
the address allow-list, where the event id, type and time sit in a body, and how the drain turns
an event into raw records. Secrets never live here: each endpoint names a secret (an Airflow
connection id such as ``stripe_webhook``) that a :class:`~donor_sync.web.webhooks.secret_sources.SecretSource`
resolves at request time.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from donor_sync.errors import ConfigError
from donor_sync.paths import include_dir
from donor_sync.yaml_source import duplicate_keys, line_of, read_config_text

__all__ = [
    "EndpointSettings",
    "EventPaths",
    "LandingSettings",
    "Network",
    "Scheme",
    "WebhookSettings",
    "default_config_path",
    "load_settings",
]

Scheme = Literal["stripe_v1", "hmac_sha256", "none"]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_NAME = r"^[a-z][a-z0-9_]{0,62}$"
_PATH = r"^(\$(\.[^.]+)*|[^.$][^.]*(\.[^.]+)*)?$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _networks(value: Any) -> Any:
    """Parse CIDRs strictly (host bits set is a typo worth refusing, not silently widening)."""
    if value is None:
        return ()
    if not isinstance(value, list | tuple):
        raise ValueError("must be a list of CIDRs, e.g. ['192.0.2.0/24']")
    return tuple(ipaddress.ip_network(str(item), strict=True) for item in value)


class EventPaths(_Strict):
    """Where the platform puts its event id, type and time in the JSON body (dotted paths).

    ``id`` is required: it is the idempotency key of the inbox, so a replayed or duplicated
    delivery is stored once. ``created`` may hold unix seconds or an ISO-8601 timestamp.
    """

    id: str = Field(default="id", min_length=1, pattern=_PATH)
    type: str | None = Field(default="type", pattern=_PATH)
    created: str | None = Field(default=None, pattern=_PATH)


class LandingSettings(_Strict):
    """How the drain turns one inbox event into a ``raw.records`` row.

    :ivar entity: raw.records entity; the same one the source's API extractor uses, so an object
        delivered by webhook and later listed by the API is one object (same payload hash: no-op).
    :ivar object: path of the object to land inside the body; ``""`` lands the whole body (Stripe
        events are landed as events, exactly like the API extractor lands listed events).
    :ivar id: path of the object's id inside the object.
    :ivar updated_at: paths inside the object tried in order for its modification time.
    :ivar event_types: shell-style patterns of event types to land; other types are marked
        processed with ``ignored_event_type`` and stay in the inbox.
    """

    entity: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    object: str = Field(default="", pattern=_PATH)
    id: str = Field(default="id", min_length=1, pattern=_PATH)
    updated_at: tuple[str, ...] = ()
    event_types: tuple[str, ...] = Field(default=("*",), min_length=1)


class EndpointSettings(_Strict):
    """One inbound webhook endpoint (``POST /{source}``)."""

    source: str = Field(pattern=_NAME)
    scheme: Scheme
    #: Largest accepted distance between the signed timestamp and now, either way (seconds).
    tolerance_s: int = Field(default=300, ge=1, le=3600)
    max_body_bytes: int = Field(default=1_048_576, ge=64, le=16 * 1_048_576)
    content_types: tuple[str, ...] = Field(default=("application/json",), min_length=1)
    #: Addresses allowed to call; empty allows any address (the signature is then the only check).
    allow_ips: tuple[Network, ...] = ()
    #: Name of the secret (the Airflow connection id, or the key of the env var / secrets file);
    #: empty means ``<source>_webhook``.
    secret: str = Field(default="", pattern=r"^([a-z][a-z0-9_]{0,99})?$")
    event: EventPaths = EventPaths()
    landing: LandingSettings

    @field_validator("allow_ips", mode="before")
    @classmethod
    def _parse_allow_ips(cls, value: Any) -> Any:
        return _networks(value)

    @field_validator("content_types")
    @classmethod
    def _media_types(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        lowered = tuple(v.strip().lower() for v in value)
        for media_type in lowered:
            if not re.fullmatch(r"[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+", media_type):
                raise ValueError(f"{media_type!r} is not a media type such as 'application/json'")
        return lowered

    @model_validator(mode="after")
    def _unsigned_needs_allow_list(self) -> EndpointSettings:
        if self.scheme == "none" and not self.allow_ips:
            raise ValueError("scheme 'none' (unsigned) needs allow_ips: nothing else would check callers")
        return self

    @property
    def secret_name(self) -> str:
        """Return the name the secret is looked up by."""
        return self.secret or f"{self.source}_webhook"


class WebhookSettings(_Strict):
    """The whole webhooks.yaml file."""

    #: Reverse proxies whose ``X-Forwarded-For`` is believed, only when the direct peer is one.
    trusted_proxies: tuple[Network, ...] = ()
    endpoints: dict[str, EndpointSettings] = Field(default_factory=dict)

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _parse_proxies(cls, value: Any) -> Any:
        return _networks(value)

    @model_validator(mode="before")
    @classmethod
    def _name_endpoints(cls, data: Any) -> Any:
        """Give each endpoint its key as ``source`` (the YAML names endpoints by their key)."""
        if isinstance(data, Mapping) and isinstance(data.get("endpoints"), Mapping):
            endpoints = {
                key: {**value, "source": key}
                if isinstance(value, Mapping) and "source" not in value
                else value
                for key, value in data["endpoints"].items()
            }
            data = {**data, "endpoints": endpoints}
        return data

    @model_validator(mode="after")
    def _keys_match(self) -> WebhookSettings:
        for key, endpoint in self.endpoints.items():
            if key != endpoint.source:
                raise ValueError(f"endpoint {key!r} declares source {endpoint.source!r}; they must match")
        return self

    def endpoint(self, source: str) -> EndpointSettings | None:
        """Return the endpoint for ``source``, or None when it is not configured."""
        return self.endpoints.get(source)


def default_config_path() -> Path:
    """Return ``include/mappings/webhooks.yaml``."""
    return include_dir() / "mappings" / "webhooks.yaml"


def load_settings(path: Path | None = None) -> WebhookSettings:
    """Read and validate the webhook settings.

    :raises ConfigError: naming the file, the line and the field of each problem.
    """
    path = path or default_config_path()
    text = read_config_text(path)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    twice = duplicate_keys(root)
    if twice:
        found = "; ".join(f"line {line}, {key}: written twice" for line, key in twice)
        raise ConfigError(f"{path}: {found}")
    try:
        return WebhookSettings.model_validate(raw or {})
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if not str(p).startswith("function-"))
            line = line_of(root, loc)
            where = f"line {line}, " if line else ""
            problems.append(f"{where}{'.'.join(str(p) for p in loc) or '(top)'}: {err['msg']}")
        raise ConfigError(f"{path}: " + "; ".join(problems)) from exc
