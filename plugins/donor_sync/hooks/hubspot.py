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
from donor_sync.provider_info import HUBSPOT

__all__ = ["CONN_FIELDS", "UI_FIELD_BEHAVIOUR", "HubSpotHook", "connection_type_info"]

log = logging.getLogger(__name__)


#: The connection form's extra fields, in Airflow's declarative ``conn-fields`` form (3.2+), kept
#: in :mod:`donor_sync.provider_info`, which Airflow reads without importing the hooks.
CONN_FIELDS: dict[str, dict[str, Any]] = HUBSPOT["conn-fields"]

#: Which standard fields the form shows, and under which names (the hook methods' spelling).
UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    key.replace("-", "_"): value for key, value in HUBSPOT["ui-field-behaviour"].items()
}


def connection_type_info() -> dict[str, Any]:
    """Return this connection type's entry for a provider's ``get_provider_info()``."""
    return HUBSPOT


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
