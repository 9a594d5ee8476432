"""Quiet hours in the donor's time zone.

The donor's zone, first that is known: ``core.donors.time_zone`` (an IANA name); the
``time_zones.by_region`` table of journeys.yaml for the donor's country and region; the only
zone of a single-zone country (the tz database's ``zone1970.tab``); the organization's time
zone (include/mappings/giving.yaml).
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Mapping
from datetime import datetime, time
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from donor_sync.journeys.rules import QuietHours, TimeZones

_SYSTEM_TABLE = Path("/usr/share/zoneinfo/zone1970.tab")


@cache
def single_zone_countries() -> Mapping[str, str]:
    """Return country code -> zone for countries the tz database gives exactly one zone."""
    text = ""
    try:
        text = importlib.resources.files("tzdata").joinpath("zoneinfo", "zone1970.tab").read_text()
    except (ModuleNotFoundError, FileNotFoundError, OSError):
        if _SYSTEM_TABLE.exists():
            text = _SYSTEM_TABLE.read_text()
    zones: dict[str, list[str]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) >= 3:
            for country in parts[0].split(","):
                zones.setdefault(country, []).append(parts[2])
    return {country: found[0] for country, found in zones.items() if len(found) == 1}


@cache
def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


class ZoneResolver:
    """Finds a donor's time zone from their fields and the configured fallbacks."""

    def __init__(self, time_zones: TimeZones, org_zone: str) -> None:
        self._by_region = {
            code.upper(): zone for zone, codes in time_zones.by_region.items() for code in codes
        }
        fallback = _zone(org_zone)
        self._org = fallback if fallback is not None else ZoneInfo("UTC")

    def zone(self, time_zone: str | None, country: str | None, region: str | None) -> ZoneInfo:
        """Return the donor's zone (an unknown IANA name falls through to the next source)."""
        if time_zone:
            found = _zone(time_zone.strip())
            if found is not None:
                return found
        if country:
            country = country.strip().upper()
            if region:
                name = self._by_region.get(f"{country}-{region.strip().upper()}")
                if name is not None and (found := _zone(name)) is not None:
                    return found
            single = single_zone_countries().get(country)
            if single is not None and (found := _zone(single)) is not None:
                return found
        return self._org


def in_quiet_hours(window: QuietHours, now: datetime, zone: ZoneInfo) -> bool:
    """Return whether ``now`` (timezone-aware) falls in the window in ``zone``'s local time."""
    local: time = now.astimezone(zone).time().replace(tzinfo=None)
    if window.start < window.end:
        return window.start <= local < window.end
    return local >= window.start or local < window.end
