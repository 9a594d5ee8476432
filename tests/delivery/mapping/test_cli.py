"""``donor-sync mapping``: validate (offline and against cached metadata), objects, docs."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from donor_sync.cli import main
from donor_sync.delivery.mapping import DescribeCache, mapping_path, shipped_mapping_paths
from tests.delivery.mapping.conftest import Fetch


@pytest.fixture
def cli() -> CliRunner:
    return CliRunner()


def _copy(tmp_path: Path, destination: str, old: str = "", new: str = "") -> tuple[Path, int]:
    text = mapping_path(destination).read_text(encoding="utf-8")
    if old:
        assert text.count(old) == 1
        text = text.replace(old, new)
    path = tmp_path / f"{destination}.yaml"
    path.write_text(text, encoding="utf-8")
    line = text.count("\n", 0, text.index(new)) + 1 if new else 0
    return path, line


def test_validate_the_shipped_files(cli: CliRunner) -> None:
    result = cli.invoke(main, ["mapping", "validate"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"{len(shipped_mapping_paths())} mapping file(s) valid"


def test_validate_prints_file_line_field_and_exits_1(cli: CliRunner, tmp_path: Path) -> None:
    broken, line = _copy(tmp_path, "hubspot", "from: first_name", "from: given_name")
    good, _ = _copy(tmp_path, "salesforce")
    result = cli.invoke(main, ["mapping", "validate", str(good), str(broken)])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    expected = f"{broken}:{line}: contact.firstname.from: unknown source field 'given_name' for donor rows;"
    assert lines[0].startswith(expected + " known: donor_id,")
    assert lines[-1] == "1 problem(s) in 1 of 2 mapping file(s)"


def test_validate_against_cached_metadata(
    cli: CliRunner,
    db: psycopg.Connection,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    salesforce_fetch: Fetch,
    hubspot_fetch: Fetch,
) -> None:
    monkeypatch.setenv("DONOR_SYNC_DB_URL", db_url)
    for name in ("Account", "Contact", "Opportunity", "npe03__Recurring_Donation__c"):
        DescribeCache(db, "salesforce", salesforce_fetch)(name)
    for name in ("contacts", "deals"):
        DescribeCache(db, "hubspot", hubspot_fetch)(name)
    db.commit()
    ok = cli.invoke(main, ["mapping", "validate", "--describe", "--cache-only"])
    assert ok.exit_code == 0, ok.output
    shipped = len(shipped_mapping_paths())
    assert ok.output.strip() == f"{shipped} mapping file(s) valid and against the destination metadata"
    bad, _ = _copy(tmp_path, "salesforce", "    succeeded: Closed Won", "    succeeded: Won")
    refused = cli.invoke(main, ["mapping", "validate", "--describe", "--cache-only", str(bad)])
    assert refused.exit_code == 1, refused.output
    first = refused.output.splitlines()[0]
    assert first.startswith(f"{bad}:")
    assert ": opportunity.StageName.to: 'Won' is not an active value of Opportunity.StageName;" in first
    offline = bad.read_text(encoding="utf-8")
    assert "to: StageName" in offline.splitlines()[int(first.split(":")[1]) - 1]


def test_validate_against_an_empty_cache_says_what_is_missing(
    cli: CliRunner, db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DONOR_SYNC_DB_URL", db_url)
    path, _ = _copy(tmp_path, "hubspot")
    result = cli.invoke(main, ["mapping", "validate", "--describe", "--cache-only", str(path)])
    assert result.exit_code == 1
    assert f"{path}:" in result.output
    assert "contact.object: cannot read the metadata of contacts: no cached hubspot metadata" in result.output


def test_objects_lists_push_order(cli: CliRunner) -> None:
    result = cli.invoke(main, ["mapping", "objects", "hubspot"])
    assert result.exit_code == 0, result.output
    assert [line.split()[0] for line in result.output.splitlines()] == [
        "contact",
        "deal",
        "deal_contact_association",
        "subscription_statuses",
    ]
    unknown = cli.invoke(main, ["mapping", "objects", "mandrill"])
    assert unknown.exit_code == 2  # a usage error: the name is checked before anything runs
    assert "no mapping file for destination 'mandrill'" in unknown.output


def test_docs_check_passes_for_the_committed_page(cli: CliRunner) -> None:
    result = cli.invoke(main, ["mapping", "docs", "--check"])
    assert result.exit_code == 0, result.output
    assert "is current" in result.output
    printed = cli.invoke(main, ["mapping", "docs"])
    assert printed.output.startswith("# Field mappings")
