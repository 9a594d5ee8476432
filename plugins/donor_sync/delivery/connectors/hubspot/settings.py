"""What a HubSpot connection configures: base URL, API version, unique keys, limits, reserve.

Kept apart from the hook so the CLI, tests and benchmarks build a connector without Airflow;
:func:`settings_from_connection` reads the Airflow connection's fields as plain values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from donor_sync.errors import ConfigError

DEFAULT_BASE_URL = "https://api.hubapi.com"
#: Custom unique properties donor-sync upserts on (``hasUniqueValue``), per object type.
DEFAULT_CONTACT_ID_PROPERTY = "donor_sync_id"
DEFAULT_DEAL_ID_PROPERTY = "donor_sync_gift_key"
#: HubSpot accepts at most 100 inputs per CRM batch call.
MAX_BATCH_INPUTS = 100
_VERSION = re.compile(r"^(v3|\d{4}-\d{2})$")
_PROPERTY_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class AssociationType:
    """One association type (``associationCategory`` and ``associationTypeId``) for labelled links."""

    category: str
    type_id: int

    def as_json(self) -> dict[str, Any]:
        """Return the type as HubSpot's ``AssociationSpec``."""
        return {"associationCategory": self.category, "associationTypeId": self.type_id}


@dataclass(frozen=True)
class ObjectSpec:
    """A donor-sync entity stored as a HubSpot CRM object.

    :param id_property: the unique property upserts are keyed on (``email`` or a custom
        ``hasUniqueValue`` property holding the outbox record key).
    :param modified_property: the last-modified property the search API filters on.
    """

    entity: str
    object_type: str
    id_property: str
    modified_property: str = "hs_lastmodifieddate"

    @property
    def keyed_by_email(self) -> bool:
        """Whether the key is the contact's email (taken from the payload, not the record key)."""
        return self.id_property == "email"


@dataclass(frozen=True)
class AssociationSpec:
    """A donor-sync entity stored as a HubSpot association between two entities' records.

    :param types: labelled association types; empty means HubSpot's default (unlabelled) type.
    """

    entity: str
    from_entity: str
    to_entity: str
    types: tuple[AssociationType, ...] = ()


@dataclass(frozen=True)
class HubSpotSettings:
    """One HubSpot account as donor-sync uses it.

    :param api_version: ``v3`` (``/crm/v3/...``, associations ``/crm/v4/...``) or a dated
        version such as ``2026-03`` (``/crm/objects/2026-03/...``), pinned per connection.
    :param rate_limit_max: requests per interval to stay under; None uses what HubSpot reports
        in ``X-HubSpot-RateLimit-Max`` (100 until the first response). Set it lower when other
        integrations share the account's private-app limit.
    :param daily_quota_reserve: share of the daily limit kept for priority work (the push
        engine stops low-priority work below it).
    :param max_rate_limit_wait_s: longest a call keeps waiting out ``TEN_SECONDLY_ROLLING``
        429s before it gives up with a rate-limited :class:`DestinationUnavailableError`.
    """

    base_url: str = DEFAULT_BASE_URL
    api_version: str = "v3"
    contact_id_property: str = DEFAULT_CONTACT_ID_PROPERTY
    deal_id_property: str = DEFAULT_DEAL_ID_PROPERTY
    daily_quota_reserve: float = 0.1
    rate_limit_max: int | None = None
    rate_limit_interval_ms: int | None = None
    search_requests_per_second: int = 4
    verify: str | bool = True
    timeout_s: float = 30.0
    max_rate_limit_wait_s: float = 120.0
    deal_contact_association_types: tuple[AssociationType, ...] = ()
    batch_size: int = MAX_BATCH_INPUTS
    extra_objects: tuple[ObjectSpec, ...] = field(default=())

    def __post_init__(self) -> None:
        if not _VERSION.match(self.api_version):
            raise ConfigError(
                f"hubspot connection: api_version {self.api_version!r} is neither 'v3' nor a dated "
                "version like '2026-03'"
            )
        for name in (self.contact_id_property, self.deal_id_property):
            if not _PROPERTY_NAME.match(name):
                raise ConfigError(f"hubspot connection: {name!r} is not a HubSpot property name")
        if not 0.0 <= self.daily_quota_reserve < 1.0:
            raise ConfigError("hubspot connection: daily_quota_reserve must be a share in [0, 1)")
        if not 1 <= self.batch_size <= MAX_BATCH_INPUTS:
            raise ConfigError(f"hubspot connection: batch_size must be 1..{MAX_BATCH_INPUTS}")
        if self.rate_limit_max is not None and self.rate_limit_max < 1:
            raise ConfigError("hubspot connection: rate_limit_max must be at least 1")
        if self.rate_limit_interval_ms is not None and self.rate_limit_interval_ms < 1:
            raise ConfigError("hubspot connection: rate_limit_interval_ms must be at least 1")

    def objects(self) -> dict[str, ObjectSpec]:
        """Return the CRM-object entities by name (contact, deal and any extra ones)."""
        specs = [
            ObjectSpec("contact", "contacts", self.contact_id_property, "lastmodifieddate"),
            ObjectSpec("deal", "deals", self.deal_id_property, "hs_lastmodifieddate"),
            *self.extra_objects,
        ]
        return {spec.entity: spec for spec in specs}

    def associations(self) -> dict[str, AssociationSpec]:
        """Return the association entities by name."""
        spec = AssociationSpec(
            "deal_contact_association", "deal", "contact", self.deal_contact_association_types
        )
        return {spec.entity: spec}


