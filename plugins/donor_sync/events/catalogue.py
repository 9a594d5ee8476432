"""The standard outbound events: their types, versions, schema files, ids and envelope.

Every event is an envelope ``{id, type, version, occurred_at, data}`` validated against its
JSON Schema (draft 2020-12) in ``include/events/schemas/<type>.v<version>.json``. ``data`` holds
ids and business facts only, never a donor's PII (docs/events.md).

The id is ``uuid5(EVENT_NAMESPACE, fact_key)``: the fact key names the fact the event reports
(``donation.created:<gift key>``), so a producer run again over the same facts computes the same
id, and the same fact has the same id in every schema version.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError

from donor_sync.errors import DonorSyncError
from donor_sync.paths import include_dir

__all__ = [
    "CATALOGUE",
    "EVENT_NAMESPACE",
    "EVENT_TYPES",
    "Event",
    "InvalidEventError",
    "entity_of",
    "event_id",
    "load_schema",
    "schema_path",
    "validate_envelope",
]

#: Namespace of event ids. The issue-7 ``donor.erased`` notifications used it with the bare request
#: id as the name; :func:`event_id` keeps that, so a subscriber sees the same id for the same erasure.
EVENT_NAMESPACE = uuid.UUID("5a0c3f8e-58a4-4c57-9d1c-6f0d2b0e7e11")

#: Event type → the schema versions donor-sync produces (side by side during a deprecation window).
CATALOGUE: Mapping[str, tuple[int, ...]] = {
    "donation.created": (1,),
    "donation.refunded": (1,),
    "donor.merged": (1,),
    "consent.changed": (1,),
    "donor.erased": (1,),
}
EVENT_TYPES: tuple[str, ...] = tuple(CATALOGUE)


class InvalidEventError(DonorSyncError):
    """A produced event does not match its schema (a bug in a producer). Names paths, never values."""


@dataclass(frozen=True)
class Event:
    """One event of one schema version, ready to store and deliver.

    :param fact_key: the fact it reports (its id derives from it).
    :param donor_id: the donor it is about (outbox and erasure bookkeeping), if any.
    """

    event_type: str
    version: int
    fact_key: str
    occurred_at: datetime
    data: Mapping[str, Any]
    donor_id: str | None = None

    @property
    def id(self) -> str:
        """The event id (stable per fact)."""
        return event_id(self.event_type, self.fact_key)

    def envelope(self) -> dict[str, Any]:
        """Return the envelope subscribers receive."""
        return {
            "id": self.id,
            "type": self.event_type,
            "version": self.version,
            "occurred_at": self.occurred_at.astimezone(UTC).isoformat(),
            "data": dict(self.data),
        }


def event_id(event_type: str, fact_key: str) -> str:
    """Return the id of the event reporting ``fact_key``.

    ``donor.erased`` keeps issue 7's derivation (the request id alone), the others hash the full
    fact key, which starts with the type.
    """
    name = fact_key.split(":", 1)[1] if event_type == "donor.erased" else fact_key
    return str(uuid.uuid5(EVENT_NAMESPACE, name))


def entity_of(event_type: str) -> str:
    """Return the outbox entity of an event type (``donation.created`` → ``donation_created``)."""
    return event_type.replace(".", "_")


def schema_path(event_type: str, version: int, root: Path | None = None) -> Path:
    """Return the schema file of ``event_type`` at ``version``."""
    return (root or include_dir() / "events" / "schemas") / f"{event_type}.v{version}.json"


@cache
def load_schema(event_type: str, version: int) -> dict[str, Any]:
    """Return the parsed schema of ``event_type`` at ``version`` (checked against the metaschema)."""
    if version not in CATALOGUE.get(event_type, ()):
        raise ValueError(f"unknown event {event_type} v{version} (catalogue: {', '.join(EVENT_TYPES)})")
    path = schema_path(event_type, version)
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return schema


@cache
def _validator(event_type: str, version: int) -> Draft202012Validator:
    return Draft202012Validator(load_schema(event_type, version), format_checker=FormatChecker())


def validate_envelope(envelope: Mapping[str, Any]) -> None:
    """Check an envelope against the schema its ``type`` and ``version`` name.

    :raises InvalidEventError: naming the event id, type and the failing paths (no values).
    """
    event_type, version = str(envelope.get("type")), envelope.get("version")
    if not isinstance(version, int) or version not in CATALOGUE.get(event_type, ()):
        raise InvalidEventError(f"event {envelope.get('id')}: unknown type/version {event_type} v{version}")
    errors: list[ValidationError] = sorted(
        _validator(event_type, version).iter_errors(dict(envelope)), key=lambda e: list(e.absolute_path)
    )
    if errors:
        where = "; ".join(
            f"{'/'.join(str(p) for p in e.absolute_path) or '(envelope)'}: {e.validator} failed"
            for e in errors
        )
        raise InvalidEventError(
            f"event {envelope.get('id')} ({event_type} v{version}) breaks its schema: {where}"
        )
