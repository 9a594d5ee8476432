"""A destination an organization does not use is switched off in delivery.yaml, not by a failing task."""

from __future__ import annotations

from pathlib import Path

import pytest

from donor_sync.delivery.settings import destination_enabled, load_delivery_settings
from donor_sync.errors import ConfigError


def test_destinations_are_enabled_unless_delivery_yaml_says_otherwise(tmp_path: Path) -> None:
    path = tmp_path / "delivery.yaml"
    path.write_text("destinations:\n  braze:\n    enabled: false\n", encoding="utf-8")
    settings = load_delivery_settings(path)
    assert destination_enabled("braze", settings) is False
    assert destination_enabled("mailchimp", settings) is True
    assert all(destination_enabled(d) for d in ("salesforce", "hubspot", "mailchimp", "braze"))


def test_a_misspelt_switch_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "delivery.yaml"
    path.write_text("destinations:\n  braze:\n    enable: false\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="enable"):
        load_delivery_settings(path)
