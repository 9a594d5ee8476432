"""The audit log's hash chain (migration 0014): written by a trigger, verified in Python."""

from __future__ import annotations

import json
import shutil
import threading
import uuid
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from donor_sync.cli import main
from donor_sync.db import connect
from donor_sync.db.migrations import upgrade
from donor_sync.observability.audit import record
from donor_sync.paths import migrations_dir
from donor_sync.privacy.audit_chain import (
    GENESIS_HASH,
    Anchor,
    anchor_head,
    canonical_text,
    row_hash,
    verify_chain,
)


def _write(conn: psycopg.Connection, n: int, *, actor: str = "test", start: int = 0) -> None:
    for i in range(start, start + n):
        record(
            conn,
            actor=actor,
            action="donor.merged" if i % 2 else "pii.accessed",
            object_type="donor" if i % 3 else None,
            object_id=str(uuid.uuid4()) if i % 3 else None,
            details={"i": i, "ids": [i, i + 1], "note": "zoë|1:x", "nested": {"b": 1, "a": [True, None]}},
            run_id=uuid.uuid4() if i % 4 == 0 else None,
        )


def _tamper(conn: psycopg.Connection, sql: str, params: tuple[object, ...] = ()) -> None:
    """Change the log the way a superuser could: with its triggers switched off."""
    conn.execute("ALTER TABLE sync.audit_log DISABLE TRIGGER USER")
    conn.execute(sql, params)
    conn.execute("ALTER TABLE sync.audit_log ENABLE TRIGGER USER")
    conn.commit()


def _audit_id(conn: psycopg.Connection, seq: int) -> int:
    row = conn.execute("SELECT audit_id FROM sync.audit_log WHERE chain_seq = %s", (seq,)).fetchone()
    assert row is not None
    return int(row[0])


def test_python_canonical_text_matches_the_trigger(db: psycopg.Connection) -> None:
    _write(db, 12)
    db.commit()
    rows = db.execute(
        "SELECT audit_id, chain_seq, at, actor, action, object_type, object_id, details::text, run_id,"
        " sync.audit_canonical(audit_id, chain_seq, at, actor, action, object_type, object_id, details,"
        " run_id),"
        " prev_hash, row_hash FROM sync.audit_log ORDER BY chain_seq"
    ).fetchall()
    prev = GENESIS_HASH
    for audit_id, seq, at, actor, action, otype, oid, details, run_id, sql_text, prev_hash, stored in rows:
        text = canonical_text(
            audit_id=audit_id,
            chain_seq=seq,
            at=at,
            actor=actor,
            action=action,
            object_type=otype,
            object_id=oid,
            details_text=details,
            run_id=run_id,
        )
        assert text == sql_text
        assert bytes(prev_hash) == prev
        assert row_hash(prev, text) == bytes(stored)
        prev = bytes(stored)
    assert [r[1] for r in rows] == list(range(1, 13))


def test_chain_holds_after_many_inserts_from_concurrent_writers(db_url: str, db: psycopg.Connection) -> None:
    _write(db, 30)
    db.commit()
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        try:
            with connect(db_url) as conn:
                for batch in range(40):
                    _write(conn, 3, actor=name, start=batch * 3)
                    conn.commit()
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(f"dag:w{n}",)) for n in range(2)]
    for t in threads:
        t.start()
    # A multi-row statement from this connection at the same time.
    db.execute(
        "INSERT INTO sync.audit_log (actor, action, details)"
        " SELECT 'bulk', 'retention.purged', jsonb_build_object('count', g) FROM generate_series(1, 50) g"
    )
    db.commit()
    for t in threads:
        t.join()
    assert not errors
    report = verify_chain(db)
    assert report.ok, report.summary()
    assert report.rows_checked == 30 + 2 * 120 + 50
    assert (report.first_seq, report.last_seq) == (1, 320)
    seqs = db.execute("SELECT array_agg(chain_seq ORDER BY chain_seq) FROM sync.audit_log").fetchone()
    assert seqs is not None
    assert seqs[0] == list(range(1, 321))


def test_values_a_writer_supplies_for_the_chain_are_overwritten(db: psycopg.Connection) -> None:
    _write(db, 2)
    db.execute(
        "INSERT INTO sync.audit_log (actor, action, chain_seq, prev_hash, row_hash)"
        " VALUES ('x', 'config.changed', 999, %s, %s)",
        (b"\x01" * 32, b"\x02" * 32),
    )
    db.commit()
    assert db.execute("SELECT max(chain_seq) FROM sync.audit_log").fetchone() == (3,)
    assert verify_chain(db).ok


