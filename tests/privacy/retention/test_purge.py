"""Retention: each policy purges exactly what is due and nothing younger, counted and audited; a
second run purges nothing; a dry run changes nothing; ledgers are refused."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest
from click.testing import CliRunner

from donor_sync.cli import main
from donor_sync.errors import ConfigError
from donor_sync.privacy.retention import load_retention_settings, run_retention

ACTOR = "test:retention"
OLD, YOUNG = "400 days", "5 days"


def one(db: psycopg.Connection, query: str, *params: Any) -> Any:
    row = db.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def batch(db: psycopg.Connection, status: str = "standardized") -> int:
    return one(
        db,
        "INSERT INTO raw.batches (source, stream, channel, status) VALUES ('stripe', 'charges', 'api', %s)"
        " RETURNING batch_id",
        status,
    )


def raw_record(
    db: psycopg.Connection, batch_id: int, source_id: str, age: str, *, disposition: bool = True
) -> int:
    rid = one(
        db,
        "INSERT INTO raw.records (batch_id, source, entity, source_id, channel, fetched_at, received_at,"
        " payload)"
        " VALUES (%s, 'stripe', 'charge', %s, 'api', now(), now() - %s::interval,"
        " jsonb_build_object('email', %s::text)) RETURNING raw_record_id",
        batch_id,
        source_id,
        age,
        f"{source_id}@example.org",
    )
    if disposition:
        db.execute(
            "INSERT INTO staging.dispositions (raw_record_id, batch_id, disposition)"
            " VALUES (%s, %s, 'quarantined')",
            (rid, batch_id),
        )
    return rid


def quarantine(db: psycopg.Connection, rid: int, batch_id: int, closed_age: str | None) -> int:
    return one(
        db,
        "INSERT INTO staging.quarantine (raw_record_id, batch_id, source, entity, source_id, reasons,"
        " released_at, released_by, resolution)"
        " VALUES (%s, %s, 'stripe', 'charge', 'x', '[{\"code\": \"invalid_email\", \"value\": \"a at b\"}]',"
        " now() - %s::interval, CASE WHEN %s::text IS NOT NULL THEN 'ops' END,"
        " CASE WHEN %s::text IS NOT NULL THEN 'discarded' END) RETURNING quarantine_id",
        rid,
        batch_id,
        closed_age,
        closed_age,
        closed_age,
    )


def webhook(db: psycopg.Connection, event_id: str, processed_age: str | None) -> int:
    return one(
        db,
        "INSERT INTO raw.webhook_inbox (source, event_id, body, body_sha256, body_bytes, signature_scheme,"
        " signature_verified, remote_addr, processed_at, headers)"
        " VALUES ('stripe', %s, '{\"email\": \"w@example.org\"}', sha256(%s::bytea), 10, 'none', false,"
        " '10.0.0.1', now() - %s::interval, '{\"user-agent\": \"x\"}') RETURNING webhook_event_id",
        event_id,
        event_id.encode(),
        processed_age,
    )


def csv_file(db: psycopg.Connection, batch_id: int, name: str, age: str) -> int:
    file_id = one(
        db,
        "INSERT INTO raw.csv_files (source, format, path, sha256, size_bytes, encoding, rows, batch_id,"
        " loaded_at, headers) VALUES ('csv_drop', 'generic', %s, sha256(%s::bytea), 10, 'utf-8', 2, %s,"
        " now() - %s::interval, ARRAY['email', 'amount']) RETURNING csv_file_id",
        name,
        name.encode(),
        batch_id,
        age,
    )
    db.execute("SELECT raw.csv_create_rows_table(%s)", (file_id,))
    db.execute(
        f"INSERT INTO raw.csv_file_{file_id} (c1, c2) VALUES ('a@example.org', '5'), ('b@example.org', '7')"
    )
    return file_id


def dead_letter(db: psycopg.Connection, key: str, resolved_age: str | None) -> int:
    return one(
        db,
        "INSERT INTO sync.dead_letters (destination, entity, record_key, operation, payload, payload_sha256,"
        " error_class, remediation, attempts, first_failed_at, last_failed_at, status, resolved_by,"
        " resolved_at)"
        " VALUES ('hubspot', 'contact', %s, 'upsert', '{\"email\": \"d@example.org\"}',"
        " sha256('x'), 'validation', 'fix', 1, now() - interval '500 days', now() - interval '500 days',"
        " CASE WHEN %s::text IS NULL THEN 'open' ELSE 'discarded' END,"
        " CASE WHEN %s::text IS NULL THEN NULL ELSE 'ops' END, now() - %s::interval)"
        " RETURNING dead_letter_id",
        key,
        resolved_age,
        resolved_age,
        resolved_age,
    )


def incident(
    db: psycopg.Connection, scope: str, *, opened: str, resolved: str | None, notified: bool, told: bool
) -> int:
    """An alert incident opened ``opened`` ago, resolved ``resolved`` ago (None: still open).

    :param notified: its opening message was delivered; ``told``: its resolution message too.
    """
    row = db.execute(
        "INSERT INTO sync.alert_incidents (incident_key, kind, scope, summary, runbook, opened_at,"
        " last_seen_at, resolved_at, notified_at, notified_severity, resolution_notified_at)"
        " VALUES ('dead_letter_growth:' || %(scope)s, 'dead_letter_growth', %(scope)s, '3 new dead letters',"
        " 'dead-letter-review.md', now() - %(opened)s::interval, now() - %(opened)s::interval,"
        " now() - %(resolved)s::interval,"
        " CASE WHEN %(notified)s THEN now() - %(opened)s::interval END,"
        " CASE WHEN %(notified)s THEN 'warning' END,"
        " CASE WHEN %(told)s THEN now() - %(resolved)s::interval END)"
        " RETURNING incident_id",
        {"scope": scope, "opened": opened, "resolved": resolved, "notified": notified, "told": told},
    ).fetchone()
    assert row is not None
    return int(row[0])


def donor(db: psycopg.Connection, name: str, *, created: str, gift_age: str | None) -> UUID:
    donor_id: UUID = one(
        db,
        "INSERT INTO core.donors (first_name, last_name, email, phone, address_line1, city, postal_code,"
        " birth_date, created_at, aliases, last_name_key)"
        " VALUES (%s, 'Okafor', %s, '+14155550100', '1 Main St', 'Springfield', 'SW1A 1AA', '1970-06-15',"
        " now() - %s::interval, '{Jo}', 'AKFR') RETURNING donor_id",
        name,
        f"{name}@example.org",
        created,
    )
    if gift_age is not None:
        db.execute(
            "INSERT INTO core.gifts (gift_key, donor_id, source, amount, currency, currency_exponent,"
            " amount_minor, gift_at, gift_date, status)"
            " VALUES (%s, %s, 'stripe', 25.00, 'USD', 2, 2500, now() - %s::interval,"
            " (now() - %s::interval)::date, 'succeeded')",
            (f"stripe:{name}", donor_id, gift_age, gift_age),
        )
    db.execute(
        "INSERT INTO staging.donors (raw_record_id, batch_id, source, source_id, first_name, last_name,"
        " email,"
        " donor_id) VALUES (%s, 1, 'stripe', %s, %s, 'Okafor', %s, %s)",
        (abs(hash(name)) % 10_000_000 + 10_000_000, name, name, f"{name}@example.org", donor_id),
    )
    db.execute(
        "INSERT INTO core.donor_sources (donor_id, system, external_id, role, id_kind, attributes)"
        " VALUES (%s, 'stripe', %s, 'source', 'source_id', jsonb_build_object('email', %s::text))",
        (donor_id, f"cus_{name}", f"{name}@example.org"),
    )
    return donor_id


@pytest.fixture
def world(db: psycopg.Connection) -> dict[str, Any]:
    b = batch(db)
    w: dict[str, Any] = {"batch": b}
    w["raw_old"] = raw_record(db, b, "old", OLD)
    w["raw_young"] = raw_record(db, b, "young", YOUNG)
    w["raw_undecided"] = raw_record(db, b, "undecided", OLD, disposition=False)
    w["raw_open_q"] = raw_record(db, b, "openq", OLD)
    w["q_open"] = quarantine(db, w["raw_open_q"], b, None)
    w["q_old"] = quarantine(db, w["raw_old"], b, "200 days")
    w["q_young"] = quarantine(db, w["raw_young"], b, YOUNG)
    w["wh_old"] = webhook(db, "evt_old", OLD)
    w["wh_young"] = webhook(db, "evt_young", YOUNG)
    w["wh_unprocessed"] = webhook(db, "evt_new", None)
    w["csv_old"] = csv_file(db, batch(db), "old.csv", OLD)
    w["csv_young"] = csv_file(db, batch(db), "young.csv", YOUNG)
    w["csv_unstandardized"] = csv_file(db, batch(db, "loaded"), "loaded.csv", OLD)
    w["dl_old"] = dead_letter(db, "a", "40 days")
    w["dl_young"] = dead_letter(db, "b", YOUNG)
    w["dl_open"] = dead_letter(db, "c", None)
    w["lapsed"] = donor(db, "lapsed", created="10 years", gift_age="8 years")
    w["merged"] = donor(db, "merged", created="10 years", gift_age=None)
    db.execute(
        "UPDATE core.donors SET merged_into = %s, merged_at = now() WHERE donor_id = %s",
        (w["lapsed"], w["merged"]),
    )
    w["active"] = donor(db, "active", created="10 years", gift_age="1 year")
    w["new"] = donor(db, "new", created="1 year", gift_age=None)
    w["inc_old_told"] = incident(
        db, "hubspot", opened="300 days", resolved="200 days", notified=True, told=True
    )
    w["inc_old_silent"] = incident(
        db, "braze", opened="300 days", resolved="200 days", notified=False, told=False
    )
    w["inc_old_owed"] = incident(
        db, "mailchimp", opened="300 days", resolved="200 days", notified=True, told=False
    )
    w["inc_young"] = incident(
        db, "salesforce", opened="300 days", resolved="10 days", notified=True, told=True
    )
    w["inc_open"] = incident(db, "salesforce", opened="900 days", resolved=None, notified=True, told=False)
    for age in (OLD, OLD, YOUNG):
        db.execute(
            "INSERT INTO sync.push_log (destination, entity, record_key, operation, attempt, outcome,"
            " pushed_at)"
            " VALUES ('hubspot', 'contact', 'k', 'upsert', 1, 'succeeded', now() - %s::interval)",
            (age,),
        )
    db.commit()
    return w


def snapshot(db: psycopg.Connection) -> list[Any]:
    tables = [
        "raw.records",
        "raw.webhook_inbox",
        "staging.quarantine",
        "sync.dead_letters",
        "core.donors",
        "staging.donors",
        "core.donor_sources",
        "sync.push_log",
        "sync.alert_incidents",
    ]
    rows = [
        db.execute(f"SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM {t} t").fetchone()
        for t in tables
    ]
    rows.append(db.execute("SELECT count(*) FROM raw.csv_rows").fetchone())
    db.commit()
    return rows


def test_each_policy_purges_exactly_what_is_due(
    db: psycopg.Connection, db_url: str, world: dict[str, Any]
) -> None:
    settings = load_retention_settings()
    now = datetime.now(UTC)
    before = snapshot(db)
    with psycopg.connect(db_url) as conn:
        dry = run_retention(conn, settings, now=now, actor=ACTOR, dry_run=True)
    assert snapshot(db) == before  # a dry run changes nothing
    assert one(db, "SELECT count(*) FROM sync.audit_log WHERE action = 'retention.purged'") == 0
    expected = {
        "raw_payloads": 1,
        "webhook_bodies": 1,
        "csv_rows": 2,
        "closed_quarantine": 1,
        "resolved_dead_letters": 1,
        "lapsed_donors": 1,
        "push_log": 2,
        "resolved_alert_incidents": 2,
    }
    assert {r.policy: r.count for r in dry.results} == expected

    with psycopg.connect(db_url) as conn:
        report = run_retention(conn, settings, now=now, actor=ACTOR)
    assert {r.policy: r.count for r in report.results} == expected
    lapsed = next(r for r in report.results if r.policy == "lapsed_donors")
    assert lapsed.extra == {"donors_including_merged": 2, "staging_rows": 2, "source_attributes": 2}

    # raw: only the old standardized record without an open quarantine lost its payload
    payloads = dict(db.execute("SELECT raw_record_id, payload FROM raw.records").fetchall())
    assert payloads[world["raw_old"]] == {
        "$purged": "retention",
        "raw_record_id": world["raw_old"],
        "source_id": "old",
    }
    for kept in ("raw_young", "raw_undecided", "raw_open_q"):
        assert "email" in payloads[world[kept]]
    bodies = {
        r[0]: r[1:]
        for r in db.execute("SELECT webhook_event_id, body, headers, remote_addr FROM raw.webhook_inbox")
    }
    assert bodies[world["wh_old"]] == ({"$purged": "retention", "event_id": "evt_old"}, {}, None)
    assert bodies[world["wh_young"]][0] == {"email": "w@example.org"}
    assert bodies[world["wh_unprocessed"]][0] == {"email": "w@example.org"}
    # CSV: the old standardized file's table is gone, the others stay; the file row stays
    tables = {
        f: one(db, "SELECT to_regclass(%s) IS NOT NULL", f"raw.csv_file_{world[f]}")
        for f in ("csv_old", "csv_young", "csv_unstandardized")
    }
    assert tables == {"csv_old": False, "csv_young": True, "csv_unstandardized": True}
    assert one(db, "SELECT count(*) FROM raw.csv_files") == 3
    # quarantine: the old closed row is gone, the open and the young closed ones stay
    assert {r[0] for r in db.execute("SELECT quarantine_id FROM staging.quarantine")} == {
        world["q_open"],
        world["q_young"],
    }
    letters = dict(db.execute("SELECT dead_letter_id, payload FROM sync.dead_letters").fetchall())
    assert letters[world["dl_old"]] == {"$purged": "retention", "dead_letter_id": world["dl_old"]}
    assert letters[world["dl_young"]] == letters[world["dl_open"]] == {"email": "d@example.org"}
    # donors: the lapsed donor and the one merged into it are pseudonymized; gifts kept
    donors = {
        r[0]: r[1:]
        for r in db.execute(
            "SELECT donor_id, first_name, email, phone, address_line1, city, postal_code, birth_date,"
            " aliases,"
            " last_name_key FROM core.donors"
        )
    }
    for gone in ("lapsed", "merged"):
        assert donors[world[gone]] == (
            None,
            None,
            None,
            None,
            None,
            "SW1",
            datetime(1970, 1, 1).date(),
            [],
            None,
        )
    for kept in ("active", "new"):
        assert donors[world[kept]][1] == f"{kept}@example.org"
    assert one(db, "SELECT count(*) FROM core.gifts WHERE donor_id = %s", world["lapsed"]) == 1
    staged = dict(db.execute("SELECT source_id, email FROM staging.donors").fetchall())
    assert staged == {
        "lapsed": None,
        "merged": None,
        "active": "active@example.org",
        "new": "new@example.org",
    }
    assert one(db, "SELECT count(*) FROM core.donor_sources WHERE attributes IS NULL") == 2
    assert one(db, "SELECT count(*) FROM sync.push_log") == 1
    # incidents: resolved long ago with nothing owed are gone; an open one stays however old, and
    # so do the recently resolved one and the one whose resolution Slack has not taken yet
    assert {r[0] for r in db.execute("SELECT incident_id FROM sync.alert_incidents")} == {
        world["inc_old_owed"],
        world["inc_young"],
        world["inc_open"],
    }

    audit = db.execute(
        "SELECT actor, object_id, details FROM sync.audit_log WHERE action = 'retention.purged'"
        " ORDER BY audit_id"
    ).fetchall()
    assert [(d["policy"], d["table"], d["action"], d["count"]) for _, _, d in audit] == [
        (r.policy, r.table, r.action, r.count) for r in report.results
    ]
    assert {a for a, _, _ in audit} == {ACTOR}
    assert "example.org" not in str(audit)
    db.commit()

    after = snapshot(db)
    with psycopg.connect(db_url) as conn:
        again = run_retention(conn, settings, now=now, actor=ACTOR)
    assert again.total == 0
    assert snapshot(db) == after
    assert one(db, "SELECT count(*) FROM sync.audit_log WHERE action = 'retention.purged'") == len(audit)


def test_batches_cover_every_due_row(db: psycopg.Connection, db_url: str) -> None:
    for _ in range(7):
        db.execute(
            "INSERT INTO sync.push_log (destination, entity, record_key, operation, attempt, outcome,"
            " pushed_at)"
            " VALUES ('hubspot', 'contact', 'k', 'upsert', 1, 'succeeded', now() - interval '500 days')"
        )
    db.commit()
    settings = load_retention_settings().model_copy(update={"batch_size": 2})
    with psycopg.connect(db_url) as conn:
        report = run_retention(conn, settings, now=datetime.now(UTC), actor=ACTOR)
    assert next(r.count for r in report.results if r.policy == "push_log") == 7
    assert one(db, "SELECT count(*) FROM sync.push_log") == 0


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        pytest.param(
            "{name: a, table: sync.audit_log, action: delete, after_days: 1}", "append-only", id="audit"
        ),
        pytest.param("{name: a, table: core.gifts, action: delete, after_days: 1}", "financial", id="gifts"),
        pytest.param(
            "{name: a, table: core.consent_events, action: delete, after_days: 1}", "ledger", id="consent"
        ),
        pytest.param(
            "{name: a, table: raw.records, action: delete, after_days: 1}", "use blank", id="action"
        ),
        pytest.param("{name: a, table: sync.push_log, action: delete}", "exactly one of", id="age"),
        pytest.param(
            "{name: a, table: core.donors, action: blank, after_years: 1, fields: [gift_count]}",
            "not PII columns",
            id="fields",
        ),
        pytest.param(
            "{name: a, table: public.x, action: delete, after_days: 1}", "unsupported table", id="table"
        ),
    ],
)
def test_invalid_policies_name_file_and_field(tmp_path: Path, policy: str, message: str) -> None:
    path = tmp_path / "retention.yaml"
    path.write_text(f"policies:\n  - {policy}\n")
    with pytest.raises(ConfigError, match=message) as caught:
        load_retention_settings(path)
    assert f"{path}: line 2, policies.0" in str(caught.value)


def test_cli_dry_run_and_run(db: psycopg.Connection, db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    db.execute(
        "INSERT INTO sync.push_log (destination, entity, record_key, operation, attempt, outcome,"
        " pushed_at)"
        " VALUES ('hubspot', 'contact', 'k', 'upsert', 1, 'succeeded', now() - interval '500 days')"
    )
    db.commit()
    monkeypatch.setenv("DONOR_SYNC_DB_URL", db_url)
    dry = CliRunner().invoke(main, ["retention", "run", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "push_log: 1 sync.push_log row(s) due (delete)" in dry.output
    assert "dry run: nothing changed" in dry.output
    assert one(db, "SELECT count(*) FROM sync.push_log") == 1
    db.commit()
    done = CliRunner().invoke(main, ["retention", "run"])
    assert done.exit_code == 0, done.output
    assert "push_log: 1 sync.push_log row(s) purged (delete)" in done.output
    assert one(db, "SELECT count(*) FROM sync.push_log") == 0
