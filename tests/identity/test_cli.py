"""``donor-sync dedupe`` end to end on small CSVs, and its errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from donor_sync.cli import main


@pytest.fixture
def export(tmp_path: Path, donors: pd.DataFrame) -> Path:
    frame = donors.rename(
        columns={"record_id": "Donor ID", "first_name": "First", "last_name": "Last", "email": "E-mail"}
    ).drop(columns=["person"])
    path = tmp_path / "export.csv"
    frame.to_csv(path, index=False)
    return path


def test_dedupe_writes_one_row_per_record(tmp_path: Path, export: Path) -> None:
    out = tmp_path / "clusters.csv"
    result = CliRunner().invoke(
        main,
        [
            "dedupe",
            str(export),
            "--out",
            str(out),
            "--id",
            "Donor ID",
            "--map",
            "First=first_name",
            "--map",
            "Last=last_name",
            "--map",
            "E-mail=email",
        ],
    )
    assert result.exit_code == 0, result.output
    clusters = pd.read_csv(out, dtype=str, keep_default_na=False).set_index("record_id")
    assert list(clusters.columns) == ["cluster_id", "band", "score"]
    assert len(clusters) == 9
    assert clusters.loc["r1", "cluster_id"] == clusters.loc["r2", "cluster_id"]
    assert clusters.loc["r4", "cluster_id"] != clusters.loc["r1", "cluster_id"]
    assert clusters.loc["r9", "band"] in {"", "keep_apart"}
    assert "9 records" in result.output
    # counts only: no donor's name or email reaches the terminal
    assert "Smithers" not in result.output
    assert "@" not in result.output.replace(str(out), "")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        pytest.param(
            ["--map", "Nope=first_name"],
            "column 'Nope' (mapped to first_name) not found",
            id="missing-column",
        ),
        pytest.param(["--map", "First=given"], "unknown field 'given'", id="unknown-field"),
        pytest.param(["--map", "First"], "expected SOURCE_COLUMN=FIELD", id="bad-map"),
        pytest.param(["--id", "Missing"], "id column 'Missing' not found", id="missing-id"),
    ],
)
def test_bad_input_is_one_error_line(tmp_path: Path, export: Path, args: list[str], says: str) -> None:
    result = CliRunner().invoke(main, ["dedupe", str(export), "--out", str(tmp_path / "o.csv"), *args])
    assert result.exit_code == 1
    assert says in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_bad_rules_file_names_file_and_line(tmp_path: Path, export: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("blocking:\n  passes: []\ncomparisons: []\n", encoding="utf-8")
    result = CliRunner().invoke(
        main, ["dedupe", str(export), "--out", str(tmp_path / "o.csv"), "--rules", str(rules)]
    )
    assert result.exit_code == 1
    assert str(rules) in result.output
    assert "line 2, blocking.passes" in result.output


def test_unreadable_input_and_duplicate_ids(tmp_path: Path, export: Path) -> None:
    missing = CliRunner().invoke(
        main, ["dedupe", str(tmp_path / "none.csv"), "--out", str(tmp_path / "o.csv")]
    )
    assert missing.exit_code == 1
    assert "none.csv: cannot read" in missing.output
    dup = tmp_path / "dup.csv"
    dup.write_text("id,first_name\n1,Ann\n1,Bob\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["dedupe", str(dup), "--out", str(tmp_path / "o.csv"), "--id", "id"])
    assert result.exit_code == 1
    assert "line 3: id column 'id' repeats an earlier id" in result.output
