"""Rotation keeps every encrypted field readable: write under k1, rotate to k2, re-encrypt while a
reader keeps opening everything, then every value is under k2 and k1 can be retired."""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg
import pytest

from donor_sync.db import connect
from donor_sync.delivery.contracts import FailureClass
from donor_sync.delivery.dlq import edit, list_dead_letters
from donor_sync.delivery.push import push_destination
from donor_sync.privacy.crypto import FieldCipher, FieldCrypto, load_encryption_settings, using
from donor_sync.privacy.crypto.rotation import (
    KeyInUseError,
    key_usage,
    reencrypt,
    retire_local_key,
    rotate_local_key,
)
from donor_sync.standardize.quarantine import list_quarantined
from tests.delivery.fakes import FakeConnector
from tests.delivery.push.support import queue_many, settings
from tests.privacy.crypto.support import key_file

ACTOR = "test:rotation"
LETTERS = 40


def _letters(db: psycopg.Connection) -> dict[str, dict[str, object]]:
    """Push LETTERS records a destination refuses, so they dead-letter through the real code path."""
    queue_many(db, LETTERS, prefix="k", priority=20)
    fake = FakeConnector()
    for i in range(LETTERS):
        fake.fail(f"k{i:04d}", FailureClass.VALIDATION, "INVALID_FIELD")
    push_destination(db, fake, worker_id="w", settings=settings(jitter=0.0))
    db.commit()
    return {f"k{i:04d}": {"Donor_Sync_Id__c": f"k{i:04d}", "LastName": "Okafor"} for i in range(LETTERS)}


def _legacy_quarantine(db: psycopg.Connection, count: int) -> dict[int, dict[str, str]]:
    """Closed quarantine rows with a plaintext fix, as written before encryption was turned on."""
    fixes = {}
    for i in range(count):
        row = db.execute(
            "INSERT INTO staging.quarantine (raw_record_id, batch_id, source, entity, source_id, reasons,"
            " released_at, released_by, resolution, fix)"
            " VALUES (%s, 1, 'stripe', 'charge', %s, '[{\"code\": \"invalid_email\"}]', now(), 'ops',"
            " 'fixed', %s::jsonb) RETURNING quarantine_id",
            (1000 + i, f"ch_{i}", f'{{"email": "donor{i}@example.org"}}'),
        ).fetchone()
        assert row is not None
        fixes[row[0]] = {"email": f"donor{i}@example.org"}
    db.commit()
    return fixes


