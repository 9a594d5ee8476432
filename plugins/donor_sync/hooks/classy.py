"""Classy credentials from an Airflow connection (``classy``: login = client id, password = secret,
extra ``organization_id``)."""

from __future__ import annotations

from airflow.sdk import BaseHook

from donor_sync.errors import ConfigError
from donor_sync.hooks._extras import api_options_from_extra, base_url
from donor_sync.sources.classy import ClassyApi


class ClassyHook(BaseHook):
    """Build a :class:`ClassyApi` from the ``classy`` connection."""

    conn_name_attr = "classy_conn_id"
    default_conn_name = "classy"
    conn_type = "http"
    hook_name = "Classy (donor-sync)"

    def __init__(self, classy_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.classy_conn_id = classy_conn_id

    def get_api(self) -> ClassyApi:
        """Return a client for the connection's base URL, client credentials and organisation."""
        conn = self.get_connection(self.classy_conn_id)
        extra = conn.extra_dejson
        if not str(extra.get("organization_id", "")).isdigit():
            raise ConfigError(f"connection {self.classy_conn_id}: extra organization_id must be a number")
        return ClassyApi(
            base_url(conn.host),
            conn.login or "",
            conn.password or "",
            int(extra["organization_id"]),
            connection=self.classy_conn_id,
            **api_options_from_extra(extra),
        )
