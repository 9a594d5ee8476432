"""`donor-sync mapping validate --describe` against the CRMs' own metadata, through the shipped
connection types (the emulators' describe and properties endpoints)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from donor_sync.cli import main
from sandbox.common.runner import Sandbox
from tests.integration.crm import crm_connections, use_connections


def test_the_shipped_mappings_pass_against_live_metadata_and_a_bad_picklist_fails(
    start_sandbox: Callable[..., Sandbox], db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    box = start_sandbox("salesforce", "hubspot")
    use_connections(monkeypatch, crm_connections(box))
    monkeypatch.setenv("DONOR_SYNC_DB_URL", db_url)
    # The HubSpot portal needs donor-sync's unique id properties (the push task creates them).
    from donor_sync.hooks.destinations import connector_for

    connector_for("hubspot")
    result = CliRunner().invoke(main, ["mapping", "validate", "--describe", "--refresh"])
    assert result.exit_code == 0, result.output
    # A translation to a value the org's picklist lacks is reported with file, line and field.
    shipped = (
        Path(__file__).resolve().parents[2] / "include" / "mappings" / "destinations" / "salesforce.yaml"
    )
    text = shipped.read_text(encoding="utf-8")
    assert "    month: Monthly\n" in text
    bad = tmp_path / "salesforce.yaml"
    bad.write_text(text.replace("    month: Monthly\n", "    month: Fortnightly\n"), encoding="utf-8")
    failed = CliRunner().invoke(main, ["mapping", "validate", str(bad), "--describe"])
    assert failed.exit_code == 1, failed.output
    assert re.search(r"salesforce\.yaml:\d+: recurring_donation\.npe03__Installment_Period__c", failed.output)
    assert "Fortnightly" in failed.output
