"""bench/push_destinations.py at a tiny size: its figures are measured, not assumed.

The whole benchmark runs against both emulators with HubSpot's limit lowered to 10 requests per
second and Bulk API 2.0 jobs above 250 due records, so every path the full run measures (rate
limiting, Bulk jobs, Collections, the re-run) is taken in a few seconds. The pure helpers that
turn request logs into figures are checked on hand-made logs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import push_destinations as bench

HUBSPOT_LIMIT = (10, 1_000)


@pytest.fixture(scope="module")
def outcome(
    server_url: str, sandbox_tls_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> bench.Outcome:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DONOR_SYNC_DB_URL", server_url)
        options = bench.Options(
            size=300,
            hubspot_limit=HUBSPOT_LIMIT,
            bulk_threshold=250,
            bulk_first_poll_wait_s=0.05,
            db_name=f"ds_t_bench_push_{os.getpid()}",
        )
        return bench.run(options, tls_dir=sandbox_tls_dir)


def _metric(outcome: bench.Outcome, name: str) -> dict[str, object]:
    return outcome.value(name)


def test_every_queued_record_lands_in_both_emulators(outcome: bench.Outcome) -> None:
    for destination in ("hubspot", "salesforce"):
        landed = _metric(outcome, f"{destination}_records_landed")
        by_entity = landed["by_entity"]
        assert isinstance(by_entity, dict)
        assert by_entity
        assert all(v["landed"] == v["queued"] > 0 for v in by_entity.values()), by_entity
        assert landed["value"] == landed["queued"]
        assert landed["outbox_states"] == {"succeeded": landed["queued"]}
        assert _metric(outcome, f"{destination}_dead_letters")["value"] == 0
    hubspot = _metric(outcome, "hubspot_records_landed")["by_entity"]
    assert isinstance(hubspot, dict)
    # The sample's donors made email choices: their subscription statuses are checked too.
    assert set(hubspot) == {"contact", "deal", "deal_contact_association", "subscription_statuses"}
    assert hubspot["deal"]["queued"] == outcome.parameters["gifts"]


def test_hubspot_is_paced_to_its_limit_without_a_429(outcome: bench.Outcome) -> None:
    limit, interval_ms = HUBSPOT_LIMIT
    errors = _metric(outcome, "hubspot_429s")
    assert errors["value"] == 0
    assert 0 < int(str(errors["peak_requests_in_any_window"])) <= limit
    requests = _metric(outcome, "hubspot_requests")
    by_endpoint = requests["by_endpoint"]
    assert isinstance(by_endpoint, dict)
    assert requests["value"] == requests["emulator_logged"] == sum(by_endpoint.values())
    assert requests["value"] >= requests["minimum_writes"] > limit  # the limiter had to wait
    throughput = _metric(outcome, "hubspot_throughput")
    wall = _metric(outcome, "hubspot_push_wall_time")["value"]
    assert isinstance(wall, float)
    # More requests than one window allows, at no more than the limit's rate (plus the first burst).
    assert float(wall) >= (int(str(requests["value"])) - limit) / limit * (interval_ms / 1000) * 0.95
    compared = next(c for c in outcome.compared if c["name"] == "hubspot_throughput_vs_rate_limit_ceiling")
    assert compared["ratio"] == throughput["ratio_to_ceiling"]
    assert compared["no_record_lost"] is True


def test_salesforce_uses_bulk_jobs_above_the_threshold_and_counts_every_call(outcome: bench.Outcome) -> None:
    queued = outcome.parameters["salesforce"]["queued"]
    above = [e for e, n in queued.items() if n > 250]
    assert above  # contacts and opportunities
    calls = _metric(outcome, "salesforce_api_calls")
    by_endpoint = calls["by_endpoint"]
    assert isinstance(by_endpoint, dict)
    for step in (
        "job_create",
        "upload",
        "close",
        "successful_results",
        "failed_results",
        "unprocessed_records",
    ):
        assert by_endpoint[step] == len(above), step
    assert by_endpoint["poll"] >= len(above)
    assert by_endpoint["token"] == 1
    # What the emulator counted is what Sforce-Limit-Info reported: every call but the token and
    # the versions list.
    assert calls["value"] == calls["sforce_limit_info_used"]
    assert calls["value"] == sum(by_endpoint.values()) - by_endpoint["token"] - by_endpoint["versions"]
    minimum = _metric(outcome, "salesforce_api_calls_minimum")
    assert 0 < int(str(minimum["value"])) <= int(str(calls["value"]))


def test_a_rerun_with_nothing_changed_writes_nothing(outcome: bench.Outcome) -> None:
    for destination in ("hubspot", "salesforce"):
        rerun = _metric(outcome, f"{destination}_rerun_queued")
        assert rerun["value"] == 0
        assert rerun["full_unchanged"] == _metric(outcome, f"{destination}_records_landed")["queued"]
        assert _metric(outcome, f"{destination}_rerun_write_requests")["value"] == 0
        verdict = next(c for c in outcome.compared if c["name"] == f"{destination}_rerun_makes_no_write")
        assert verdict["ok"] is True


@pytest.mark.parametrize(
    ("queued", "expected"),
    [
        pytest.param(
            {"contact": 100_000}, {"full_jobs": 10, "minimum": 50, "reading": 70}, id="ten-full-jobs"
        ),
        pytest.param({"contact": 15_000}, {"full_jobs": 1, "minimum": 10, "reading": 14}, id="remainder-job"),
        pytest.param(
            {"contact": 10_600}, {"full_jobs": 1, "minimum": 8, "reading": 10}, id="remainder-collections"
        ),
        pytest.param(
            {"household": 1_500}, {"full_jobs": 0, "minimum": 5, "reading": 7}, id="below-threshold"
        ),
        pytest.param({"household": 150}, {"full_jobs": 0, "minimum": 1, "reading": 1}, id="one-collection"),
    ],
)
def test_salesforce_minimum(queued: dict[str, int], expected: dict[str, int]) -> None:
    (got,) = bench._salesforce_minimum(queued, threshold=2_000, job_size=10_000).values()
    assert (got["full_jobs"], got["minimum"], got["minimum_reading_all_results"]) == (
        expected["full_jobs"],
        expected["minimum"],
        expected["reading"],
    )


def test_request_log_figures() -> None:
    log = [{"method": "POST", "path": "/x", "at": 100.0 + i * 0.1} for i in range(10)]  # a 1 s burst
    log += [{"method": "POST", "path": "/x", "at": 110.0 + i} for i in range(30)]  # then 1 per second
    assert bench._peak_window(log, 10.0) == 10
    assert bench._steady_ratio(log, 10, 10.0) == pytest.approx(1.0, abs=0.01)
    assert bench._steady_ratio(log[:5], 10, 10.0) is None  # too short to have a steady state


@pytest.mark.parametrize(
    ("destination", "method", "path", "write"),
    [
        ("hubspot", "POST", "/crm/v3/objects/contacts/batch/upsert", True),
        ("hubspot", "POST", "/crm/v3/objects/contacts/batch/read", False),
        ("hubspot", "POST", "/crm/v3/objects/deals/search", False),
        ("hubspot", "GET", "/crm/v3/properties/contacts", False),
        ("salesforce", "POST", "/services/oauth2/token", False),
        ("salesforce", "PATCH", "/services/data/v62.0/jobs/ingest/750x", True),
        ("salesforce", "GET", "/services/data/v62.0/query", False),
    ],
)
def test_write_requests(destination: str, method: str, path: str, write: bool) -> None:
    assert bench._is_write(destination, {"method": method, "path": path}) is write


@pytest.mark.parametrize(
    ("method", "path", "endpoint"),
    [
        ("POST", "/services/data/v62.0/jobs/ingest", "job_create"),
        ("PUT", "/services/data/v62.0/jobs/ingest/7501/batches", "upload"),
        ("PATCH", "/services/data/v62.0/jobs/ingest/7501", "close"),
        ("GET", "/services/data/v62.0/jobs/ingest/7501", "poll"),
        ("GET", "/services/data/v62.0/jobs/ingest/7501/successfulResults/", "successful_results"),
        ("GET", "/services/data/v62.0/jobs/ingest/7501/unprocessedrecords/", "unprocessed_records"),
        ("GET", "/services/data/v62.0/query/01gX-2000", "soql_query"),
        ("POST", "/services/data/v62.0/composite/sobjects/Contact/Donor_Sync_Id__c", "collections"),
    ],
)
def test_salesforce_endpoints(method: str, path: str, endpoint: str) -> None:
    assert bench._salesforce_endpoint({"method": method, "path": path}) == endpoint
