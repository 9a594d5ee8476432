"""``donor-sync keys``: rotate the local ring, re-encrypt, retire; no key material printed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from donor_sync.cli import main
from donor_sync.delivery.contracts import FailureClass
from donor_sync.delivery.dlq import get_dead_letter
from donor_sync.privacy.crypto import fields, key_id_of
from donor_sync.privacy.keys import ENV_VAR
from tests.delivery.dlq.test_store import dead_letter


@pytest.fixture
def cli(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("DONOR_SYNC_DB_URL", db_url)
    monkeypatch.setenv("DONOR_SYNC_STATE_DIR", str(tmp_path))
    monkeypatch.delenv(ENV_VAR, raising=False)
    fields.configure(None)  # the process-wide instance is rebuilt over this test's key file
    runner = CliRunner()
    made = runner.invoke(main, ["keys", "init"])
    assert made.exit_code == 0, made.output
    assert "new development key ring(s) tombstone, pseudonym, encryption, links" in made.output
    yield runner
    fields.configure(None)


def test_rotate_reencrypt_retire(db: psycopg.Connection, cli: CliRunner, tmp_path: Path) -> None:
    letter = dead_letter(db, "k1", FailureClass.VALIDATION, payload={"Email": "jane@example.org"})
    stored = db.execute(
        "SELECT payload FROM sync.dead_letters WHERE dead_letter_id = %s", (letter,)
    ).fetchone()
    db.commit()
    assert stored is not None
    assert key_id_of(stored[0]) == "dev1"

    rotated = cli.invoke(main, ["keys", "rotate", "encryption"])
    assert rotated.exit_code == 0, rotated.output
    document = json.loads((tmp_path / "privacy_keys.json").read_text())
    new_id = document["encryption"]["current"]
    assert sorted(document["encryption"]["keys"]) == sorted(["dev1", new_id])
    assert "secrets backend" in rotated.output
    for key in document["encryption"]["keys"].values():
        assert key not in rotated.output

    refused = cli.invoke(main, ["keys", "retire", "dev1"])
    assert refused.exit_code == 1
    assert "still seals values (sync.dead_letters.payload: 1)" in refused.output

    done = cli.invoke(main, ["keys", "reencrypt", "--batch", "10"])
    assert done.exit_code == 0, done.output
    assert (
        "sync.dead_letters.payload: 1 re-encrypted, 0 plaintext sealed, 0 failed, 0 remaining" in done.output
    )
    usage = cli.invoke(main, ["keys", "usage"])
    assert f"sync.dead_letters.payload: {new_id}: 1" in usage.output

    retired = cli.invoke(main, ["keys", "retire", "dev1"])
    assert retired.exit_code == 0, retired.output
    assert sorted(json.loads((tmp_path / "privacy_keys.json").read_text())["encryption"]["keys"]) == [new_id]
    fields.configure(None)
    assert get_dead_letter(db, letter).payload == {"Email": "jane@example.org"}
    actions = [
        r[0]
        for r in db.execute("SELECT action FROM sync.audit_log WHERE action LIKE 'keys.%%' ORDER BY audit_id")
    ]
    assert actions == ["keys.rotated", "keys.reencrypted", "keys.retired"]
