"""Survivorship rules: table-driven cases, the rules file's validation, the generated reference."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from donor_sync.errors import ConfigError
from donor_sync.resolve import survivorship
from donor_sync.resolve.survivorship import load_survivorship, recompute_golden

OLD = datetime(2024, 1, 1, tzinfo=UTC)
MID = datetime(2025, 1, 1, tzinfo=UTC)
NEW = datetime(2025, 6, 1, tzinfo=UTC)

ADDRESS_A = {
    "address_line1": "1 Old Rd",
    "city": "Salem",
    "region": "MA",
    "postal_code": "01970",
    "country_code": "US",
}
ADDRESS_B = {
    "address_line1": "22 New Ave",
    "address_line2": "Apt 4",
    "city": "Lynn",
    "region": "MA",
    "postal_code": "01901",
    "country_code": "US",
}

#: description, records (system, attributes_at, attributes), expected golden fields
CASES: list[dict[str, Any]] = [
    {
        "description": "most recent verified email wins over a newer unverified one",
        "records": [
            ("stripe", MID, {"email": "verified@example.org"}),
            ("event_platform", NEW, {"email": "newer@example.org"}),
        ],
        "expected": {"email": "verified@example.org", "email_verified": True},
    },
    {
        "description": "a review flag on the email makes it unverified",
        "records": [
            (
                "stripe",
                NEW,
                {
                    "email": "typo@gmial.example.com",
                    "review_flags": [{"code": "email_typo", "field": "email", "message": "x"}],
                },
            ),
            ("donorbox", MID, {"email": "good@example.org"}),
        ],
        "expected": {"email": "good@example.org", "email_verified": True},
    },
    {
        "description": "among verified emails the most recent wins",
        "records": [
            ("stripe", OLD, {"email": "old@example.org"}),
            ("classy", NEW, {"email": "new@example.org"}),
        ],
        "expected": {"email": "new@example.org", "email_verified": True},
    },
    {
        "description": "validated address wins with all its parts from the same record",
        "records": [
            ("stripe", MID, {**ADDRESS_B, "address_validated": True}),
            ("classy", NEW, {"address_line1": "5 Newest St", "city": "Boston", "address_validated": False}),
        ],
        "expected": {**ADDRESS_B, "address_validated": True},
    },
    {
        "description": "among validated addresses the most recent wins, no part mixed in from the other",
        "records": [
            ("stripe", OLD, {**ADDRESS_B, "address_validated": True}),
            ("classy", NEW, {**ADDRESS_A, "address_validated": True}),
        ],
        "expected": {**ADDRESS_A, "address_line2": None, "address_validated": True},
    },
    {
        "description": "phone: most recent",
        "records": [("stripe", NEW, {"phone": "+16175550001"}), ("classy", OLD, {"phone": "+16175550002"})],
        "expected": {"phone": "+16175550001"},
    },
    {
        "description": "names: source priority first, then most recent; nicknames and other first names kept",
        "records": [
            ("donorbox", NEW, {"first_name": "Bob", "last_name": "Smith"}),
            ("stripe", OLD, {"first_name": "Robert", "last_name": "Smith", "nickname": "Bobby"}),
        ],
        "expected": {"first_name": "Robert", "last_name": "Smith", "aliases": ["Bob", "Bobby"]},
    },
    {
        "description": "names from one system: the most recent",
        "records": [
            ("classy", OLD, {"first_name": "Ann", "last_name": "Lee"}),
            ("classy", NEW, {"first_name": "Anne", "last_name": "Lee-Park"}),
        ],
        "expected": {"first_name": "Anne", "last_name": "Lee-Park", "aliases": ["Ann"]},
    },
    {
        "description": "most restrictive flags: any record that says deceased or do not contact",
        "records": [
            ("stripe", NEW, {"first_name": "Al"}),
            ("classy", OLD, {"review_flags": [{"code": "deceased", "field": "deceased", "message": "x"}]}),
            ("salesforce", OLD, {"do_not_contact": True}),
        ],
        "expected": {"is_deceased": True, "do_not_contact": True},
    },
    {
        "description": "no flag anywhere: not deceased, contactable",
        "records": [("stripe", NEW, {"first_name": "Al"})],
        "expected": {"is_deceased": False, "do_not_contact": False, "aliases": []},
    },
]


def _golden(db: psycopg.Connection, records: list[tuple[str, datetime, dict[str, Any]]]) -> dict[str, Any]:
    row = db.execute("INSERT INTO core.donors DEFAULT VALUES RETURNING donor_id").fetchone()
    assert row is not None
    donor_id = row[0]
    for i, (system, at, attributes) in enumerate(records):
        db.execute(
            "INSERT INTO core.donor_sources (donor_id, system, external_id, role, id_kind, attributes,"
            " attributes_at)"
            " VALUES (%s, %s, %s, 'source', 'test', %s, %s)",
            (donor_id, system, f"x{i}", json.dumps(attributes), at),
        )
    assert recompute_golden(db, [donor_id], load_survivorship()) == 1
    cur = db.execute("SELECT * FROM core.donors WHERE donor_id = %s", (donor_id,))
    names = [c.name for c in cur.description or []]
    values = cur.fetchone()
    assert values is not None
    return dict(zip(names, values, strict=True))


@pytest.mark.parametrize("case", CASES, ids=[c["description"] for c in CASES])
def test_survivorship_rules(db: psycopg.Connection, case: dict[str, Any]) -> None:
    golden = _golden(db, case["records"])
    for column, expected in case["expected"].items():
        assert golden[column] == expected, column


def test_recomputing_an_unchanged_donor_writes_nothing(db: psycopg.Connection) -> None:
    golden = _golden(db, CASES[0]["records"])
    assert recompute_golden(db, [golden["donor_id"]], load_survivorship()) == 0


def test_rules_file_errors_name_the_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "survivorship.yaml"
    path.write_text(
        "groups:\n  email:\n    columns: [email]\n    order: [most_recent, loudest]\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError) as error:
        load_survivorship(path)
    message = str(error.value)
    assert str(path) in message
    assert "line 4" in message
    assert "groups.email.order.1" in message


def test_a_column_in_two_groups_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "survivorship.yaml"
    path.write_text("groups:\n  a: {columns: [email]}\n  b: {columns: [email, phone]}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="'email' is in groups 'a' and 'b'"):
        load_survivorship(path)


def test_generated_reference_is_current() -> None:
    committed = survivorship.doc_path().read_text(encoding="utf-8")
    assert committed == survivorship.render(), (
        "docs/survivorship.md is stale: run `python -m donor_sync.resolve.survivorship`"
    )