def _text(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def _extra(extra: Mapping[str, Any], name: str) -> Any:
    """Return an extra given plainly or with the UI's ``extra__hubspot__`` prefix."""
    for key in (name, f"extra__hubspot__{name}"):
        if _text(extra.get(key)) is not None:
            return extra[key]
    return None


def _int(extra: Mapping[str, Any], name: str) -> int | None:
    value = _extra(extra, name)
    if value is None:
        return None
    try:
        return int(str(value).strip())
    except ValueError as exc:
        raise ConfigError(f"hubspot connection: extra {name!r} must be a whole number") from exc


def _share(extra: Mapping[str, Any], name: str, default: float) -> float:
    value = _extra(extra, name)
    if value is None:
        return default
    text = str(value).strip()
    try:
        return float(text[:-1]) / 100.0 if text.endswith("%") else float(text)
    except ValueError as exc:
        raise ConfigError(f"hubspot connection: extra {name!r} must be a share like 0.1 or 10%") from exc


def _association_types(extra: Mapping[str, Any]) -> tuple[AssociationType, ...]:
    """Parse ``deal_contact_association_types`` given as ``CATEGORY:ID`` items (list or comma text)."""
    raw = _extra(extra, "deal_contact_association_types")
    if raw is None:
        return ()
    items = raw if isinstance(raw, list) else str(raw).split(",")
    types: list[AssociationType] = []
    for item in items:
        category, _, type_id = str(item).strip().partition(":")
        if not category or not type_id.strip().isdigit():
            raise ConfigError(
                "hubspot connection: deal_contact_association_types items look like USER_DEFINED:123"
            )
        types.append(AssociationType(category.strip().upper(), int(type_id)))
    return tuple(types)


def settings_from_connection(host: str | None, extra: Mapping[str, Any]) -> HubSpotSettings:
    """Return the settings an Airflow connection describes; ``extra`` is not changed.

    Works for the custom ``hubspot`` connection type and for a plain ``http`` connection (host
    and password only), whose defaults are HubSpot's.
    """
    base = _text(host) or _text(_extra(extra, "base_url")) or DEFAULT_BASE_URL
    if "://" not in base:
        base = f"https://{base}"
    verify: str | bool = str(_extra(extra, "ca_bundle")) if _extra(extra, "ca_bundle") else True
    timeout = _extra(extra, "timeout")
    max_wait = _extra(extra, "max_rate_limit_wait_s")
    return HubSpotSettings(
        base_url=base.rstrip("/"),
        api_version=_text(_extra(extra, "api_version")) or "v3",
        contact_id_property=_text(_extra(extra, "contact_id_property")) or DEFAULT_CONTACT_ID_PROPERTY,
        deal_id_property=_text(_extra(extra, "deal_id_property")) or DEFAULT_DEAL_ID_PROPERTY,
        daily_quota_reserve=_share(extra, "daily_quota_reserve", 0.1),
        rate_limit_max=_int(extra, "rate_limit_max"),
        rate_limit_interval_ms=_int(extra, "rate_limit_interval_ms"),
        verify=verify,
        timeout_s=float(timeout) if timeout is not None else 30.0,
        max_rate_limit_wait_s=float(max_wait) if max_wait is not None else 120.0,
        deal_contact_association_types=_association_types(extra),
    )
