"""quality.yaml: the shipped file loads, errors name the file, line and field; the docs page is current."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
from click.testing import CliRunner

from donor_sync.cli import main
from donor_sync.errors import ConfigError
from donor_sync.observability.quality.doc import doc_path, render
from donor_sync.observability.quality.settings import (
    DONOR_FIELDS,
    GIFT_FIELDS,
    DonorField,
    GiftField,
    load_quality_settings,
)

GOOD = """version: 1
completeness:
  donors:
    email: {weight: 3, level: required}
    name: {weight: 2}
  gifts:
    designation: {weight: 1}
consent: {purpose: marketing, channel: email, explicit: [opt_in, opt_out]}
score: {completeness: 1, validity: 1, duplicate_rate: 0.5, consent_coverage: 0.5}
"""
WEIGHTS = "{completeness: 1, validity: 1, duplicate_rate: 0.5, consent_coverage: 0.5}"


def _load(tmp_path: Path, text: str) -> None:
    path = tmp_path / "quality.yaml"
    path.write_text(text, encoding="utf-8")
    load_quality_settings(path)


def test_the_shipped_file_loads() -> None:
    settings = load_quality_settings()
    assert "email" in settings.completeness.donors
    assert settings.consent.explicit == ["opt_in", "opt_out"]
    assert (
        sum(settings.score.of(c) for c in ("completeness", "validity", "duplicate_rate", "consent_coverage"))
        > 0
    )


def test_the_field_names_a_file_may_use_are_the_catalogue_the_sql_is_built_from() -> None:
    assert set(typing.get_args(DonorField)) == set(DONOR_FIELDS)
    assert set(typing.get_args(GiftField)) == set(GIFT_FIELDS)


def test_a_valid_file_loads(tmp_path: Path) -> None:
    _load(tmp_path, GOOD)


@pytest.mark.parametrize(
    ("change", "line", "field"),
    [
        pytest.param(("    name: {weight: 2}", "    nmae: {weight: 2}"), 5, "completeness.donors.nmae",
                     id="unknown-field"),
        pytest.param(("{weight: 3, level: required}", "{weight: 0}"), 4, "completeness.donors.email.weight",
                     id="zero-weight"),
        pytest.param(("level: required", "level: must"), 4, "completeness.donors.email.level",
                     id="bad-level"),
        pytest.param(("designation: {weight: 1}", "email: {weight: 1}"), 7, "completeness.gifts.email",
                     id="donor-field-on-gifts"),
        pytest.param(("purpose: marketing", "purpose: newsletters"), 8, "consent.purpose", id="bad-purpose"),
        pytest.param(("[opt_in, opt_out]", "[opt_in, opt_in]"), 8, "consent.explicit", id="status-twice"),
        pytest.param((WEIGHTS, WEIGHTS.replace("1", "0").replace("0.5", "0")), 9, "score",
                     id="no-weight-above-zero"),
        pytest.param(("score:", "scores:"), 9, "scores", id="misspelt-section"),
        pytest.param(("version: 1", "version: 2"), 1, "version", id="unknown-version"),
    ],
)  # fmt: skip
def test_errors_name_the_file_the_line_and_the_field(
    tmp_path: Path, change: tuple[str, str], line: int, field: str
) -> None:
    old, new = change
    assert old in GOOD
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, GOOD.replace(old, new, 1))
    message = str(caught.value)
    assert str(tmp_path / "quality.yaml") in message
    assert f"line {line}, {field}" in message


def test_a_file_that_is_not_yaml_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"quality\.yaml: cannot read"):
        _load(tmp_path, "completeness: [unclosed\n")


def test_the_docs_page_is_current() -> None:
    assert doc_path().read_text(encoding="utf-8") == render(), "run `donor-sync health docs --write`"


def test_the_docs_command_checks_and_renders_the_page() -> None:
    runner = CliRunner()
    checked = runner.invoke(main, ["health", "docs", "--check"])
    assert checked.exit_code == 0, checked.output
    assert "is current" in checked.output
    printed = runner.invoke(main, ["health", "docs"])
    assert printed.exit_code == 0
    assert printed.output == render()
    assert "| `postal_address` |" in printed.output
