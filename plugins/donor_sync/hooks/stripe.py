"""Stripe credentials from an Airflow connection (``stripe``: host = API base URL, password = key)."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseHook

from donor_sync.sources.stripe.helpers import StripeApi


def api_options_from_extra(extra: dict[str, Any]) -> dict[str, Any]:
    """Return :class:`StripeApi` options from the connection's extras (``ca_bundle``, ``timeout``)."""
    options: dict[str, Any] = {}
    if extra.get("ca_bundle"):
        options["verify"] = str(extra["ca_bundle"])
    if extra.get("timeout"):
        options["timeout"] = float(extra["timeout"])
    return options


class StripeHook(BaseHook):
    """Build a :class:`StripeApi` from the ``stripe`` connection."""

    conn_name_attr = "stripe_conn_id"
    default_conn_name = "stripe"
    conn_type = "http"
    hook_name = "Stripe (donor-sync)"

    def __init__(self, stripe_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.stripe_conn_id = stripe_conn_id

    def get_api(self) -> StripeApi:
        """Return a client for the connection's base URL and key."""
        conn = self.get_connection(self.stripe_conn_id)
        host = conn.host or ""
        base = host if "://" in host else f"https://{host}"
        return StripeApi(base, conn.password or "", **api_options_from_extra(conn.extra_dejson))
