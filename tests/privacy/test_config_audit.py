"""Configuration changes reach the audit log once, naming the files, and only when something changed."""

from __future__ import annotations

from pathlib import Path

import psycopg

from donor_sync.observability.config_audit import fingerprint, record_config_changes
from donor_sync.privacy.audit_chain import verify_chain


def _rows(db: psycopg.Connection) -> list[dict[str, object]]:
    return [
        r[0]
        for r in db.execute(
            "SELECT details FROM sync.audit_log WHERE action = 'config.changed' ORDER BY audit_id"
        ).fetchall()
    ]


def test_changes_are_recorded_once_with_the_files_named(db: psycopg.Connection, tmp_path: Path) -> None:
    root = tmp_path / "include"
    (root / "mappings").mkdir(parents=True)
    (root / "mappings" / "dedup.yaml").write_text("version: 1\n", encoding="utf-8")
    (root / "mappings" / "notes.txt").write_text("not configuration\n", encoding="utf-8")
    first = record_config_changes(db, actor="test", root=root)
    assert first.added == ("mappings/dedup.yaml",)
    assert record_config_changes(db, actor="test", root=root).any is False  # nothing new: no row

    (root / "mappings" / "dedup.yaml").write_text("version: 2\n", encoding="utf-8")
    (root / "mappings" / "giving.yaml").write_text("fiscal_year_start: 7\n", encoding="utf-8")
    second = record_config_changes(db, actor="dag:donations_hourly.open_run", root=root)
    assert second.changed == ("mappings/dedup.yaml",)
    assert second.added == ("mappings/giving.yaml",)
    (root / "mappings" / "giving.yaml").unlink()
    third = record_config_changes(db, actor="test", root=root)
    assert third.removed == ("mappings/giving.yaml",)
    db.commit()

    rows = _rows(db)
    assert len(rows) == 3
    assert rows[1]["changed"] == ["mappings/dedup.yaml"]
    assert rows[2]["fingerprint"] == fingerprint(root)
    assert verify_chain(db).ok


def test_the_shipped_configuration_is_fingerprinted(db: psycopg.Connection) -> None:
    shipped = fingerprint()
    assert "mappings/destinations/salesforce.yaml" in shipped
    assert "mappings/privacy/destinations.yaml" in shipped
    assert any(p.startswith("sql/migrations/") for p in shipped)
    assert record_config_changes(db, actor="test").added == tuple(sorted(shipped))
