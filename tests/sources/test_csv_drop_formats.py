"""Export format files: the shipped formats, and errors that name the file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from donor_sync.cli import main
from donor_sync.errors import ConfigError
from donor_sync.sources.csv_drop import formats_dir, load_format, load_formats
from donor_sync.standardize.intake import INTAKE_FIELDS
from sandbox.datagen.sources import BANK_HEADER, EVENT_HEADER

VALID = """\
name: {name}
source: bank_cheque
recognize:
  filenames: ["*.csv"]
encoding: cp1252
date_format: "%m/%d/%Y"
timezone: America/New_York
columns:
  amount: Amount
  email: Email
"""


def test_shipped_formats_map_only_intake_fields_to_headers_the_exports_have() -> None:
    formats = load_formats(formats_dir())
    assert set(formats) == {"bank_cheque_export", "event_platform_export"}
    for fmt, header in (
        (formats["bank_cheque_export"], BANK_HEADER),
        (formats["event_platform_export"], EVENT_HEADER),
    ):
        assert set(fmt.columns) <= INTAKE_FIELDS
        assert fmt.missing_headers(header) == []
        assert fmt.id_column in header
    assert formats["bank_cheque_export"].source == "bank_cheque"
    assert formats["bank_cheque_export"].thousands == ","
    assert formats["event_platform_export"].source == "event_platform"


def _write(tmp_path: Path, text: str, name: str = "my_export") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("change", "line", "field", "message"),
    [
        pytest.param(
            ("  email: Email", "  emial: Email"),
            10,
            "columns.emial",
            "did you mean 'email'",
            id="intake-typo",
        ),
        pytest.param(
            ("  email: Email", '  email: ""'), 10, "columns.email", "at least 1 character", id="blank-header"
        ),
        pytest.param(
            ("encoding: cp1252", "encoding: utf-16"), 5, "encoding", "not ASCII-compatible", id="utf16"
        ),
        pytest.param(
            ("encoding: cp1252", "encoding: klingon"), 5, "encoding", "unknown encoding", id="codec"
        ),
        pytest.param(
            ("timezone: America/New_York", "timezone: Mars/Olympus"), 7, "timezone", "IANA", id="zone"
        ),
        pytest.param(
            ('date_format: "%m/%d/%Y"', 'date_format: "%Q"'), 6, "date_format", "strptime", id="date"
        ),
        pytest.param(("source: bank_cheque", "source: Bank Cheque"), 2, "source", "snake case", id="source"),
        pytest.param(
            ('  filenames: ["*.csv"]', "  filenames: []"), 3, "recognize", "filenames", id="recognize"
        ),
        pytest.param(("columns:", "colums:"), 8, "colums", "Extra inputs", id="unknown-key"),
    ],
)
def test_config_errors_name_file_line_and_field(
    tmp_path: Path, change: tuple[str, str], line: int, field: str, message: str
) -> None:
    text = VALID.format(name="my_export")
    assert change[0] in text
    path = _write(tmp_path, text.replace(change[0], change[1]))
    with pytest.raises(ConfigError) as caught:
        load_format(path)
    assert f"{path}: line {line}: {field}: " in str(caught.value)
    assert message in str(caught.value)


def test_valid_format_loads(tmp_path: Path) -> None:
    fmt = load_format(_write(tmp_path, VALID.format(name="my_export")))
    assert fmt.columns == {"amount": "Amount", "email": "Email"}
    assert (fmt.delimiter, fmt.quotechar, fmt.decimal, fmt.thousands) == (",", '"', ".", None)


def test_name_must_match_file_and_keys_may_not_repeat(tmp_path: Path) -> None:
    path = _write(tmp_path, VALID.format(name="other_name") + "timezone: UTC\n")
    with pytest.raises(ConfigError) as caught:
        load_format(path)
    assert f"{path}: line 11: timezone: written twice" in str(caught.value)
    assert f"{path}: line 1: name: 'other_name' must equal the file name 'my_export'" in str(caught.value)


def test_invalid_yaml_names_its_line(tmp_path: Path) -> None:
    path = _write(tmp_path, VALID.format(name="my_export") + "columns: [unclosed\n")
    with pytest.raises(ConfigError, match=rf"{path}: line \d+: invalid YAML"):
        load_format(path)


def test_folder_load_reports_every_bad_file(tmp_path: Path) -> None:
    _write(tmp_path, VALID.format(name="good_one"), "good_one")
    _write(tmp_path, VALID.format(name="bad_one").replace("cp1252", "nope"), "bad_one")
    _write(tmp_path, VALID.format(name="bad_two").replace("America/New_York", "Nowhere"), "bad_two")
    with pytest.raises(ConfigError) as caught:
        load_formats(tmp_path)
    text = str(caught.value)
    assert "bad_one.yaml: line 5: encoding" in text
    assert "bad_two.yaml: line 7: timezone" in text
    assert "good_one" not in text


def test_cli_validate_and_formats(tmp_path: Path) -> None:
    runner = CliRunner()
    good = _write(tmp_path, VALID.format(name="my_export"))
    bad = _write(
        tmp_path, VALID.format(name="your_export").replace("  email: Email", "  e_mail: Email"), "your_export"
    )
    ok = runner.invoke(main, ["csv", "validate", str(good)])
    assert ok.exit_code == 0, ok.output
    assert "ok:" in ok.output
    failed = runner.invoke(main, ["csv", "validate", str(good), str(bad)])
    assert failed.exit_code == 1
    assert f"{bad}: line 10: columns.e_mail" in failed.output
    listed = runner.invoke(main, ["csv", "formats"])
    assert listed.exit_code == 0, listed.output
    assert "gift_source_id <- Reference" in listed.output
    assert "bank_cheque_export  (source bank_cheque)" in listed.output


def test_docs_reference_is_generated_from_the_models() -> None:
    from donor_sync.sources.csv_drop.docs import docs_page, render_page

    page = docs_page().read_text(encoding="utf-8")
    assert render_page(page) == page, "run python -m donor_sync.sources.csv_drop.docs"
    assert "| `encoding_error_limit` | `0.1` |" in page
