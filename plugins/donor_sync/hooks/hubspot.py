"""HubSpot credentials and settings from an Airflow connection (custom type ``hubspot``).

Host = API base URL, password = private-app access token; extras pin the API version, the
unique id properties, the daily quota reserve and an override of the rolling request limit.
A plain ``http`` connection with host and password (as ``airflow_settings.yaml`` ships) works
too. Everything else lives in ``donor_sync.delivery.connectors.hubspot``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from airflow.sdk import BaseHook

from donor_sync.delivery.connectors.hubspot import HubSpotConnector
from donor_sync.delivery.connectors.hubspot.deprecation import DeprecationNotice
from donor_sync.delivery.connectors.hubspot.factory import connector_from_connection
from donor_sync.delivery.contracts import DeliveryError
from donor_sync.errors import ConfigError

__all__ = ["CONN_FIELDS", "UI_FIELD_BEHAVIOUR", "HubSpotHook", "connection_type_info"]

log = logging.getLogger(__name__)


def _text_field(label: str, description: str, default: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": ["string", "null"]}
    if default is not None:
        schema["default"] = default
    return {"label": label, "description": description, "schema": schema}


def _int_field(label: str, description: str) -> dict[str, Any]:
    return {"label": label, "description": description, "schema": {"type": ["integer", "null"]}}


#: The connection form's extra fields, in Airflow's declarative ``conn-fields`` form (3.2+).
CONN_FIELDS: dict[str, dict[str, Any]] = {
    "api_version": _text_field(
        "API version",
        "v3 (/crm/v3, associations /crm/v4) or a dated version such as 2026-03 (/crm/objects/2026-03).",
        "v3",
    ),
    "contact_id_property": _text_field(
        "Contact id property",
        "Unique contact property upserts are keyed on: donor_sync_id (created if missing) or email.",
        "donor_sync_id",
    ),
    "deal_id_property": _text_field(
        "Deal id property", "Unique deal property holding the gift key.", "donor_sync_gift_key"
    ),
    "daily_quota_reserve": _text_field(
        "Daily quota reserve",
        "Share of the daily API limit kept for priority work, e.g. 0.1 or 10%.",
        "0.1",
    ),
    "rate_limit_max": _int_field(
        "Requests per interval (override)",
        "Leave empty to use HubSpot's reported limit; set lower when other apps share it.",
    ),
    "rate_limit_interval_ms": _int_field(
        "Interval in ms (override)", "Leave empty to use HubSpot's reported interval (10000)."
    ),
    "ca_bundle": _text_field("CA bundle", "Path of a CA bundle to trust (the sandbox's); empty: system."),
    "client_secret": {
        "label": "OAuth client secret",
        "description": "OAuth apps only: login = client id, password = refresh token.",
        "schema": {"type": ["string", "null"], "format": "password"},
    },
}

#: Which standard fields the form shows, and under which names.
UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden_fields": ["schema", "port"],
    "relabeling": {
        "host": "API base URL",
        "password": "Access token",
        "login": "OAuth client id (OAuth apps only)",
    },
    "placeholders": {"host": "https://api.hubapi.com", "password": "pat-na1-..."},
}


def connection_type_info() -> dict[str, Any]:
    """Return this connection type's entry for a provider's ``get_provider_info()``.

    Airflow registers custom connection types only from an installed provider package's
    ``connection-types`` list; the DAG repository's provider info should include this entry.
    """
    return {
        "connection-type": HubSpotHook.conn_type,
        "hook-class-name": f"{HubSpotHook.__module__}.{HubSpotHook.__qualname__}",
        "hook-name": HubSpotHook.hook_name,
        "conn-fields": CONN_FIELDS,
        "ui-field-behaviour": {
            "hidden-fields": UI_FIELD_BEHAVIOUR["hidden_fields"],
            "relabeling": UI_FIELD_BEHAVIOUR["relabeling"],
            "placeholders": UI_FIELD_BEHAVIOUR["placeholders"],
        },
    }


class HubSpotHook(BaseHook):
    """Build a :class:`HubSpotConnector` from the ``hubspot`` connection.

    :param on_deprecation: called once per endpoint when HubSpot signals a deprecation (the
        client logs it in any case); an operator can route it to an alert.
    """

    conn_name_attr = "hubspot_conn_id"
    default_conn_name = "hubspot"
    conn_type = "hubspot"
    hook_name = "HubSpot (donor-sync)"

    def __init__(
        self,
        hubspot_conn_id: str = default_conn_name,
        *,
        on_deprecation: Callable[[DeprecationNotice], None] | None = None,
    ) -> None:
        super().__init__()
        self.hubspot_conn_id = hubspot_conn_id
        self.on_deprecation = on_deprecation

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Return the form's extra fields as wtforms widgets (Airflow < 3.2 UIs; needs FAB)."""
        from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
        from wtforms import IntegerField, PasswordField, StringField

        widgets: dict[str, Any] = {}
        for name, spec in CONN_FIELDS.items():
            types = spec["schema"]["type"]
            if spec["schema"].get("format") == "password":
                widgets[name] = PasswordField(spec["label"], widget=BS3PasswordFieldWidget())
            elif "integer" in types:
                widgets[name] = IntegerField(spec["label"], widget=BS3TextFieldWidget())
            else:
                widgets[name] = StringField(
                    spec["label"], widget=BS3TextFieldWidget(), default=spec["schema"].get("default")
                )
        return widgets

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Return which standard fields the form hides and how it relabels them."""
        return {key: (list(v) if isinstance(v, list) else dict(v)) for key, v in UI_FIELD_BEHAVIOUR.items()}

    def get_connector(self) -> HubSpotConnector:
        """Return a connector for the connection (token, base URL, version, keys, limits)."""
        conn = self.get_connection(self.hubspot_conn_id)
        return connector_from_connection(
            conn.host, conn.login, conn.password, conn.extra_dejson, on_deprecation=self.on_deprecation
        )

    def get_conn(self) -> HubSpotConnector:
        """Return :meth:`get_connector` (Airflow's generic accessor)."""
        return self.get_connector()

    def test_connection(self) -> tuple[bool, str]:
        """Make one authenticated call; report the daily allowance left (never the token)."""
        try:
            quota = self.get_connector().check()
        except (DeliveryError, ConfigError) as exc:
            return False, str(exc)
        if quota is None or quota.remaining is None:
            return True, "Connected to HubSpot."
        return True, f"Connected to HubSpot; {quota.remaining} of {quota.limit} daily API calls left."
