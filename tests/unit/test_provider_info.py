"""donor-sync registers its connection types with Airflow through the provider entry point.

Airflow lists a custom connection type only when an installed distribution declares it in its
provider info (``make venv`` installs this project editable, so the entry point exists); these
tests ask Airflow's own ProvidersManager, in process, what it found.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import airflow
import jsonschema
import pytest
from airflow.providers_manager import ProvidersManager
from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime
from packaging.utils import canonicalize_name

from donor_sync.delivery.connectors.hubspot import settings_from_connection as hubspot_settings
from donor_sync.delivery.connectors.hubspot.factory import token_source
from donor_sync.hooks import hubspot, salesforce_npsp
from donor_sync.provider_info import PACKAGE_NAME, get_provider_info

AIRFLOW_DIR = Path(airflow.__file__).parent
HOOKS = {
    "salesforce_npsp": "donor_sync.hooks.salesforce_npsp.SalesforceNpspHook",
    "hubspot": "donor_sync.hooks.hubspot.HubSpotHook",
}


@pytest.fixture(scope="module")
def manager() -> ProvidersManager:
    return ProvidersManager()


def test_provider_info_passes_airflows_schema_and_names_the_installed_distribution() -> None:
    info = get_provider_info()
    schema = json.loads((AIRFLOW_DIR / "provider_info.schema.json").read_text())
    jsonschema.validate(info, schema)
    points = [
        ep
        for ep in metadata.entry_points(group="apache_airflow_provider")
        if ep.value == "donor_sync.provider_info:get_provider_info"
    ]
    assert len(points) == 1, "the project is installed (make venv) with its provider entry point"
    dist = metadata.distribution(PACKAGE_NAME)
    # ProvidersManager refuses a provider whose package-name differs from its distribution's.
    assert info["package-name"] == canonicalize_name(dist.metadata["Name"])
    assert info["versions"] == [dist.version]
    assert points[0].load()() == info


def test_provider_info_returns_fresh_copies_of_the_hooks_declarations() -> None:
    first = get_provider_info()
    # The hooks keep their own copy of the form (older Airflow UIs ask the hook): the two agree.
    assert first["connection-types"] == [
        salesforce_npsp.CONNECTION_TYPE_INFO,
        hubspot.connection_type_info(),
    ]
    first["connection-types"][0]["conn-fields"].clear()
    first["connection-types"][1]["ui-field-behaviour"]["relabeling"].clear()
    again = get_provider_info()
    assert again["connection-types"][0]["conn-fields"] == salesforce_npsp.CONNECTION_TYPE_INFO["conn-fields"]
    assert (
        again["connection-types"][1]["ui-field-behaviour"]["relabeling"]
        == hubspot.UI_FIELD_BEHAVIOUR["relabeling"]
    )


def test_a_fresh_process_can_import_each_hook_first(tmp_path: Path) -> None:
    # Airflow calls get_provider_info while it loads its configuration, which the first import of
    # a hook module (airflow.sdk) triggers: provider info must not import Airflow or the hooks.
    script = (
        "import sys\n"
        "import donor_sync.provider_info\n"
        "assert not [m for m in sys.modules if m.split('.')[0] == 'airflow'], 'imports airflow'\n"
        "import donor_sync.hooks.salesforce_npsp, donor_sync.hooks.hubspot\n"
        "from airflow.providers_manager import ProvidersManager\n"
        "print(sorted(t for t in ('salesforce_npsp', 'hubspot') if t in ProvidersManager().hooks))\n"
    )
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "['hubspot', 'salesforce_npsp']"


def test_airflow_lists_both_connection_types_with_their_hooks(manager: ProvidersManager) -> None:
    assert PACKAGE_NAME in manager.providers
    listed = {m.connection_type: m for m in manager.iter_connection_type_hook_ui_metadata()}
    for conn_type, hook_class in HOOKS.items():
        assert listed[conn_type].hook_class_name == hook_class
    assert listed["salesforce_npsp"].hook_name == "Salesforce NPSP (donor-sync)"
    assert listed["hubspot"].hook_name == "HubSpot (donor-sync)"
    # The hook Airflow imports for each type is ours, testable, and knows its connection id argument.
    hooks = ProvidersManagerTaskRuntime().hooks
    sf, hs = hooks["salesforce_npsp"], hooks["hubspot"]
    assert sf is not None
    assert hs is not None
    assert (sf.package_name, sf.connection_id_attribute_name, sf.connection_testable) == (
        PACKAGE_NAME,
        "salesforce_conn_id",
        True,
    )
    assert (hs.package_name, hs.connection_id_attribute_name, hs.connection_testable) == (
        PACKAGE_NAME,
        "hubspot_conn_id",
        True,
    )


def test_the_forms_fields_secrets_and_behaviour_reach_airflow(manager: ProvidersManager) -> None:
    widgets = manager._connection_form_widgets_from_metadata
    for conn_type, declared in (
        ("salesforce_npsp", salesforce_npsp.CONNECTION_TYPE_INFO["conn-fields"]),
        ("hubspot", hubspot.CONN_FIELDS),
    ):
        ours = {k: w for k, w in widgets.items() if k.startswith(f"extra__{conn_type}__")}
        assert set(ours) == {f"extra__{conn_type}__{name}" for name in declared}
        assert all(w.package_name == PACKAGE_NAME for w in ours.values())
    # Key material and secrets are masked in the UI and in logs.
    sensitive = {
        k for k, w in widgets.items() if w.is_sensitive and ("salesforce_npsp" in k or "hubspot" in k)
    }
    assert sensitive == {"extra__salesforce_npsp__private_key", "extra__hubspot__client_secret"}
    assert widgets["extra__salesforce_npsp__api_version"].field["value"] == "62.0"
    assert (
        widgets["extra__hubspot__rate_limit_max"].field["schema"]["title"]
        == "Requests per interval (override)"
    )

    behaviours = manager._field_behaviours_from_metadata
    assert behaviours["salesforce_npsp"]["relabeling"]["password"] == "Client secret"
    assert "host" in behaviours["salesforce_npsp"]["hidden_fields"]
    assert behaviours["salesforce_npsp"]["placeholders"]["extra__salesforce_npsp__login_url"] == (
        "https://login.salesforce.com"
    )
    assert behaviours["hubspot"]["relabeling"]["host"] == "API base URL"


@pytest.mark.parametrize("conn_type", ["salesforce_npsp", "hubspot"])
def test_every_field_schema_is_valid_json_schema_and_its_default_fits(conn_type: str) -> None:
    info = next(c for c in get_provider_info()["connection-types"] if c["connection-type"] == conn_type)
    for name, spec in info["conn-fields"].items():
        validator = jsonschema.validators.validator_for(spec["schema"])
        validator.check_schema(spec["schema"])
        assert spec.get("label"), name
        if "default" in spec["schema"]:
            validator(spec["schema"]).validate(spec["schema"]["default"])
            validator(spec["schema"]).validate(None)  # every field may be left empty


# What the form saves, the hook reads: each declared field, stored bare or under the form's
# ``extra__<type>__`` name, changes the settings the hook builds.
_SF_BASE: dict[str, Any] = {"consumer_key": "ck"}
_SF_FIELDS: dict[str, tuple[Any, Callable[[Any], Any], Any]] = {
    "consumer_key": ("ck-2", lambda s: s.consumer_key, "ck-2"),
    "private_key": ("/keys/sf.key", lambda s: (s.auth_flow, s.private_key), ("jwt", "/keys/sf.key")),
    "auth_flow": ("client_credentials", lambda s: s.auth_flow, "client_credentials"),
    "login_url": ("https://acme.my.salesforce.com", lambda s: s.login_url, "https://acme.my.salesforce.com"),
    "instance_url": (
        "https://acme.my.salesforce.com",
        lambda s: s.instance_url,
        "https://acme.my.salesforce.com",
    ),
    "api_version": ("61.0", lambda s: s.api_version, "61.0"),
    "bulk_threshold": (7, lambda s: s.bulk_threshold, 7),
    "quota_reserve": (0.25, lambda s: s.quota_reserve, 0.25),
    "ca_bundle": ("/etc/ca.pem", lambda s: s.verify, "/etc/ca.pem"),
}


@pytest.mark.parametrize("prefixed", [False, True], ids=["bare", "form-prefixed"])
@pytest.mark.parametrize("name", sorted(_SF_FIELDS))
def test_each_salesforce_field_reaches_the_hook_settings(name: str, prefixed: bool) -> None:
    assert set(_SF_FIELDS) == set(salesforce_npsp.CONNECTION_TYPE_INFO["conn-fields"])
    value, read, expected = _SF_FIELDS[name]
    key = f"extra__salesforce_npsp__{name}" if prefixed else name
    extra = {**{k: v for k, v in _SF_BASE.items() if k != name}, key: value}
    settings = salesforce_npsp.settings_from_connection("u@example.org", "secret", None, extra)
    assert read(settings) == expected


_HS_FIELDS: dict[str, tuple[Any, Callable[[Any], Any], Any]] = {
    "api_version": ("2026-03", lambda s: s.api_version, "2026-03"),
    "contact_id_property": ("email", lambda s: s.contact_id_property, "email"),
    "deal_id_property": ("gift_key", lambda s: s.deal_id_property, "gift_key"),
    "daily_quota_reserve": ("5%", lambda s: s.daily_quota_reserve, 0.05),
    "rate_limit_max": ("40", lambda s: s.rate_limit_max, 40),
    "rate_limit_interval_ms": ("1000", lambda s: s.rate_limit_interval_ms, 1000),
    "ca_bundle": ("/etc/ca.pem", lambda s: s.verify, "/etc/ca.pem"),
}


@pytest.mark.parametrize("prefixed", [False, True], ids=["bare", "form-prefixed"])
@pytest.mark.parametrize("name", [*sorted(_HS_FIELDS), "client_secret"])
def test_each_hubspot_field_reaches_the_hook_settings(name: str, prefixed: bool) -> None:
    assert {*_HS_FIELDS, "client_secret"} == set(hubspot.CONN_FIELDS)
    key = f"extra__hubspot__{name}" if prefixed else name
    if name == "client_secret":
        settings = hubspot_settings("https://127.0.0.1:1", {})
        tokens = token_source(settings, "client-id", "refresh-token", {key: "s3cret"})
        assert type(tokens).__name__ == "OAuthRefreshToken", "a client secret switches to the OAuth app flow"
        return
    value, read, expected = _HS_FIELDS[name]
    assert read(hubspot_settings("https://127.0.0.1:1", {key: value})) == expected
