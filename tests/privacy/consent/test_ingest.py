"""Staged consent signals become consent events when resolve runs, once."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import psycopg

from donor_sync.resolve.fiscal import load_giving_settings
from donor_sync.resolve.run import resolve_run
from tests.resolve.test_donors_support import JANE, NOW, donor_of, rules, stage

SIGNALS = [
    {
        "purpose": "marketing",
        "channel": "email",
        "status": "opt_in",
        "occurred_at": "2025-12-01T10:00:00Z",
        "evidence": {"field": "consent_text"},
    },
    {
        "purpose": "fundraising",
        "channel": "sms",
        "status": "opt_out",
        "occurred_at": "2025-12-01T10:00:00Z",
        "evidence": {"field": "sms_opt_out"},
    },
]


def _run_with_batch(db: psycopg.Connection) -> tuple[Any, int]:
    run_row = db.execute(
        "INSERT INTO sync.runs (dag_id, run_type) VALUES ('test_consent', 'test') RETURNING run_id"
    ).fetchone()
    assert run_row is not None
    batch = db.execute(
        "INSERT INTO raw.batches (run_id, source, stream, channel, status) VALUES (%s, 'donorbox', 'donors',"
        " 'api', 'standardized') RETURNING batch_id",
        [run_row[0]],
    ).fetchone()
    assert batch is not None
    return run_row[0], int(batch[0])


def _resolve(db: psycopg.Connection, run_id: Any) -> None:
    resolve_run(db, run_id, rules=rules(), giving=load_giving_settings(), now=NOW)


def test_resolve_records_the_signals_of_its_records_once(db: psycopg.Connection) -> None:
    run_id, batch = _run_with_batch(db)
    stage(db, batch, "donorbox", "jane-1", consent_signals=json.dumps(SIGNALS), **JANE)
    _resolve(db, run_id)
    donor = donor_of(db, "donorbox", "jane-1")
    events = db.execute(
        "SELECT purpose, channel, status, lawful_basis, source, source_ref, evidence FROM core.consent_events"
        " WHERE donor_id = %s ORDER BY purpose",
        [donor],
    ).fetchall()
    assert [(e[0], e[1], e[2], e[3], e[4]) for e in events] == [
        ("fundraising", "sms", "opt_out", None, "donorbox"),
        ("marketing", "email", "opt_in", "consent", "donorbox"),
    ]
    assert all(e[5].startswith("sig:") and "jane" not in e[5] for e in events), "no source id in the ref"
    assert events[1][6]["field"] == "consent_text"
    assert "raw_record_id" in events[1][6]
    state = {
        (r[0], r[1]): r[2]
        for r in db.execute(
            "SELECT purpose, channel, status FROM core.consent_state WHERE donor_id = %s", [donor]
        ).fetchall()
    }
    assert state == {("marketing", "email"): "opt_in", ("fundraising", "sms"): "opt_out"}
    metric = db.execute(
        "SELECT value FROM sync.run_metrics WHERE run_id = %s AND metric = 'consent_events_recorded'",
        [run_id],
    ).fetchone()
    assert metric is not None
    assert int(metric[0]) == 2
    changed = db.execute(
        "SELECT count(*) FROM sync.audit_log WHERE action = 'consent.changed' AND object_id = %s", [donor]
    ).fetchone()
    assert changed == (1,)

    # The same batch resolved again (a retried task), and the same record staged again in a new
    # run: nothing new is recorded.
    count_before = db.execute("SELECT count(*) FROM core.consent_events").fetchone()
    _resolve(db, run_id)
    run2, batch2 = _run_with_batch(db)
    stage(db, batch2, "donorbox", "jane-1", consent_signals=json.dumps(SIGNALS), **JANE)
    _resolve(db, run2)
    assert db.execute("SELECT count(*) FROM core.consent_events").fetchone() == count_before
    assert db.execute(
        "SELECT count(*) FROM sync.audit_log WHERE action = 'consent.changed' AND object_id = %s", [donor]
    ).fetchone() == (1,), "no change, no audit row"


def test_a_later_version_ticking_the_box_again_is_a_new_choice(db: psycopg.Connection) -> None:
    run_id, batch = _run_with_batch(db)
    out = [{**SIGNALS[0], "status": "opt_out"}]
    stage(db, batch, "donorbox", "jane-1", consent_signals=json.dumps(out), **JANE)
    _resolve(db, run_id)
    run2, batch2 = _run_with_batch(db)
    later = [{**SIGNALS[0], "occurred_at": "2025-12-20T09:00:00Z"}]
    stage(
        db,
        batch2,
        "donorbox",
        "jane-1",
        updated=NOW - timedelta(days=1),
        consent_signals=json.dumps(later),
        **JANE,
    )
    _resolve(db, run2)
    donor = donor_of(db, "donorbox", "jane-1")
    assert db.execute(
        "SELECT status FROM core.consent_state WHERE donor_id = %s AND purpose = 'marketing'"
        " AND channel = 'email'",
        [donor],
    ).fetchone() == ("opt_in",)
