"""The rules file: errors name file, line and field; the generated reference is current."""

from __future__ import annotations

from pathlib import Path

import pytest

from donor_sync.errors import ConfigError
from donor_sync.identity import default_rules_path, load_rules
from donor_sync.identity.rules_doc import doc_path, render


def _broken(tmp_path: Path, old: str, new: str, at: str | None) -> tuple[Path, int]:
    text = default_rules_path().read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "dedup.yaml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path, text[: text.index(at or old)].count("\n") + 1


@pytest.mark.parametrize(
    ("old", "new", "field", "says", "at"),
    [
        pytest.param(
            "max_block_size: 200",
            "max_block_size: 1",
            "blocking.max_block_size",
            "greater than or equal",
            None,
            id="cap",
        ),
        pytest.param(
            "{name: email, columns: [email]}",
            "{name: email, columns: [emial]}",
            "blocking.passes.0.columns",
            "unknown column 'emial'",
            None,
            id="unknown-column",
        ),
        pytest.param(
            "auto_merge: 0.99",
            "auto_merge: 1.5",
            "thresholds.auto_merge",
            "less than 1",
            None,
            id="threshold",
        ),
        pytest.param(
            '      - {type: "null"}\n      - {type: exact, term_frequency: true, m: 0.80',
            "      - {type: exact, term_frequency: true, m: 0.80",
            "comparisons.0",
            "first level must be a null level",
            "  - name: first_name",
            id="null-first",
        ),
        pytest.param(
            "type: jaro_winkler, threshold: 0.88",
            "type: jaro_winkler",
            "threshold",
            "Field required",
            None,
            id="missing-param",
        ),
        pytest.param(
            "type: nickname", "type: nicknam", "comparisons.0.levels.2", "tag", None, id="unknown-level"
        ),
    ],
)
def test_errors_name_file_line_and_field(
    tmp_path: Path, old: str, new: str, field: str, says: str, at: str | None
) -> None:
    path, line = _broken(tmp_path, old, new, at)
    with pytest.raises(ConfigError) as caught:
        load_rules(path)
    message = str(caught.value)
    assert str(path) in message
    assert field in message
    assert says in message
    assert f"line {line}," in message


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_rules(tmp_path / "missing.yaml")


def test_generated_reference_is_current() -> None:
    committed = doc_path().read_text(encoding="utf-8")
    assert committed == render(), (
        "docs/dedup-rules.md is stale: run `python -m donor_sync.identity.rules_doc`"
    )
    for name in ("max_block_size", "term_frequency", "cannot_link_below", "first_formal"):
        assert name in committed
