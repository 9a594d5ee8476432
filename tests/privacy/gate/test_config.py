"""The policy and profile files: validation errors name the file and field; the shipped files
agree with the mappings; the generators and helpers; docs/privacy.md is current."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from donor_sync.cli import main
from donor_sync.delivery.mapping import load_destination
from donor_sync.errors import ConfigError
from donor_sync.paths import include_dir
from donor_sync.privacy.gate import load_gate, load_policy
from donor_sync.privacy.gate.facts import ConsentState, DonorFacts
from donor_sync.privacy.profiles import (
    check_profile,
    docs,
    generalize,
    load_profile,
    profile_for,
    pseudonymize,
)
from donor_sync.privacy.profiles.model import Bands, Prefix, Profile
from tests.privacy.gate.support import KEYS, POLICY, renderer


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "field"),
    [
        pytest.param(
            "destinations:\n  esp:\n    region: us\n    sharing: false\n    colour: red\n",
            "destinations.esp.colour",
            id="unknown-key",
        ),
        pytest.param(
            "destinations:\n  esp:\n    region: us\n", "destinations.esp.sharing", id="missing-sharing"
        ),
        pytest.param(
            "destinations:\n  esp:\n    region: us\n    sharing: false\n"
            "    requires: [{purpose: marketing, channel: fax, status_in: [opt_in]}]\n",
            "destinations.esp.requires.0.channel",
            id="bad-channel",
        ),
        pytest.param(
            "destinations:\n  esp:\n    region: us\n    sharing: false\n    suppressions: [asleep]\n",
            "destinations.esp.suppressions.0",
            id="bad-reason",
        ),
        pytest.param(
            "destinations:\n  esp:\n    region: us\n    sharing: false\n"
            "    fields_requiring_consent: [{fields: [shoe_size], purpose: marketing, channel: sms,"
            " status_in: [opt_in]}]\n",
            "destinations.esp.fields_requiring_consent.0.fields",
            id="unknown-field",
        ),
        pytest.param(
            "destinations: {}\nresidency:\n  regions:\n    eu: [DE, NO]\n",
            "residency.regions.eu.1",
            id="yaml-norway",
        ),
    ],
)
def test_policy_errors_name_file_line_and_field(tmp_path: Path, text: str, field: str) -> None:
    path = _write(tmp_path, "destinations.yaml", text)
    with pytest.raises(ConfigError) as caught:
        load_policy(path)
    assert str(path) in str(caught.value)
    assert field in str(caught.value)
    assert "line " in str(caught.value)


def test_a_destination_without_policy_receives_nothing() -> None:
    with pytest.raises(ConfigError, match=r"destinations\.mandrill: no privacy policy"):
        load_gate("mandrill", policy=load_policy())


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("destination: esp\nuse_case: x\nkinds:\n  donor:\n    exclude: [shoe_size]\n", "kinds"),
        (
            "destination: esp\nuse_case: x\nkinds:\n  donor:\n    generalize: {birth_date: decade}\n",
            "birth_date",
        ),
        (
            "destination: esp\nuse_case: x\nkinds:\n  donor:\n"
            "    exclude: [phone]\n    pseudonymize: [phone]\n",
            "donor",
        ),
        ("destination: esp\nkinds: {}\n", "use_case"),
        ("destination: esp\nuse_case: x\nkinds:\n  pets: {}\n", "kinds.pets"),
    ],
)
def test_profile_errors_name_file_and_field(tmp_path: Path, text: str, field: str) -> None:
    path = _write(tmp_path, "esp.yaml", text)
    with pytest.raises(ConfigError) as caught:
        load_profile(path)
    assert str(path) in str(caught.value)
    assert field in str(caught.value)


def test_a_profile_must_agree_with_its_mapping() -> None:
    mapping = load_destination("salesforce")
    bad = Profile.model_validate(
        {
            "destination": "salesforce",
            "use_case": "x",
            "kinds": {
                "donor": {
                    "exclude": ["email"],
                    "pseudonymize": ["donor_id"],
                    "generalize": {"is_deceased": "year"},
                },
                "gift": {"generalize": {"gift_date": "year"}},
            },
        }
    )
    problems = [str(p) for p in check_profile(bad, mapping)]
    assert any(p.startswith("kinds.donor.exclude: email is excluded") for p in problems)
    assert any("kinds.donor.pseudonymize: donor_id is a record key" in p for p in problems)
    assert any("is_deceased feeds contact.npsp__Deceased__c of type boolean" in p for p in problems)
    assert any(
        "gift_date feeds opportunity.CloseDate of type date, which cannot hold a year" in p for p in problems
    )
    with pytest.raises(ConfigError, match="email is excluded"):
        load_gate("salesforce", renderer("esp_test"), policy=load_policy(), profile=bad)


def test_shipped_policy_and_profiles_agree_with_the_mappings() -> None:
    policy = load_policy()
    for destination in ("salesforce", "hubspot", "mailchimp"):
        assert destination in policy.destinations
        assert check_profile(profile_for(destination), load_destination(destination)) == []
    result = CliRunner().invoke(main, ["privacy", "profiles", "validate"])
    assert result.exit_code == 0, result.output
    profiles = len(list((include_dir() / "mappings" / "privacy" / "profiles").glob("*.yaml")))
    assert f"{profiles} profile(s) valid" in result.output


def test_validate_reports_a_bad_profile(tmp_path: Path) -> None:
    path = _write(
        tmp_path, "p.yaml", "destination: salesforce\nuse_case: x\nkinds:\n  donor:\n    exclude: [email]\n"
    )
    result = CliRunner().invoke(main, ["privacy", "profiles", "validate", str(path)])
    assert result.exit_code == 1
    assert f"{path}: kinds.donor.exclude: email is excluded" in result.output


def test_generalizers_and_pseudonyms() -> None:
    assert generalize("year", date(1990, 7, 4)) == 1990
    assert generalize(Prefix(prefix=3), " SW1Y 4JH") == "SW1"
    bands = Bands(bands=[Decimal(100), Decimal(1000)])
    assert [generalize(bands, v) for v in (Decimal("5"), Decimal("100"), Decimal("999.99"), 5000)] == [
        "<100",
        "100-1000",
        "100-1000",
        "1000+",
    ]
    assert generalize("year", None) is None
    ring = KEYS.ring("pseudonym")
    assert ring is not None
    assert pseudonymize(ring, " Ada@Example.org ") == ring.hmac_hex("ada@example.org")
    assert pseudonymize(ring, "") is None
    assert pseudonymize(ring, None) is None


def test_consent_on_channel_all_counts_and_the_later_choice_wins() -> None:
    facts = DonorFacts(
        "d",
        consent=[
            ConsentState("marketing", "email", "opt_in", "2025-01-01T00:00:00+00:00"),
            ConsentState("marketing", "all", "opt_out", "2025-02-01T00:00:00+00:00"),
            ConsentState("sharing", "all", "opt_in", "2025-01-01T00:00:00+00:00"),
            ConsentState("sharing", "all", "opt_out", "2025-01-01T00:00:00+00:00"),
        ],
    )
    assert facts.status("marketing", "email") == "opt_out"
    assert facts.status("marketing", "sms") == "opt_out"
    assert facts.status("fundraising", "email") is None
    assert facts.status("sharing", "all") == "opt_out", "an opt-out wins a tie"
    assert POLICY.residency.region_of_country("de") == "eu"
    assert POLICY.residency.region_of_country("US") == "us"
    assert POLICY.residency.allowed(None, "us")
    assert not POLICY.residency.allowed("eu", "us")


def test_generated_privacy_map_is_current() -> None:
    committed = docs.doc_path().read_text(encoding="utf-8")
    assert committed == docs.render(), "docs/privacy.md is stale: run `donor-sync privacy docs --write`"
    for text in (
        "## salesforce",
        "HasOptedOutOfEmail",
        "only with consent fundraising/phone",
        "## Data residency",
    ):
        assert text in committed