def test_appending_is_the_only_change_the_triggers_allow(db: psycopg.Connection) -> None:
    _write(db, 2)
    db.commit()
    with pytest.raises(psycopg.Error):
        db.execute("UPDATE sync.audit_log SET details = '{}' WHERE chain_seq = 1")
    db.rollback()
    with pytest.raises(psycopg.Error):
        db.execute("DELETE FROM sync.audit_log WHERE chain_seq = 2")
    db.rollback()


def test_an_altered_row_is_named(db: psycopg.Connection) -> None:
    _write(db, 20)
    db.commit()
    assert verify_chain(db).ok
    victim = _audit_id(db, 7)
    _tamper(
        db, "UPDATE sync.audit_log SET details = details || '{\"i\": 999}' WHERE audit_id = %s", (victim,)
    )
    report = verify_chain(db)
    assert not report.ok
    assert report.broken is not None
    assert (report.broken.reason, report.broken.audit_id, report.broken.chain_seq) == ("altered", victim, 7)
    assert report.rows_checked == 6
    assert f"audit_id {victim}" in report.summary()


def test_a_row_rewritten_with_its_own_hash_breaks_the_next_link(db: psycopg.Connection) -> None:
    _write(db, 10)
    db.commit()
    victim = _audit_id(db, 4)
    _tamper(
        db,
        "UPDATE sync.audit_log SET actor = 'someone else',"
        " row_hash = sha256(prev_hash || convert_to(sync.audit_canonical(audit_id, chain_seq, at,"
        " 'someone else', action, object_type, object_id, details, run_id), 'UTF8'))"
        " WHERE audit_id = %s",
        (victim,),
    )
    report = verify_chain(db)
    assert report.broken is not None
    assert (report.broken.reason, report.broken.audit_id) == ("broken_link", _audit_id(db, 5))


def test_a_deleted_middle_row_is_a_gap(db: psycopg.Connection) -> None:
    _write(db, 10)
    db.commit()
    after = _audit_id(db, 6)
    _tamper(db, "DELETE FROM sync.audit_log WHERE chain_seq = 5")
    report = verify_chain(db)
    assert report.broken is not None
    assert (report.broken.reason, report.broken.audit_id, report.broken.chain_seq) == ("gap", after, 6)
    assert "chain_seq 5 missing" in report.broken.detail


def test_a_truncated_tail_is_caught_by_an_anchor(db: psycopg.Connection) -> None:
    _write(db, 10)
    anchor = anchor_head(db, "test")
    db.commit()
    assert anchor.chain_seq == 10
    # The anchoring itself is audited, after the anchored head.
    assert verify_chain(db).ok
    _tamper(db, "DELETE FROM sync.audit_log WHERE chain_seq >= 8")
    report = verify_chain(db)
    assert report.broken is not None
    assert (report.broken.reason, report.broken.chain_seq) == ("truncated", 10)
    assert f"anchor {anchor.anchor_id}" in report.broken.detail
    # Without the anchor, the shortened chain still looks whole: that is what anchors are for.
    assert verify_chain(db, use_stored_anchors=False).ok


def test_a_chain_rewritten_end_to_end_is_caught_by_an_anchor_kept_elsewhere(db: psycopg.Connection) -> None:
    _write(db, 8)
    outside = anchor_head(db, "test").token  # e.g. printed into the nightly task log
    db.commit()
    _tamper(db, "UPDATE sync.audit_log SET object_id = 'forged' WHERE chain_seq = 3")
    # Recompute every hash after the change, as someone covering their tracks would.
    _tamper(
        db,
        """
        DO $$
        DECLARE r record; prev bytea := '\\x' || repeat('00', 32); h bytea;
        BEGIN
          FOR r IN SELECT * FROM sync.audit_log ORDER BY chain_seq LOOP
            h := sha256(prev || convert_to(sync.audit_canonical(r.audit_id, r.chain_seq, r.at, r.actor,
                 r.action, r.object_type, r.object_id, r.details, r.run_id), 'UTF8'));
            UPDATE sync.audit_log SET prev_hash = prev, row_hash = h WHERE audit_id = r.audit_id;
            prev := h;
          END LOOP;
        END $$
        """,
    )
    assert verify_chain(db, use_stored_anchors=False).ok  # internally consistent again
    report = verify_chain(db)
    assert report.broken is not None
    assert report.broken.reason == "anchor_mismatch"
    assert report.broken.chain_seq == 8
    # The anchors table can be rewritten too; the copy kept outside still catches it.
    db.execute("ALTER TABLE sync.audit_anchors DISABLE TRIGGER USER")
    db.execute("DELETE FROM sync.audit_anchors")
    db.execute("ALTER TABLE sync.audit_anchors ENABLE TRIGGER USER")
    db.commit()
    assert verify_chain(db).ok
    report = verify_chain(db, expected_anchors=[Anchor.parse(outside)])
    assert report.broken is not None
    assert report.broken.reason == "anchor_mismatch"
    assert report.broken.audit_id == _audit_id(db, 8)


