"""Connection extras every source hook understands."""

from __future__ import annotations

from typing import Any


def api_options_from_extra(extra: dict[str, Any]) -> dict[str, Any]:
    """Return client options from a connection's extras (``ca_bundle``, ``timeout``); input unchanged."""
    options: dict[str, Any] = {}
    if extra.get("ca_bundle"):
        options["verify"] = str(extra["ca_bundle"])
    if extra.get("timeout"):
        options["timeout"] = float(extra["timeout"])
    return options


def base_url(host: str | None) -> str:
    """Return an https base URL for a connection host given with or without a scheme."""
    host = host or ""
    return host if "://" in host else f"https://{host}"