def test_rotation_keeps_every_value_readable(db: psycopg.Connection, db_url: str, tmp_path: Path) -> None:
    keys = key_file(tmp_path)
    crypto = FieldCrypto(load_encryption_settings(), FieldCipher(keys, ttl=0.0))
    with using(crypto):
        expected = _letters(db)
        letters = list_dead_letters(db, limit=1000)
        edit(db, letters[0].dead_letter_id, {"LastName": "Okafor-Smith"}, actor=ACTOR)
        db.commit()
        edited = {letters[0].dead_letter_id: {"LastName": "Okafor-Smith"}}
        fixes = _legacy_quarantine(db, 7)

        # Stored as ciphertext under k1 (the legacy quarantine fixes are plaintext).
        usage = key_usage(db, crypto)
        assert usage["sync.dead_letters.payload"] == {"k1": LETTERS}
        assert usage["sync.dead_letters.edited_payload"] == {"k1": 1}
        assert usage["staging.quarantine.fix"] == {"(plaintext)": 7}
        db.commit()

        previous, new = rotate_local_key(db, "encryption", key_file=keys, actor=ACTOR, key_id="k2")
        assert (previous, new) == ("k1", "k2")
        with pytest.raises(KeyInUseError, match=r"still seals values \(sync.dead_letters.edited_payload: 1"):
            retire_local_key(db, "k1", purpose="encryption", key_file=keys, crypto=crypto, actor=ACTOR)

        stop = threading.Event()
        reads: list[int] = []
        failures: list[str] = []

        def reader() -> None:
            with connect(db_url) as conn:
                while not stop.is_set():
                    try:
                        seen = {x.record_key: x for x in list_dead_letters(conn, statuses=None, limit=1000)}
                        assert {k: v.payload for k, v in seen.items()} == expected
                        assert {
                            x.dead_letter_id: x.edited_payload for x in seen.values() if x.edited_payload
                        } == edited
                        assert {
                            q.quarantine_id: q.fix for q in list_quarantined(conn, include_closed=True)
                        } == fixes
                        conn.commit()
                        reads.append(1)
                    except Exception as exc:
                        failures.append(f"{type(exc).__name__}: {exc}")
                        conn.rollback()

        thread = threading.Thread(target=reader)
        thread.start()
        batches: list[int] = []
        with connect(db_url) as worker:
            report = reencrypt(
                worker, crypto, batch=3, actor=ACTOR, progress=lambda c: batches.append(c.batches)
            )
        stop.set()
        thread.join(timeout=60)

        assert failures == []
        assert len(reads) >= 2
        assert report.key_id == "k2"
        counts = {
            c.column: (c.reencrypted, c.sealed_plaintext, c.failed, c.remaining) for c in report.columns
        }
        assert counts == {
            "sync.dead_letters.payload": (LETTERS, 0, 0, 0),
            "sync.dead_letters.edited_payload": (1, 0, 0, 0),
            "staging.quarantine.fix": (0, 7, 0, 0),
        }
        assert len(batches) == 14 + 1 + 3  # 40/3, 1/3 and 7/3 rounded up
        usage = key_usage(db, crypto)
        assert usage == {
            "sync.dead_letters.payload": {"k2": LETTERS},
            "sync.dead_letters.edited_payload": {"k2": 1},
            "staging.quarantine.fix": {"k2": 7},
        }
        # Still readable after the run, and a second run has nothing to do.
        assert {x.record_key: x.payload for x in list_dead_letters(db, limit=1000)} == expected
        db.commit()
        with connect(db_url) as worker:
            again = reencrypt(worker, crypto, batch=3, actor=ACTOR)
        assert sum(c.reencrypted + c.sealed_plaintext for c in again.columns) == 0

        with pytest.raises(KeyInUseError, match="current"):
            retire_local_key(db, "k2", purpose="encryption", key_file=keys, crypto=crypto, actor=ACTOR)
        retire_local_key(db, "k1", purpose="encryption", key_file=keys, crypto=crypto, actor=ACTOR)
        ring = keys.ring("encryption")
        assert ring is not None
        assert (ring.current, sorted(ring.keys)) == ("k2", ["k2"])
        assert {x.record_key: x.payload for x in list_dead_letters(db, limit=1000)} == expected

    audit = db.execute(
        "SELECT action, object_id, details FROM sync.audit_log WHERE action LIKE 'keys.%%' ORDER BY audit_id"
    ).fetchall()
    assert [(a, o) for a, o, _ in audit] == [
        ("keys.rotated", "encryption"),
        ("keys.reencrypted", "k2"),
        ("keys.reencrypted", "k2"),
        ("keys.retired", "encryption"),
    ]
    assert audit[1][2]["columns"]["sync.dead_letters.payload"]["reencrypted"] == LETTERS
    assert "example.org" not in str(audit)


def test_an_altered_value_is_counted_failed_and_left_for_a_person(
    db: psycopg.Connection, db_url: str, tmp_path: Path
) -> None:
    keys = key_file(tmp_path)
    crypto = FieldCrypto(load_encryption_settings(), FieldCipher(keys, ttl=0.0))
    with using(crypto):
        _letters(db)
        db.execute(
            "UPDATE sync.dead_letters"
            " SET payload = jsonb_set(payload, '{ct}', to_jsonb('AAAA' || (payload->>'ct')))"
            " WHERE record_key = 'k0003'"
        )
        db.commit()
        rotate_local_key(db, "encryption", key_file=keys, actor=ACTOR, key_id="k2")
        with connect(db_url) as worker:
            report = reencrypt(worker, crypto, batch=10, actor=ACTOR)
        payload = next(c for c in report.columns if c.column == "sync.dead_letters.payload")
        assert (payload.reencrypted, payload.failed, payload.remaining) == (LETTERS - 1, 1, 1)
        with pytest.raises(KeyInUseError):
            retire_local_key(db, "k1", purpose="encryption", key_file=keys, crypto=crypto, actor=ACTOR)
