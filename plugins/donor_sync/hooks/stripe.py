"""Stripe credentials from an Airflow connection (``stripe``: host = API base URL, password = key)."""

from __future__ import annotations

from airflow.sdk import BaseHook

from donor_sync.hooks._extras import api_options_from_extra, base_url
from donor_sync.sources.stripe.helpers import StripeApi

__all__ = ["StripeHook"]


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
        return StripeApi(
            base_url(conn.host), conn.password or "", **api_options_from_extra(conn.extra_dejson)
        )
