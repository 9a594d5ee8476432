"""HubSpot URL paths for the API version a connection pins.

HubSpot serves the numbered paths (``/crm/v3/objects``, ``/crm/v4/associations``) beside the
date-versioned ones (``/crm/objects/2026-03``, ``/crm/associations/2026-03``) with the same
bodies; a connection picks one so an upgrade is a configuration change, tested first.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote


def _segment(value: str) -> str:
    return quote(str(value), safe="")


@dataclass(frozen=True)
class ApiPaths:
    """Build paths for ``version`` (``v3`` or ``YYYY-MM``)."""

    version: str = "v3"

    @property
    def dated(self) -> bool:
        """Whether the connection uses the date-versioned paths."""
        return self.version != "v3"

    def objects(self, object_type: str) -> str:
        """Return the objects collection path (``.../batch/upsert`` etc. are appended)."""
        if self.dated:
            return f"/crm/objects/{self.version}/{_segment(object_type)}"
        return f"/crm/v3/objects/{_segment(object_type)}"

    def properties(self, object_type: str) -> str:
        """Return the property definitions path of an object type."""
        if self.dated:
            return f"/crm/properties/{self.version}/{_segment(object_type)}"
        return f"/crm/v3/properties/{_segment(object_type)}"

    def associations(self, from_type: str, to_type: str) -> str:
        """Return the batch associations path between two object types (v4 shapes)."""
        if self.dated:
            return f"/crm/associations/{self.version}/{_segment(from_type)}/{_segment(to_type)}"
        return f"/crm/v4/associations/{_segment(from_type)}/{_segment(to_type)}"
