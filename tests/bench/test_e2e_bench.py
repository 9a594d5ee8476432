"""bench/e2e_hourly.py at a tiny size: it runs end to end, and its JSON says what happened.

The script runs as ``make bench`` runs it -- its own interpreter, ``--size`` and
``--results-dir`` -- over 300 gifts, then again with 1,000 donors already in core, into a
temporary results folder (never bench/results). The result must follow the harness's schema, and
its figures must agree with each other: every expected donor and gift landed once, the donors
already in core were not sent again, the rate-limit floor is what the vendor's calls and limits
give.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import e2e_hourly as bench
from _common import validate_result

BENCH = Path(bench.__file__).resolve().parent
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("airflow")]

SIZE = 300
CORE = 1_000


@pytest.fixture(scope="module")
def result(server_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("e2e-results")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env["DONOR_SYNC_DB_URL"] = server_url
    args = [
        sys.executable, str(BENCH / "e2e_hourly.py"), "--size", str(SIZE), "--core-donors", str(CORE),
        "--results-dir", str(out), "--db-name", f"ds_t_bench_e2e_{os.getpid()}",
    ]  # fmt: skip
    completed = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    payload: dict[str, Any] = json.loads((out / "e2e_hourly.json").read_text())
    return payload


def _metric(result: dict[str, Any], name: str) -> dict[str, Any]:
    return next(m for m in result["metrics"] if m["name"] == name)


def test_the_result_follows_the_schema_and_every_check_holds(result: dict[str, Any]) -> None:
    assert validate_result(result) == []
    assert result["command"].startswith(f"python bench/e2e_hourly.py --size {SIZE} --core-donors {CORE}")
    assert "--results-dir" not in result["command"]
    assert result["parameters"]["size"] == SIZE
    assert result["parameters"]["core_donors"] == [0, CORE]
    assert SIZE * 0.8 < result["parameters"]["sample_gifts"] < SIZE * 1.3
    checks = {c["name"]: c["ok"] for c in result["checks"]}
    assert checks == {
        "run_succeeded": True,
        "everything_landed_once": True,
        f"run_succeeded_core_{CORE}": True,
        f"everything_landed_once_core_{CORE}": True,
    }


@pytest.mark.parametrize("suffix", ["", f"_core_{CORE}"])
def test_each_run_is_timed_by_task_and_measured(result: dict[str, Any], suffix: str) -> None:
    wall = _metric(result, f"wall_time{suffix}")
    assert wall["unit"] == "s"
    assert wall["run_status"] == "success"
    stages = wall["stages"]
    for task in ("extract_stripe", "extract_csv_drop", "drain_webhook_inbox", "standardize", "resolve"):
        assert stages[task] > 0, task
    for destination in ("salesforce", "hubspot", "mailchimp", "braze"):
        assert stages[f"push_{destination}"] > 0
    # The command's wall time holds the run's own span and every task's time.
    assert wall["value"] > wall["run_seconds"] > 0
    assert wall["value"] > sum(stages.values())
    memory = _metric(result, f"peak_rss_tree{suffix}")
    assert memory["processes"] >= 2  # this process and the Airflow one
    assert memory["value"] >= memory["pss_gib"] > 0.1
    records = _metric(result, f"records{suffix}")
    assert set(records["read_by_source"]) >= {"stripe", "donorbox", "classy"}
    assert records["value"] == sum(records["read_by_source"].values())
    assert set(records["pushed"]) >= {"salesforce", "hubspot", "mailchimp", "braze"}


@pytest.mark.parametrize("suffix", ["", f"_core_{CORE}"])
def test_every_destination_holds_what_the_data_says_once(result: dict[str, Any], suffix: str) -> None:
    landed = _metric(result, f"landed{suffix}")
    assert landed["problems"] == []
    by_destination = landed["by_destination"]
    assert set(by_destination) >= {
        "salesforce.contact",
        "salesforce.opportunity",
        "hubspot.deal",
        "braze.user",
    }
    for where, counts in by_destination.items():
        assert counts["expected"] > 0, where
        assert counts["landed"] + counts["dead_letters"] == counts["expected"], (where, counts)
        assert counts["held"] + counts["one_record_per_email"] == counts["landed"], (where, counts)
        assert counts["duplicates"] == 0, where
    assert landed["value"] == sum(c["landed"] for c in by_destination.values())
    assert all(c["not_queued"] == 0 for c in landed["coverage"].values())


def test_the_donors_already_in_core_are_not_sent_again(result: dict[str, Any]) -> None:
    seeded = _metric(result, f"setup_core_core_{CORE}")
    assert seeded["donors"] == CORE
    assert seeded["gifts"] >= CORE
    plain = _metric(result, "landed")["by_destination"]
    with_core = _metric(result, f"landed_core_{CORE}")["by_destination"]
    # The same sample lands the same donors and gifts; the thousand synced before stay put.
    for where in ("salesforce.contact", "salesforce.opportunity", "hubspot.contact", "hubspot.deal"):
        assert with_core[where]["landed"] <= plain[where]["landed"] + 5, where
        assert with_core[where]["expected"] < CORE, where


def test_the_rate_limit_floor_is_what_the_calls_and_limits_give(result: dict[str, Any]) -> None:
    for suffix in ("", f"_core_{CORE}"):
        vendors = _metric(result, f"vendor_calls{suffix}")["by_vendor"]
        assert vendors["hubspot"]["calls"] > 0
        assert vendors["hubspot"]["floor_s"] == max(0, math.ceil(vendors["hubspot"]["calls"] / 100) - 1) * 10
        assert _metric(result, f"vendor_calls{suffix}")["value"] == sum(v["calls"] for v in vendors.values())
        compared = next(c for c in result["compared"] if c["metric"] == f"wall_time{suffix}")
        assert compared["value"] == pytest.approx(sum(v["floor_s"] for v in vendors.values()), abs=0.05)
        assert compared["better"] == "lower"


@pytest.mark.parametrize(
    ("calls", "limit", "window", "floor"),
    [
        (100, 100, 10.0, 0.0),
        (101, 100, 10.0, 10.0),
        (250, 100, 10.0, 20.0),
        (30, 25, 1.0, 1.0),
        (5, 0, 1.0, 0.0),
    ],
)
def test_windows(calls: int, limit: int, window: float, floor: float) -> None:
    assert bench._windows(calls, limit, window) == floor
