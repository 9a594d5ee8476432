"""Donorbox credentials from an Airflow connection (``donorbox``: login = email, password = API key)."""

from __future__ import annotations

from airflow.sdk import BaseHook

from donor_sync.hooks._extras import api_options_from_extra, base_url
from donor_sync.sources.donorbox import DonorboxApi


class DonorboxHook(BaseHook):
    """Build a :class:`DonorboxApi` from the ``donorbox`` connection."""

    conn_name_attr = "donorbox_conn_id"
    default_conn_name = "donorbox"
    conn_type = "http"
    hook_name = "Donorbox (donor-sync)"

    def __init__(self, donorbox_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.donorbox_conn_id = donorbox_conn_id

    def get_api(self) -> DonorboxApi:
        """Return a client for the connection's base URL and credentials."""
        conn = self.get_connection(self.donorbox_conn_id)
        return DonorboxApi(
            base_url(conn.host),
            conn.login or "",
            conn.password or "",
            **api_options_from_extra(conn.extra_dejson),
        )