def test_verification_streams_past_one_fetch_and_can_start_later(db: psycopg.Connection) -> None:
    db.execute(
        "INSERT INTO sync.audit_log (actor, action, object_type, object_id, details)"
        " SELECT 'bulk', 'pii.accessed', 'donor', g::text, jsonb_build_object('n', g)"
        " FROM generate_series(1, 12000) g"
    )
    db.commit()
    report = verify_chain(db)
    assert report.ok
    assert report.rows_checked == 12000
    late = verify_chain(db, since_seq=11001)
    assert late.ok
    assert (late.rows_checked, late.first_seq, late.last_seq) == (1000, 11001, 12000)
    victim = _audit_id(db, 11500)
    _tamper(db, "UPDATE sync.audit_log SET at = at + interval '1 microsecond' WHERE audit_id = %s", (victim,))
    broken = verify_chain(db, since_seq=11001)
    assert broken.broken is not None
    assert broken.broken.audit_id == victim


def test_existing_rows_are_chained_by_the_migration(empty_db_url: str, tmp_path: Path) -> None:
    before = tmp_path / "migrations"
    before.mkdir()
    for path in migrations_dir().glob("*.sql"):
        if int(path.name[:4]) < 14:
            shutil.copy(path, before / path.name)
    upgrade(empty_db_url, before)
    with connect(empty_db_url) as conn:
        for i in range(5):
            conn.execute(
                "INSERT INTO sync.audit_log (actor, action, details) VALUES ('old', 'dlq.replayed', %s)",
                (json.dumps({"i": i}),),
            )
        conn.commit()
    upgrade(empty_db_url)
    with connect(empty_db_url) as conn:
        record(conn, actor="new", action="config.changed", object_type=None, object_id=None)
        conn.commit()
        order = conn.execute("SELECT actor, chain_seq FROM sync.audit_log ORDER BY audit_id").fetchall()
        assert order == [("old", 1), ("old", 2), ("old", 3), ("old", 4), ("old", 5), ("new", 6)]
        assert verify_chain(conn).ok
        with pytest.raises(psycopg.Error):  # append-only again after the backfill
            conn.execute("UPDATE sync.audit_log SET actor = 'x'")


# -- the command line ------------------------------------------------------------------------------


@pytest.fixture
def cli(db_url: str, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("DONOR_SYNC_DB_URL", db_url)
    return CliRunner()


def test_cli_verify_and_anchor(db: psycopg.Connection, cli: CliRunner) -> None:
    empty = cli.invoke(main, ["audit", "verify"])
    assert empty.exit_code == 0, empty.output
    _write(db, 5)
    db.commit()
    anchored = cli.invoke(main, ["audit", "anchor"])
    assert anchored.exit_code == 0, anchored.output
    token = anchored.output.strip().rsplit(" ", 1)[-1]
    assert Anchor.parse(token).chain_seq == 5
    ok = cli.invoke(main, ["audit", "verify", "--expect", token])
    assert ok.exit_code == 0, ok.output
    assert "audit chain ok: 6 row(s)" in ok.output  # the anchoring was audited too
    as_json = cli.invoke(main, ["audit", "verify", "--json"])
    assert as_json.exit_code == 0
    assert json.loads(as_json.output)["ok"] is True

    victim = _audit_id(db, 2)
    _tamper(db, "UPDATE sync.audit_log SET action = 'donor.unmerged' WHERE audit_id = %s", (victim,))
    broken = cli.invoke(main, ["audit", "verify"])
    assert broken.exit_code == 1
    assert f"audit_id {victim}" in broken.output
    assert "altered" in broken.output
    broken_json = cli.invoke(main, ["audit", "verify", "--json"])
    assert broken_json.exit_code == 1
    # stdout only: the warning that the chain is broken is logged to stderr
    assert json.loads(broken_json.stdout)["broken"]["audit_id"] == victim

    bad = cli.invoke(main, ["audit", "verify", "--expect", "5:nothex"])
    assert bad.exit_code == 1
    assert "SEQ:HEX" in bad.output
