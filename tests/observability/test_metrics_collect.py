"""collect_run_health over real runs: each figure of the metric contract, the run window, idempotency.

Pushes go through the real push engine (tests.delivery.fakes.FakeConnector as the destination), so
push_log, gift_destinations, dead letters, api_usage and the breakers are what a run leaves; the
expected figures are computed in the test from those rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from donor_sync.delivery.contracts import FailureClass, QuotaState
from donor_sync.errors import ConfigError
from donor_sync.observability.metrics import collect_run_health, load_health, read_window
from donor_sync.observability.metrics.collect import _LATENCY, _params
from donor_sync.observability.metrics.record import OWNED
from donor_sync.observability.runs import record_metric
from donor_sync.privacy.consent.events import ConsentEvent, record_events
from tests.delivery.fakes import FakeConnector
from tests.observability.test_metrics_support import (
    DEST,
    add_donor,
    add_gift,
    add_inbox_event,
    figures,
    finish_run,
    percentile_cont,
    push,
    rows_of,
    start_run,
)

OWNED_STAGES = sorted({stage for stage, _ in OWNED})


def _latencies(db: psycopg.Connection, gift_keys: list[str]) -> list[float]:
    rows = db.execute(
        "SELECT gd.first_pushed_at, g.gift_at"
        " FROM core.gift_destinations gd JOIN core.gifts g USING (gift_id)"
        " WHERE g.gift_key = ANY(%s)",
        (gift_keys,),
    ).fetchall()
    db.commit()
    assert len(rows) == len(gift_keys)
    return [(pushed - made).total_seconds() for pushed, made in rows]


# -- latency ---------------------------------------------------------------------------------------


def test_latency_covers_the_gifts_a_run_landed_first(db: psycopg.Connection) -> None:
    donor = add_donor(db)
    ages = {"g:a1": "3 days", "g:a2": "2 hours", "g:b1": "90 minutes", "g:b2": "10 minutes",
            "g:b3": "7 hours", "g:b4": "40 seconds", "g:b5": "26 hours", "g:c1": "5 minutes"}  # fmt: skip
    for key, age in ages.items():
        add_gift(db, donor, key, age=age)
    run_a = start_run(db, "a")
    push(db, run_a, ["g:a1", "g:a2"])
    finish_run(db, run_a)
    run_b = start_run(db, "b")
    landed_b = ["g:b1", "g:b2", "g:b3", "g:b4", "g:b5"]
    push(db, run_b, [*landed_b, "g:a1"])  # g:a1 again: an update, it landed first in run a
    push(db, None, ["g:c1"])  # pushed meanwhile outside any run (e.g. from the command line)
    finish_run(db, run_b)

    snapshot = collect_run_health(db, run_b)
    seconds = _latencies(db, landed_b)
    got = snapshot.latency[DEST]
    assert got.gifts_landed == 5
    assert got.p50_s == pytest.approx(percentile_cont(seconds, 0.5), abs=1e-6)
    assert got.p95_s == pytest.approx(percentile_cont(seconds, 0.95), abs=1e-6)
    assert got.max_s == pytest.approx(max(seconds), abs=1e-6)
    assert 26 * 3600 <= got.max_s < 26 * 3600 + 600
    recorded = figures(db, run_b, "latency")
    assert recorded[("latency", DEST, "gifts_landed")] == 5
    assert float(recorded[("latency", DEST, "gift_to_destination_p95")]) == pytest.approx(got.p95_s)

    first = collect_run_health(db, run_a).latency[DEST]
    seconds_a = _latencies(db, ["g:a1", "g:a2"])
    assert first.gifts_landed == 2
    assert first.max_s == pytest.approx(max(seconds_a), abs=1e-6)


def test_a_run_that_landed_no_gift_has_no_latency(db: psycopg.Connection) -> None:
    run = start_run(db, "contacts-only")
    push(db, run, ["d1", "d2"], entity="contact")
    assert collect_run_health(db, run).latency == {}
    assert figures(db, run, "latency") == {}


def _plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", ()):
        yield from _plan_nodes(child)


def test_latency_reads_each_table_of_the_window_once_whatever_the_statistics(
    db: psycopg.Connection,
) -> None:
    """A landed gift is matched to the run's pushes by grouping, never by looking its pushes up.

    The tables of a fresh database were never analyzed, as in a benchmark or a new install (and
    for push_log all day on a server without autovacuum): planned on such estimates, a per-gift
    lookup of the run's pushes walked every push of the destination for each gift, quadratic in
    the run's size (45 s of check_health for 10,000 gifts).
    """
    donor = add_donor(db)
    keys = [f"g:q{i}" for i in range(40)]
    for i, key in enumerate(keys):
        add_gift(db, donor, key, age=f"{i + 1} minutes")
    run = start_run(db, "plan")
    push(db, run, keys)
    push(db, run, [f"d{i}" for i in range(40)], entity="contact")
    finish_run(db, run)
    window = read_window(db, run)
    params = {**_params(window), "dests": [DEST]}

    row = db.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {_LATENCY}", params).fetchone()
    db.rollback()
    assert row is not None
    nodes = list(_plan_nodes(row[0][0]["Plan"]))
    for table in ("push_log", "gift_destinations"):
        scans = [n for n in nodes if n.get("Relation Name") == table]
        assert scans, f"{table} is not read"
        assert all(n["Actual Loops"] == 1 for n in scans), f"{table} is read again for each gift"
    landed = db.execute(_LATENCY, params).fetchall()
    db.rollback()
    assert [(d, n) for d, n, *_ in landed] == [(DEST, 40)]


# -- push outcome, API calls and quota --------------------------------------------------------------


def test_outcome_calls_and_the_tightest_quota_of_the_window(db: psycopg.Connection) -> None:
    db.execute(
        "INSERT INTO sync.api_usage (vendor, quota_window, window_start, calls, quota_limit, quota_remaining,"
        " observed_at) VALUES (%s, 'per_10s', now() - interval '1 day', 3, 100, 1, now() - interval '1 day')",
        (DEST,),
    )  # before the run: not what it saw
    run = start_run(db, "quota")
    fake = FakeConnector(destination=DEST, entities=("contact",), batch=3,
                         quota_state=QuotaState(remaining=900, limit=1000, window="daily"))  # fmt: skip
    fake.fail("k2", FailureClass.VALIDATION)
    fake.fail("k3", FailureClass.TRANSIENT)
    report = push(db, run, [f"k{i}" for i in range(1, 8)], entity="contact", fake=fake)
    assert report.total("calls") == 3
    snapshot = collect_run_health(db, run)
    api = snapshot.api[DEST]
    assert (api.calls, api.quota_limit, api.quota_remaining) == (3, 1000, 897)
    assert api.quota_remaining_ratio == pytest.approx(0.897)
    assert snapshot.outcome[DEST] == pytest.approx(5 / 7)  # 5 landed; a dead letter and a retry failed

    # A tighter window reported during the run wins (the reserve is about the tightest one).
    db.execute(
        "INSERT INTO sync.api_usage (vendor, quota_window, window_start, calls, quota_limit, quota_remaining)"
        " VALUES (%s, 'per_10s', date_trunc('hour', now()), 3, 100, 4)",
        (DEST,),
    )
    db.commit()
    again = collect_run_health(db, run).api[DEST]
    assert (again.calls, again.quota_limit, again.quota_remaining) == (3, 100, 4)
    assert again.quota_remaining_ratio == pytest.approx(0.04)
    assert figures(db, run, "api")[("api", DEST, "quota_remaining_ratio")] == Decimal("0.04")


def test_no_push_means_no_outcome_and_no_api_figures(db: psycopg.Connection) -> None:
    run = start_run(db, "idle")
    snapshot = collect_run_health(db, run)
    assert snapshot.outcome == {}
    assert snapshot.api == {}


# -- breakers and dead letters ---------------------------------------------------------------------


def test_breaker_states_are_recorded_as_codes(db: psycopg.Connection) -> None:
    db.execute(
        "INSERT INTO sync.circuit_breakers (destination, state, opened_at, next_probe_at) VALUES"
        " ('salesforce', 'closed', NULL, NULL),"
        " ('hubspot', 'half_open', now() - interval '5 minutes', now() + interval '1 minute'),"
        " ('mailchimp', 'open', now() - interval '1 minute', now() + interval '4 minutes')"
    )
    run = start_run(db, "breakers")
    snapshot = collect_run_health(db, run)
    assert snapshot.breakers == {"salesforce": "closed", "hubspot": "half_open", "mailchimp": "open"}
    assert snapshot.open_breakers() == ["hubspot", "mailchimp"]
    got = figures(db, run, "breaker")
    assert got == {
        ("breaker", "salesforce", "state"): 0,
        ("breaker", "hubspot", "state"): 1,
        ("breaker", "mailchimp", "state"): 2,
    }


def _old_letter(db: psycopg.Connection, key: str, *, age: str, destination: str = DEST) -> None:
    db.execute(
        "INSERT INTO sync.dead_letters (destination, entity, record_key, operation, payload, payload_sha256,"
        " error_class, remediation, attempts, first_failed_at, last_failed_at, created_at)"
        " VALUES (%s, 'contact', %s, 'upsert', '{}'::jsonb, core.jsonb_sha256('{}'::jsonb), 'validation',"
        " 'fix the field', 6, now() - %s::interval, now() - %s::interval, now() - %s::interval)",
        (destination, key, age, age, age),
    )


def test_dead_letter_depth_age_and_new_letters_of_the_run(db: psycopg.Connection) -> None:
    _old_letter(db, "old-1", age="3 hours")
    _old_letter(db, "old-2", age="50 minutes", destination="hubspot")
    db.commit()
    run = start_run(db, "dlq")
    fake = FakeConnector(destination=DEST, entities=("contact",))
    fake.fail("bad-1", FailureClass.VALIDATION)
    fake.fail("bad-2", FailureClass.PERMANENT)
    push(db, run, ["ok-1", "bad-1", "bad-2"], entity="contact", fake=fake)
    finished = finish_run(db, run)

    snapshot = collect_run_health(db, run)
    oldest = db.execute(
        "SELECT min(first_failed_at) FROM sync.dead_letters WHERE status = 'open' AND destination = %s",
        (DEST,),
    ).fetchone()
    assert oldest is not None
    dl = snapshot.dead_letters[DEST]
    assert (dl.open, dl.new) == (3, 2)
    assert dl.oldest_open_age_s == pytest.approx((finished - oldest[0]).total_seconds(), abs=1e-3)
    assert 3 * 3600 - 60 < dl.oldest_open_age_s < 3 * 3600 + 60
    other = snapshot.dead_letters["hubspot"]
    assert (other.open, other.new) == (1, 0)

    # A letter replayed (no longer open) leaves the depth; the next collection says so.
    db.execute(
        "UPDATE sync.dead_letters SET status = 'replayed', resolved_by = 'cli:test', resolved_at = now()"
        " WHERE record_key = 'old-1'"
    )
    db.commit()
    after = collect_run_health(db, run).dead_letters[DEST]
    assert after.open == 2
    assert after.oldest_open_age_s is not None
    assert after.oldest_open_age_s < 600


# -- webhooks in, events out -----------------------------------------------------------------------


def test_inbound_webhooks_in_the_window_and_what_the_drain_made_of_them(db: psycopg.Connection) -> None:
    add_inbox_event(db, "donorbox", "early-1", received="now() - interval '2 hours'", processed=True)
    add_inbox_event(db, "donorbox", "early-2", received="now() - interval '2 hours'", attempts=3, error="X")
    db.commit()
    run = start_run(db, "webhooks")
    add_inbox_event(db, "donorbox", "e1", received="now()", processed=True)
    add_inbox_event(db, "donorbox", "e2", received="now()", processed=True, attempts=1,
                    error="ignored_event_type")  # fmt: skip
    add_inbox_event(db, "donorbox", "e3", received="now()", processed=True, attempts=1)
    add_inbox_event(db, "donorbox", "e4", received="now()", attempts=2, error="MissingObject")
    add_inbox_event(db, "donorbox", "e5", received="now()")
    add_inbox_event(db, "classy", "c1", received="now()", attempts=1, error="MissingId")
    db.commit()
    snapshot = collect_run_health(db, run)
    box = snapshot.webhooks["donorbox"]
    assert (box.received, box.accepted, box.rejected, box.pending) == (5, 3, 1, 1)
    assert box.success_rate == pytest.approx(3 / 4)
    classy = snapshot.webhooks["classy"]
    assert (classy.received, classy.accepted, classy.rejected, classy.success_rate) == (1, 0, 1, 0.0)


def test_outbound_event_deliveries_of_the_run(db: psycopg.Connection) -> None:
    subscriber = "webhook_acme"
    fake = FakeConnector(destination=subscriber, entities=("donation_created",))
    earlier = start_run(db, "earlier")
    push(db, earlier, [str(uuid4()) for _ in range(2)], entity="donation_created", destination=subscriber)
    finish_run(db, earlier)
    run = start_run(db, "events")
    events = [str(uuid4()) for _ in range(4)]
    fake.fail(events[1], FailureClass.TRANSIENT)
    push(db, run, events, entity="donation_created", destination=subscriber, fake=fake)
    snapshot = collect_run_health(db, run)
    assert set(snapshot.events) == {subscriber}  # only webhook_<subscriber> destinations carry events
    got = snapshot.events[subscriber]
    assert (got.delivered, got.failed) == (3, 1)
    assert got.success_rate == pytest.approx(0.75)


# -- journeys, consent, suppressions ---------------------------------------------------------------


def _enroll(db: psycopg.Connection, donor: UUID, gift_key: str, journey: str, status: str, when: str) -> None:
    reason = {"suppressed": "no_consent", "capped": "frequency_cap"}.get(status)
    experiment, variant = ("exp_1", "holdout") if status == "holdout" else (None, None)
    db.execute(
        "INSERT INTO sync.journey_enrollments (gift_key, journey_id, donor_id, destination, status,"
        " reason_code, experiment_id, variant, decided_at, triggered_at)"
        f" VALUES (%s, %s, %s, 'braze', %s, %s, %s, %s, {when},"
        " CASE WHEN %s = 'triggered' THEN now() END)",
        (gift_key, journey, donor, status, reason, experiment, variant, status),
    )


def test_journey_entries_and_suppressions_decided_in_the_run(db: psycopg.Connection) -> None:
    donor = add_donor(db)
    for i in range(8):
        add_gift(db, donor, f"g:{i}", age="1 hour")
    _enroll(db, donor, "g:0", "welcome_series", "triggered", "now() - interval '1 day'")
    _enroll(db, donor, "g:0", "major_gift_thanks", "suppressed", "now() - interval '1 day'")
    db.commit()
    run = start_run(db, "journeys")
    for key, status in (("g:1", "pending"), ("g:2", "triggered"), ("g:3", "holdout"), ("g:4", "failed"),
                        ("g:5", "suppressed"), ("g:6", "capped")):  # fmt: skip
        _enroll(db, donor, key, "welcome_series", status, "now()")
    _enroll(db, donor, "g:7", "major_gift_thanks", "suppressed", "now()")
    db.commit()
    record_metric(db, run, stage="journeys", metric="entries_pending", value=1)  # the journeys task's own
    snapshot = collect_run_health(db, run)
    assert {j: (c.entered, c.suppressed) for j, c in snapshot.journeys.items()} == {
        "welcome_series": (4, 2),
        "major_gift_thanks": (0, 1),
    }
    assert figures(db, run, "journeys")[("journeys", "", "entries_pending")] == 1


def _choice(donor: UUID, purpose: str, status: str, ref: str) -> ConsentEvent:
    return ConsentEvent(
        donor_id=donor, purpose=purpose, channel="email", status=status, source="preference_centre",
        source_ref=ref, occurred_at=datetime(2026, 1, 2, 9, 0).astimezone(), recorded_by="test",
    )  # fmt: skip


def test_consent_gauges_events_of_the_run_and_active_suppressions(db: psycopg.Connection) -> None:
    donors = [add_donor(db, email=f"donor{i}@example.org") for i in range(5)]
    merged = add_donor(db, email="merged@example.org")
    db.execute(
        "UPDATE core.donors SET merged_into = %s, merged_at = now() WHERE donor_id = %s", (donors[0], merged)
    )
    add_donor(db, erased_at=datetime(2025, 12, 1).astimezone())
    record_events(db, [_choice(donors[4], "profiling", "opt_out", "before")], actor="test")
    db.commit()
    run = start_run(db, "consent")
    record_events(
        db,
        [_choice(donors[0], "marketing", "opt_in", "r1"), _choice(donors[1], "marketing", "opt_out", "r2"),
         _choice(donors[2], "fundraising", "soft_opt_in", "r3")],
        actor="test",
    )  # fmt: skip
    suppressions = [(donors[0], "deceased", False), (donors[1], "deceased", False),
                    (donors[2], "do_not_contact", False), (donors[3], "bounced", True)]  # fmt: skip
    for donor, reason, lifted in suppressions:
        db.execute(
            "INSERT INTO core.suppressions (donor_id, reason_code, source, created_by, lifted_at, lifted_by)"
            " VALUES (%s, %s, 'salesforce', 'test',"
            " CASE WHEN %s THEN now() END, CASE WHEN %s THEN 'test' END)",
            (donor, reason, lifted, lifted),
        )
    db.commit()
    snapshot = collect_run_health(db, run)
    counts = {p: (c.opted_in, c.opted_out, c.no_consent) for p, c in snapshot.consent.items()}
    assert counts == {
        "marketing": (1, 1, 3),
        "fundraising": (1, 0, 4),
        "profiling": (0, 1, 4),
        "sharing": (0, 0, 5),
    }
    assert snapshot.consent_events_recorded == 3  # the profiling opt-out came before the run
    assert snapshot.suppressions == {"deceased": 2, "do_not_contact": 1}


# -- idempotency, stale rows, the snapshot -------------------------------------------------------


def test_collecting_twice_records_the_same_rows_and_drops_stale_ones(db: psycopg.Connection) -> None:
    donor = add_donor(db, email="jane.okafor@example.org", first_name="Jane", last_name="Okafor")
    add_gift(db, donor, "g:1", age="1 hour")
    db.execute(
        "INSERT INTO sync.circuit_breakers (destination, state, opened_at, next_probe_at)"
        " VALUES ('hubspot', 'open', now(), now() + interval '5 minutes')"
    )
    run = start_run(db, "twice")
    push(db, run, ["g:1"], quota=QuotaState(remaining=10, limit=20, window="daily"))
    add_inbox_event(db, "stripe", "evt_1", received="now()", processed=True)
    db.commit()
    record_metric(db, run, stage="consent", metric="donors_expired", value=2)
    finish_run(db, run)

    first = collect_run_health(db, run, task_id="collect_health")
    rows = rows_of(db, run, OWNED_STAGES)
    second = collect_run_health(db, run, task_id="collect_health")
    assert rows_of(db, run, OWNED_STAGES) == rows
    assert first == second
    assert len(rows) == len({(r[0], r[1], r[3]) for r in rows}), "one row per figure"
    assert ("breaker", "hubspot", "", "state", Decimal(2), "count") in rows

    db.execute("DELETE FROM sync.circuit_breakers WHERE destination = 'hubspot'")
    db.commit()
    third = collect_run_health(db, run)
    assert "hubspot" not in third.breakers
    assert ("breaker", "hubspot", "state") not in figures(db, run, "breaker")
    assert figures(db, run, "consent")[("consent", "", "donors_expired")] == 2, "a stage's own figure stays"
    assert load_health(db, run) == third


def test_the_snapshot_reads_back_what_was_recorded_and_carries_no_pii(db: psycopg.Connection) -> None:
    from donor_sync.observability.metrics import format_health

    donor = add_donor(db, email="jane.okafor@example.org", first_name="Jane", last_name="Okafor")
    add_gift(db, donor, "g:1", age="2 hours")
    run = start_run(db, "snapshot")
    record_metric(db, run, stage="extract", scope="stripe", metric="read", value=12)
    push(db, run, ["g:1"])
    snapshot = collect_run_health(db, run)
    assert snapshot.collected
    assert snapshot.counts["read"] == {"stripe": 12}
    assert snapshot.latency[DEST].gifts_landed == 1
    text = format_health(snapshot) + str(snapshot.to_dict())
    assert "jane" not in text.lower()
    assert "okafor" not in text.lower()
    assert f"{DEST}" in format_health(snapshot)
    assert "latency" in format_health(snapshot)


def test_an_unknown_run_is_a_lookup_error(db: psycopg.Connection) -> None:
    with pytest.raises(LookupError, match="no run"):
        collect_run_health(db, uuid4())


def test_a_broken_quality_file_fails_after_the_other_figures_are_recorded(
    db: psycopg.Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db.execute(
        "INSERT INTO sync.circuit_breakers (destination, state, opened_at, next_probe_at)"
        " VALUES ('hubspot', 'open', now(), now() + interval '5 minutes')"
    )
    run = start_run(db, "broken-config")
    mappings = tmp_path / "include" / "mappings"
    mappings.mkdir(parents=True)
    (mappings / "quality.yaml").write_text("version: 1\ncompleteness: {donors: {emial: {weight: 1}}}\n")
    monkeypatch.setenv("DONOR_SYNC_HOME", str(tmp_path))
    with pytest.raises(ConfigError, match=r"line 2, completeness\.donors\.emial"):
        collect_run_health(db, run)
    assert figures(db, run, "breaker") == {("breaker", "hubspot", "state"): 2}
