"""The Mailchimp connector's settings, parsed from the ``mailchimp`` connection's extras.

Extras (all optional but ``list_id``):

``list_id``               the audience donors are members of.
``max_connections``       requests this process keeps in flight (1..10, default 5; the
                          ``mailchimp_api`` pool's 2 slots times 5 stay within Mailchimp's 10).
``batches_threshold``     above this many due members a push goes through ``/batches``
                          (asynchronous) instead of batch subscribe (500 a call); default 1000.
``batches_max_operations`` members per ``/batches`` job (default 5000).
``batch_poll_s``          how often a ``/batches`` job is polled (default 5 s) and
``batch_timeout_s``       how long it may take before the push gives up (default 1800 s; its records
                          are retried on the ladder: a re-sent PUT changes nothing).
``mirror_archive``        what the mapping's ``mirror_action: archive`` does to a member who may no
                          longer receive email: ``unsubscribe`` (default: Mailchimp keeps the
                          member unsubscribed, so no later import or form re-adds them silently)
                          or ``archive`` (Mailchimp's archive: the contact leaves the audience
                          count; an import could re-add them).
``marketing_permissions`` GDPR permission ids of the audience by their text,
                          ``Email=a1b2c3d4e5,Direct Mail=f6a7b8c9d0``; without it the ids are read
                          from a member of the audience.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from donor_sync.errors import ConfigError

SUBSCRIBE_MAX_MEMBERS = 500
DEFAULT_BATCHES_THRESHOLD = 1000
DEFAULT_BATCHES_MAX_OPERATIONS = 5000
REMOVE_BATCH = 100


@dataclass(frozen=True)
class MailchimpSettings:
    """What the connector needs besides the HTTP client."""

    list_id: str
    max_connections: int = 5
    batches_threshold: int = DEFAULT_BATCHES_THRESHOLD
    batches_max_operations: int = DEFAULT_BATCHES_MAX_OPERATIONS
    batch_poll_s: float = 5.0
    batch_timeout_s: float = 1800.0
    mirror_archive: Literal["unsubscribe", "archive"] = "unsubscribe"
    marketing_permissions: Mapping[str, str] = field(default_factory=dict)


def _number(extra: Mapping[str, Any], name: str, default: float, *, low: float, high: float) -> float:
    raw = extra.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = low - 1
    if not low <= value <= high:
        raise ConfigError(f"mailchimp connection: extra {name}: a number from {low:g} to {high:g}")
    return value


def parse_permissions(text: Any) -> dict[str, str]:
    """Return ``{text: id}`` from ``Email=a1b2c3d4e5,Direct Mail=f6a7b8c9d0`` (or a mapping)."""
    if isinstance(text, Mapping):
        return {str(k).strip(): str(v).strip() for k, v in text.items()}
    out: dict[str, str] = {}
    for item in str(text or "").split(","):
        if not item.strip():
            continue
        name, sep, pid = item.partition("=")
        if not sep or not name.strip() or not pid.strip():
            raise ConfigError(
                "mailchimp connection: extra marketing_permissions: items are <text>=<id>, "
                "separated by commas"
            )
        out[name.strip()] = pid.strip()
    return out


def settings_from_extra(extra: Mapping[str, Any]) -> MailchimpSettings:
    """Return the settings of a connection's extras (input unchanged).

    :raises ConfigError: no ``list_id``, or a value out of range (naming the extra).
    """
    list_id = str(extra.get("list_id") or "").strip()
    if not list_id:
        raise ConfigError("mailchimp connection: extra list_id: the audience id is required")
    mirror = str(extra.get("mirror_archive") or "unsubscribe")
    if mirror not in ("unsubscribe", "archive"):
        raise ConfigError("mailchimp connection: extra mirror_archive: unsubscribe or archive")
    return MailchimpSettings(
        list_id=list_id,
        max_connections=int(_number(extra, "max_connections", 5, low=1, high=10)),
        batches_threshold=int(
            _number(extra, "batches_threshold", DEFAULT_BATCHES_THRESHOLD, low=1, high=1e7)
        ),
        batches_max_operations=int(
            _number(extra, "batches_max_operations", DEFAULT_BATCHES_MAX_OPERATIONS, low=1, high=100_000)
        ),
        batch_poll_s=_number(extra, "batch_poll_s", 5.0, low=0.0, high=600.0),
        batch_timeout_s=_number(extra, "batch_timeout_s", 1800.0, low=1.0, high=86_400.0),
        mirror_archive="archive" if mirror == "archive" else "unsubscribe",
        marketing_permissions=parse_permissions(extra.get("marketing_permissions")),
    )
