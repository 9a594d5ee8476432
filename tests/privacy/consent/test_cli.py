"""``donor-sync privacy link`` and ``donor-sync consent show|set`` against a real database."""

from __future__ import annotations

import base64
import json

import psycopg
import pytest
from click.testing import CliRunner

from donor_sync.cli import main
from donor_sync.privacy.consent.links import verify_link
from donor_sync.privacy.keys import StaticKeys
from tests.privacy.consent.support import donor

KEYS = {"links": {"current": "c1", "keys": {"c1": base64.b64encode(b"c" * 32).decode()}}}


def test_set_show_and_link(db: psycopg.Connection, db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DONOR_SYNC_DB_URL", db_url)
    monkeypatch.setenv("DONOR_SYNC_PRIVACY_KEYS", json.dumps(KEYS))
    d = donor(db, email="ada@example.org")
    db.commit()
    runner = CliRunner()
    result = runner.invoke(
        main,
        [
            "consent",
            "set",
            d,
            "--purpose",
            "marketing",
            "--channel",
            "all",
            "--status",
            "opt_out",
            "--evidence",
            "phone call, ticket 4411",
        ],
    )
    assert result.exit_code == 0, result.output
    shown = runner.invoke(main, ["consent", "show", d])
    assert shown.exit_code == 0, shown.output
    body = json.loads(shown.output)
    assert {(s["channel"], s["status"]) for s in body["state"]} == {
        (c, "opt_out") for c in ("email", "sms", "phone", "mail", "all")
    }
    assert body["events"][0]["source"] == "staff"
    assert "ada@" not in shown.output
    link = runner.invoke(main, ["privacy", "link", d, "--days", "3"])
    assert link.exit_code == 0, link.output
    token = link.output.strip().rsplit("/", 1)[1]
    ring = StaticKeys(KEYS).ring("links")
    assert ring is not None
    assert verify_link(ring, token).donor_id == d
    bad = runner.invoke(
        main,
        [
            "consent",
            "set",
            d,
            "--purpose",
            "marketing",
            "--channel",
            "email",
            "--status",
            "opt_in",
            "--evidence",
            "x",
            "--lawful-basis",
            "because",
        ],
    )
    assert bad.exit_code == 1
    assert "lawful_basis" in bad.output
