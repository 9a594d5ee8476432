"""Nickname equivalence from the maintained table."""

from __future__ import annotations

from pathlib import Path

import pytest

from donor_sync.errors import ConfigError
from donor_sync.identity import load_nicknames
from donor_sync.identity.nicknames import Nicknames, default_nicknames_path


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("robert", "bob", True),
        ("bob", "robert", True),
        ("bob", "rob", True),  # both nicknames of robert
        ("william", "bill", True),
        ("katherine", "katie", True),
        ("elizabeth", "liz", True),
        ("robert", "robert", True),
        ("robert", "mary", False),
        ("mary", "marie", False),  # distinct given names, removed from the source list
        ("john", "jonathan", False),
        ("zzyzx", "zzyzx", True),
        ("zzyzx", "bob", False),
    ],
)
def test_equivalence(a: str, b: str, expected: bool) -> None:
    assert load_nicknames().equivalent(a, b) is expected


def test_table_states_its_source_and_licence() -> None:
    header = default_nicknames_path().read_text(encoding="utf-8")[:2000]
    assert "carltonnorthern/nicknames" in header
    assert "Apache License 2.0" in header


def test_formal_gives_one_blocking_key_for_a_name_and_its_nickname() -> None:
    table = Nicknames.from_pairs([("Robert", "Bob"), ("Robert", "Rob")])
    assert table.formal("bob") == table.formal("rob") == table.formal("robert") == "robert"
    assert table.formal("unknown") == "unknown"


def test_bad_row_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "nick.csv"
    path.write_text("# comment\nformal,nickname\nrobert,bob\nbroken\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"nick\.csv: line 4: expected two columns"):
        load_nicknames(path)
