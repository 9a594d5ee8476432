"""delivery.yaml: the shipped file loads, destinations override field by field, errors name the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from donor_sync.delivery.settings import default_delivery_path, load_delivery_settings
from donor_sync.errors import ConfigError


def test_shipped_file_loads_with_hubspot_merging_by_api() -> None:
    settings = load_delivery_settings()
    assert settings.for_destination("hubspot").merges.method == "api"
    assert settings.for_destination("salesforce").merges.method == "crm_task"
    assert settings.for_destination("mailchimp").blast_radius.max_destructive_share == 0.05


def test_destination_keys_override_the_defaults_field_by_field(tmp_path: Path) -> None:
    path = tmp_path / "delivery.yaml"
    path.write_text(
        "blast_radius:\n  max_destructive_share: 0.1\n  min_records: 50\n"
        "destinations:\n  braze:\n    blast_radius:\n      min_records: 1000\n"
        "push:\n  lease_seconds: 600\n"  # the push engine's key: not this loader's business
    )
    settings = load_delivery_settings(path)
    braze = settings.for_destination("braze").blast_radius
    assert (braze.max_destructive_share, braze.min_records, braze.max_overwrite_share) == (0.1, 1000, 0.5)
    other = settings.for_destination("hubspot").blast_radius
    assert (other.max_destructive_share, other.min_records) == (0.1, 50)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "blast_radius:\n  max_destructive_share: 2\n",
            r"line 2, blast_radius\.max_destructive_share",
            id="share",
        ),
        pytest.param("merges:\n  method: email\n", r"line 2, merges\.method", id="method"),
        pytest.param(
            "destinations:\n  hubspot:\n    blast_radius:\n      max_share: 0.1\n",
            r"line 4, destinations\.hubspot\.blast_radius\.max_share",
            id="typo",
        ),
        pytest.param("destinations:\n  HubSpot: {}\n", r"destinations\.HubSpot", id="name"),
    ],
)
def test_errors_name_file_line_and_field(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "delivery.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=expected) as err:
        load_delivery_settings(path)
    assert str(path) in str(err.value)


def test_an_explicit_missing_file_is_an_error_but_the_default_may_be_absent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_delivery_settings(tmp_path / "missing.yaml")
    monkeypatch.setenv("DONOR_SYNC_HOME", str(tmp_path))
    assert not default_delivery_path().exists()
    assert load_delivery_settings().for_destination("hubspot").merges.method == "crm_task"
