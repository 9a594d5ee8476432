"""bench/privacy.py at a tiny size: its figures are measured and agree with each other.

The whole benchmark runs over 300 donors (every donor then falls in the reference sample, so the
pure derivation checks every consent row) with a 2,000-row re-import batch; the reference check
itself is shown to catch a state row that differs from the rules.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import privacy as bench

SIZE = 300
SCREEN_ROWS = 2_000
ERASURES = 5


@pytest.fixture(scope="module")
def outcome(server_url: str) -> Iterator[bench.Outcome]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DONOR_SYNC_DB_URL", server_url)
        yield bench.run(
            bench.Options(
                size=SIZE,
                erasures=ERASURES,
                screen_rows=SCREEN_ROWS,
                db_name=f"ds_t_bench_privacy_{os.getpid()}",
            )
        )


def test_the_synthetic_base_has_what_the_rules_care_about(outcome: bench.Outcome) -> None:
    p = outcome.parameters
    assert p["donors"] == SIZE
    assert 0 < p["merged_donors"] < SIZE * 0.15
    assert p["consent_events"] > SIZE
    assert 0 < p["consent_events_expired"] < p["consent_events_expiring"]
    first = outcome.value("consent_refresh_first_run")
    assert 0 < first["all_channel_rows"] < first["state_rows"]


def test_consent_refresh_matches_the_reference_and_writes_nothing_the_second_time(
    outcome: bench.Outcome,
) -> None:
    first = outcome.value("consent_refresh_first_run")
    assert first["donors_in_scope"] == SIZE
    assert first["rows_written"] == first["state_rows"] > 0
    assert 0 < first["changed_donors"] <= SIZE - outcome.parameters["merged_donors"]
    assert first["value"] > 0
    second = outcome.value("consent_refresh_nothing_changed")
    assert (second["rows_written"], second["rows_deleted"], second["changed_donors"]) == (0, 0, 0)
    assert second["donors_in_scope"] == SIZE
    reference = outcome.value("consent_reference_mismatches")
    assert reference["value"] == 0
    # Every donor was sampled: every state row was compared.
    assert reference["family_donors"] == SIZE
    assert reference["rows_compared"] == first["state_rows"]


def test_gate_cost_is_measured_both_ways_over_the_same_records(outcome: bench.Outcome) -> None:
    live = SIZE - outcome.parameters["merged_donors"]
    gated = outcome.value("queue_dry_run_with_gate")
    plain = outcome.value("queue_dry_run_without_gate")
    assert len(gated["runs"]) == len(plain["runs"]) == 2
    assert gated["value"] == min(gated["runs"]) > 0
    assert plain["value"] == min(plain["runs"]) > 0
    # Salesforce requires no consent: the gate blocks nobody, so both plans queue the same records.
    assert gated["records_to_queue"] == plain["records_to_queue"] >= live
    assert not any(k.startswith("gate_blocked_") for k in gated["gate_counts"])
    ratio = outcome.value("gate_overhead_ratio")["value"]
    assert ratio == pytest.approx(gated["value"] / plain["value"], rel=0.02)
    apply = outcome.value("gate_apply_time")
    assert apply["core_rows"] == live
    assert 0 < apply["value"] < gated["value"]
    assert apply["passthrough_apply_seconds"] < apply["value"]
    real = outcome.value("queue_destination_with_gate")
    assert real["queued"] == gated["records_to_queue"]
    after = outcome.value("queue_dry_run_with_gate_and_tombstones")
    assert after["core_rows"] == live - ERASURES  # the erased donors are no longer read
    assert after["tombstones"] >= 2 * ERASURES  # email and source id at least
    assert after["gate_seconds"] > 0


def test_every_erasure_completes_with_a_verified_receipt(outcome: bench.Outcome) -> None:
    median = outcome.value("erasure_one_donor_median")
    runs = median["runs"]
    assert median["requests"] == median["completed"] == len(runs) == ERASURES
    for run in runs:
        assert run["outcome"] == run["status"] == "completed"
        assert run["verified_receipts"] == 2  # staging and outbound_webhooks
        assert run["donors_erased"] == run["emails"] >= 1
        assert run["tombstones"] >= 2
        # The purge found the donor's raw record, staged row, source reference and outbox row.
        for table in ("core_donors", "raw_records", "staging_donors", "core_donor_sources", "sync_outbox"):
            assert run["purged"].get(table, 0) >= 1, (table, run["purged"])
    assert sum(r["donors_erased"] >= 2 for r in runs) == 2  # two survivors of merges
    times = sorted(r["seconds"] for r in runs)
    assert median["value"] == times[len(times) // 2]
    assert outcome.value("erasure_one_donor_max")["value"] == times[-1]


def test_returning_erased_donors_are_screened_out(outcome: bench.Outcome) -> None:
    screen = outcome.value("reimport_screen")
    assert screen["checked"] == screen["staged_rows"] == SCREEN_ROWS
    assert screen["blocked"] == screen["returning"] == ERASURES
    assert screen["value"] > 0


def test_audit_chain_verifies_over_every_row(outcome: bench.Outcome) -> None:
    inserted = outcome.value("audit_insert_through_chain_trigger")
    assert inserted["rows"] == outcome.parameters["audit_rows"] == 10 * SIZE
    verify = outcome.value("audit_verify_chain")
    assert verify["ok"] is True
    assert verify["rows_checked"] == verify["rows_before_insert"] + inserted["rows"]
    # consent.changed per changed donor and donor.erased per erasure were already in the log.
    changed = outcome.value("consent_refresh_first_run")["changed_donors"]
    assert verify["rows_before_insert"] >= changed + ERASURES


def test_every_verdict_holds_and_memory_is_reported(outcome: bench.Outcome) -> None:
    assert {c["name"] for c in outcome.compared if not c["ok"]} == set()
    names = {m["name"] for m in outcome.metrics}
    for phase in ("consent_refresh", "gate_dry_runs", "erasure", "reimport_screen", "audit_verify"):
        assert outcome.value(f"peak_rss_process_{phase}")["value"] > 0
    assert "peak_rss_process" in names
    assert all(m["unit"] for m in outcome.metrics)


def test_the_reference_check_catches_a_wrong_state_row(db: psycopg.Connection) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    bench.synthesize(db, 40, seed=5, now=now)
    ids = [str(r[0]) for r in db.execute("SELECT donor_id FROM core.donors").fetchall()]
    from donor_sync.privacy.consent.state import refresh_consent_state

    refresh_consent_state(db, ids, actor="test", now=now)
    assert bench.compare_with_reference(db, ids, now)["mismatches"] == 0
    db.execute(
        "UPDATE core.consent_state SET status = CASE status WHEN 'opt_out' THEN 'opt_in'::core.consent_status"
        " ELSE 'opt_out' END"
        " WHERE (donor_id, purpose, channel) = (SELECT donor_id, purpose, channel FROM core.consent_state"
        "  ORDER BY donor_id, purpose, channel LIMIT 1)"
    )
    db.execute(
        "DELETE FROM core.consent_state WHERE (donor_id, purpose, channel) = (SELECT donor_id, purpose,"
        " channel FROM core.consent_state ORDER BY donor_id DESC, purpose, channel LIMIT 1)"
    )
    assert bench.compare_with_reference(db, ids, now)["mismatches"] == 2
