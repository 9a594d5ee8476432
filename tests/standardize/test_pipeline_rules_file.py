"""The rules file: errors name the file, the line and the field; the generated reference is current."""

from __future__ import annotations

from pathlib import Path

import pytest

from donor_sync.errors import ConfigError
from donor_sync.standardize import rules_doc
from donor_sync.standardize.settings import default_rules_path, load_settings


def _broken(tmp_path: Path, old: str, new: str) -> tuple[Path, int]:
    text = default_rules_path().read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "standardize.yaml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    line = text[: text.index(old)].count("\n") + 1
    return path, line


@pytest.mark.parametrize(
    ("old", "new", "field", "says"),
    [
        pytest.param(
            "  invalid_email: quarantine",
            "  invalid_email: explode",
            "issue_actions.invalid_email",
            "quarantine",
            id="unknown-action",
        ),
        pytest.param(
            "  first_name: 100",
            "  first_nmae: 100",
            "max_lengths",
            "not intake fields: first_nmae",
            id="unknown-intake-field",
        ),
        pytest.param(
            "    same_name_similarity: 80",
            "    same_name_similarity: 180",
            "review_flags.email_shared.same_name_similarity",
            "less than or equal to 100",
            id="out-of-range",
        ),
        pytest.param(
            "    stripe: auto",
            "    stripe: sometimes",
            "test_payments.expect_livemode.stripe",
            "auto",
            id="bad-mode",
        ),
        pytest.param(
            "  default_region: US",
            "  default_region: usa",
            "defaults.default_region",
            "pattern",
            id="bad-region",
        ),
    ],
)
def test_errors_name_file_line_and_field(tmp_path: Path, old: str, new: str, field: str, says: str) -> None:
    path, line = _broken(tmp_path, old, new)
    if field == "max_lengths":  # a whole-mapping check: the line of the mapping's key
        line = default_rules_path().read_text(encoding="utf-8").split("\n").index("max_lengths:") + 1
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    message = str(caught.value)
    assert str(path) in message
    assert f"line {line}, {field}" in message
    assert says in message


def test_unreadable_yaml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "standardize.yaml"
    path.write_text("defaults: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=f"{path}: cannot read"):
        load_settings(path)


def test_the_shipped_file_is_valid_and_allows_the_sandboxs_example_domains() -> None:
    settings = load_settings()
    assert "example" in settings.defaults.allow_special_use_domains
    assert settings.action_for("invalid_email", "email", "error") == "quarantine"
    assert settings.action_for("future_timestamp", "birth_date", "error") == "drop_value"
    assert settings.action_for("some_new_code", "email", "warning") == "flag"


def test_the_generated_reference_is_current() -> None:
    committed = rules_doc.doc_path().read_text(encoding="utf-8")
    assert committed == rules_doc.render(), (
        "docs/standardize-rules.md is stale: run `python -m donor_sync.standardize.rules_doc`"
    )
    for name in ("issue_actions", "same_name_similarity", "expect_livemode", "key_by_platform_id"):
        assert name in committed
