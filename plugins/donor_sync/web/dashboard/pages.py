"""HTML pages: Jinja2 templates with autoescaping always on, and the headers every response carries.

Every value a template prints is escaped. That covers donor names, vendor codes and notes. Only
the stylesheet, which is our own file, is marked safe. There is no script on any page. The
Content-Security-Policy allows the one inline stylesheet by its hash, form posts to this origin
only, and framing by the Airflow UI (same origin) only.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

__all__ = ["Pages", "security_headers"]

TEMPLATES = Path(__file__).resolve().parent / "templates"
_STYLESHEET = TEMPLATES / "dashboard.css"


def _when(value: datetime | None) -> str:
    """Format a timestamp in UTC to the minute (empty for None)."""
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _value(value: Any) -> str:
    """Format a golden-record field: lists joined, None and empty lists blank, booleans yes/no."""
    if value is None or value == []:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def _json(value: Any) -> str:
    """Format a value as sorted JSON (the template escapes it)."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def security_headers(stylesheet: str) -> dict[str, str]:
    """Return the headers every dashboard response carries (the CSP names the stylesheet's hash)."""
    digest = base64.b64encode(hashlib.sha256(stylesheet.encode()).digest()).decode()
    return {
        "Content-Security-Policy": (
            f"default-src 'none'; style-src 'sha256-{digest}'; img-src 'self' data:; form-action 'self';"
            " frame-ancestors 'self'; base-uri 'none'"
        ),
        "X-Frame-Options": "SAMEORIGIN",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        # Pages hold donor data and per-user tokens: never kept by a browser or a proxy.
        "Cache-Control": "no-store",
    }


class Pages:
    """Renders the dashboard's templates for a request.

    Links are built with ``request.url_for``, so they include the prefix the app is mounted at.

    :param airflow_base_path: the Airflow UI's base path (``[api] base_url``'s path), for links to
        DAG pages.
    """

    def __init__(self, *, airflow_base_path: str = "/") -> None:
        self.env = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters.update(when=_when, value=_value, json=_json)
        self.stylesheet = _STYLESHEET.read_text(encoding="utf-8")
        self.headers = security_headers(self.stylesheet)
        self.airflow_base_path = (
            airflow_base_path if airflow_base_path.endswith("/") else airflow_base_path + "/"
        )

    def render(
        self,
        request: Request,
        template: str,
        *,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        **context: Any,
    ) -> HTMLResponse:
        """Render ``template`` with ``context`` plus ``url``, ``airflow_url`` and the stylesheet."""

        def url(name: str, query: Mapping[str, Any] | None = None, **path_params: Any) -> str:
            path = request.url_for(name, **path_params).path
            pairs = [(k, v) for k, v in (query or {}).items() if v is not None and v != ""]
            return f"{path}?{urlencode(pairs, doseq=True)}" if pairs else path

        def airflow_url(path: str) -> str:
            return self.airflow_base_path + path.lstrip("/")

        html = self.env.get_template(template).render(
            url=url,
            airflow_url=airflow_url,
            stylesheet=Markup(self.stylesheet),  # our own file, hashed in the CSP  # noqa: S704
            **context,
        )
        return HTMLResponse(html, status_code=status_code, headers=dict(headers or {}))
