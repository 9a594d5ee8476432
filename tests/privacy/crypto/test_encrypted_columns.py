"""Encrypted columns through the real code paths: ciphertext in Postgres, plaintext through the commands."""

from __future__ import annotations

import json
from collections.abc import Iterator

import psycopg
import pytest
from click.testing import CliRunner

from donor_sync.cli import main
from donor_sync.delivery.contracts import FailureClass
from donor_sync.delivery.dlq import get_dead_letter
from donor_sync.privacy.crypto import FieldCrypto, is_encrypted, using
from donor_sync.privacy.crypto.rotation import key_usage
from donor_sync.standardize import quarantine
from donor_sync.standardize.pipeline import standardize_batches
from tests.delivery.dlq.test_store import dead_letter
from tests.privacy.crypto.support import static_crypto
from tests.standardize.test_pipeline_quarantine import _quarantined, _setup
from tests.standardize.test_pipeline_support import NOW, donation, rules

EMAIL = "jane.okafor@example.org"


@pytest.fixture
def crypto() -> Iterator[FieldCrypto]:
    with using(static_crypto()) as crypto:
        yield crypto


def test_a_dead_letter_is_ciphertext_in_postgres_and_readable_through_dlq_show(
    db: psycopg.Connection, db_url: str, crypto: FieldCrypto, monkeypatch: pytest.MonkeyPatch
) -> None:
    letter_id = dead_letter(db, "k1", FailureClass.VALIDATION, payload={"Email": EMAIL, "LastName": "Okafor"})
    stored = db.execute(
        "SELECT payload, payload::text, edited_payload FROM sync.dead_letters WHERE dead_letter_id = %s",
        (letter_id,),
    ).fetchone()
    db.commit()
    assert stored is not None
    assert is_encrypted(stored[0])
    assert stored[0]["kid"] == "k1"
    assert EMAIL not in stored[1]
    assert stored[2] is None

    monkeypatch.setenv("DONOR_SYNC_DB_URL", db_url)
    cli = CliRunner()
    shown = cli.invoke(main, ["dlq", "show", str(letter_id), "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["payload"] == {"Email": EMAIL, "LastName": "Okafor"}

    edited = cli.invoke(main, ["dlq", "edit", str(letter_id), "--set", "Email=jane@example.com"])
    assert edited.exit_code == 0, edited.output
    raw = db.execute(
        "SELECT edited_payload::text FROM sync.dead_letters WHERE dead_letter_id = %s", (letter_id,)
    ).fetchone()
    db.commit()
    assert raw is not None
    assert "jane@example.com" not in raw[0]
    assert '"$enc"' in raw[0]
    assert get_dead_letter(db, letter_id).edited_payload == {
        "Email": "jane@example.com",
        "LastName": "Okafor",
    }

    # A ciphertext copied onto another letter does not open there.
    other = dead_letter(db, "k2", FailureClass.VALIDATION)
    db.execute(
        "UPDATE sync.dead_letters"
        " SET payload = (SELECT payload FROM sync.dead_letters WHERE dead_letter_id = %s)"
        " WHERE dead_letter_id = %s",
        (letter_id, other),
    )
    db.commit()
    moved = cli.invoke(main, ["dlq", "show", str(other)])
    assert moved.exit_code == 1
    assert "does not authenticate" in moved.output
    assert EMAIL not in moved.output


def test_a_quarantine_fix_is_sealed_and_read_back(db: psycopg.Connection, crypto: FieldCrypto) -> None:
    _setup(db, donation(1, donor={"email": "jane at example.org"}), donation(2))
    row = _quarantined(db, "1")
    outcome = quarantine.fix(
        db, row.quarantine_id, {"email": EMAIL}, actor="cli:ops", settings=rules(), now=NOW
    )
    assert outcome.disposition == "staged"
    stored = db.execute(
        "SELECT fix, fix::text FROM staging.quarantine WHERE quarantine_id = %s", (row.quarantine_id,)
    ).fetchone()
    db.commit()
    assert stored is not None
    assert is_encrypted(stored[0])
    assert EMAIL not in stored[1]
    assert quarantine.get_quarantined(db, row.quarantine_id).fix == {"email": EMAIL}
    assert key_usage(db, crypto)["staging.quarantine.fix"] == {"k1": 1}
    # A re-run of the batch reads the sealed fix back and keeps the record staged with it.
    standardize_batches(db, [row.batch_id], settings=rules(), now=NOW)
    assert db.execute(
        "SELECT email FROM staging.donors WHERE raw_record_id = %s", (row.raw_record_id,)
    ).fetchone() == (EMAIL,)
