"""Benchmark how staging, standardization and dedup scale: wall time and peak memory against records.

Run from the repository root: ``.venv/bin/python bench/scaling.py --size 1000000`` (about ten
minutes on two shared cores); ``--sizes 10000,100000`` picks the sizes instead. ``--size N`` is the
largest size; the curve is measured at N/100, N/30, N/10, N/3 and N records (dedup stops at
``--dedup-max`` records: its memory grows fastest, and bench/dedup_sample.py has the 1,000,000
figure). Each point runs in a fresh child interpreter, so its time and peak memory (VmHWM: its own
image, not a parent's) are its own; Postgres works in its own processes and is not counted.

- ``staging``: a bank-cheque CSV export of N rows (the sample's rows repeated, references unique)
  staged into raw by the CSV drop loader (``load_drop_folder``, the COPY path), as
  bench/staging_copy.py times it;
- ``standardize``: N raw records of every source (the generator's mix) landed (not timed, in a
  process of their own), then ``standardize_batches`` over them, as bench/standardize.py;
- ``dedup``: the donor records of the sample's first persons (N records, one per appearance, with
  the generator's duplicate noise) deduplicated by ``identity.dedupe`` with the shipped rules, as
  bench/dedup_sample.py (its parquet read included in the memory).

One sample (``sandbox.datagen``) serves all three. The result, ``scaling.json``, holds each
point's seconds and MiB and, per stage, how time grows between the two largest points (the slope
of log time against log records: 1.0 is linear); the plots, ``docs/bench/scaling_<stage>.png``,
are drawn from it (here, and by ``bench/_report.py``).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO_ROOT, RESULTS_DIR, add_common_arguments, bench_url, headline, metric, write_result

#: The size ``donor-sync bench --ci`` runs it at (the largest point).
CI_SIZE = 3_000
STAGES = ("staging", "standardize", "dedup")
TITLES = {
    "staging": "staging CSV rows into raw",
    "standardize": "standardizing raw records",
    "dedup": "deduplicating donor records",
}
#: Where each point sits on the curve, as a share of the largest size.
LADDER = (0.01, 0.03, 0.1, 0.3, 1.0)
#: Raw records and donor records (appearances) the generator writes per person (measured at 20,000
#: and 1,000,000 persons).
RAW_PER_PERSON = 6.79
APPEARANCES_PER_PERSON = 1.40
SEED = 7


def sizes_for(largest: int, floor: int = 100) -> list[int]:
    """Return the curve's sizes for ``largest``: the ladder's shares of it, at least ``floor``, distinct."""
    return sorted({max(floor, round(largest * share)) for share in LADDER})


def _peak_rss_mib() -> float:
    """Return this process's peak RSS in MiB (VmHWM: its own image, unlike ru_maxrss after a fork)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# -- children: one point each ----------------------------------------------------------------------


def _child_staging(url: str, file: str, workdir: str) -> dict[str, Any]:
    from staging_copy import _child_ours

    out = _child_ours(url, Path(file), Path(workdir), "copy_csv")
    return {"seconds": out["wall"], "records": out["rows"]}


def _child_standardize(url: str, data: str, size: int) -> dict[str, Any]:
    from standardize import land

    from donor_sync.db import connect
    from donor_sync.standardize.pipeline import standardize_batches
    from donor_sync.standardize.settings import load_settings

    lander = multiprocessing.get_context("spawn").Process(target=land, args=(url, data, size))
    lander.start()
    lander.join()
    if lander.exitcode != 0:
        raise SystemExit(f"landing failed with exit code {lander.exitcode}")
    settings = load_settings().with_expect_livemode("stripe", False)
    with connect(url, autocommit=True) as conn:
        conn.execute("ANALYZE raw.records")
    with connect(url) as conn:
        batch_ids = [
            int(r[0]) for r in conn.execute("SELECT batch_id FROM raw.batches ORDER BY 1").fetchall()
        ]
        row = conn.execute(
            "SELECT (SELECT count(*) FROM raw.records) + (SELECT count(*) FROM raw.csv_rows)"
        ).fetchone()
        records = int(row[0]) if row else 0
        began = time.perf_counter()
        standardize_batches(conn, batch_ids, settings=settings, now=datetime(2026, 1, 1, tzinfo=UTC))
        seconds = time.perf_counter() - began
    return {"seconds": seconds, "records": records}


def _child_dedup(parquet: str) -> dict[str, Any]:
    import pandas as pd

    from donor_sync.identity import dedupe, load_rules

    frame = pd.read_parquet(parquet)
    rules = load_rules()
    began = time.perf_counter()
    result = dedupe(frame, rules)
    seconds = time.perf_counter() - began
    return {
        "seconds": seconds,
        "records": len(frame),
        "candidate_pairs": int(result.stats["candidate_pairs"]),
    }


def _point(point: dict[str, Any]) -> str:
    return f"{point['seconds']:7.2f} s {point['peak_rss_mib']:7.1f} MiB"


def _spawn(stage: str, *args: str) -> dict[str, Any]:
    """Run one point in a fresh interpreter; return its JSON report (seconds, records, peak MiB)."""
    completed = subprocess.run(
        [sys.executable, __file__, "--child", stage, *args], stdout=subprocess.PIPE, text=True, check=True
    )
    report: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return report


# -- the stages (parent) ------------------------------------------------------------------------------


def measure_staging(sizes: list[int], sample: Path, work: Path) -> list[dict[str, Any]]:
    """Stage a CSV export of each size (a fresh database, emptied between points)."""
    from staging_copy import FORMAT, _reset, make_file

    from donor_sync.db import drop_database, ensure_database
    from donor_sync.db.migrations import upgrade

    url = bench_url("donor_sync_bench_scaling_staging")
    drop_database(url)
    ensure_database(url)
    upgrade(url)
    points = []
    try:
        for size in sizes:
            file = work / f"{FORMAT}_{size}.csv"
            make_file(file, size, work, sample=sample)
            _reset(url)
            point = _spawn("staging", url, str(file), str(work))
            file.unlink()
            points.append(point)
            print(f"staging {size:>9,}: {_point(point)}", flush=True)
    finally:
        drop_database(url)
    return points


def measure_standardize(sizes: list[int], sample: Path) -> list[dict[str, Any]]:
    """Land and standardize each size of raw records in a fresh database."""
    from donor_sync.db import drop_database, ensure_database
    from donor_sync.db.migrations import upgrade

    url = bench_url("donor_sync_bench_scaling_standardize")
    points = []
    try:
        for size in sizes:
            drop_database(url)
            ensure_database(url)
            upgrade(url)
            point = _spawn("standardize", url, str(sample), str(size))
            points.append(point)
            print(f"standardize {point['records']:>9,}: {_point(point)}", flush=True)
    finally:
        drop_database(url)
    return points


def measure_dedup(sizes: list[int], sample: Path, work: Path) -> list[dict[str, Any]]:
    """Dedupe the donor records of the sample's first persons, about each size of records."""
    import numpy as np
    import pandas as pd
    from dedup_sample import load_donors

    donors, truth = load_donors(sample)
    person = pd.factorize(truth["person_id"])[0]
    ends = np.cumsum(np.bincount(person))
    points = []
    for size in sizes:
        persons = int(np.searchsorted(ends, min(size, len(donors)))) + 1
        parquet = work / f"donors_{size}.parquet"
        donors[person < persons].reset_index(drop=True).to_parquet(parquet)
        point = _spawn("dedup", str(parquet))
        parquet.unlink()
        points.append(point)
        print(f"dedup {point['records']:>9,}: {_point(point)}", flush=True)
    return points


def exponent(points: list[dict[str, Any]]) -> float | None:
    """Return how time grows between the two largest points: the slope of log(seconds) against
    log(records) there (1.0 is linear growth; the small points carry a fixed cost, start-up and
    the first queries, that would bend a fit over every point)."""
    usable = [p for p in points if p["records"] > 0 and p["seconds"] > 0]
    if len(usable) < 2:
        return None
    below, top = sorted(usable, key=lambda p: p["records"])[-2:]
    if top["records"] == below["records"]:
        return None
    return round(math.log(top["seconds"] / below["seconds"]) / math.log(top["records"] / below["records"]), 3)


def result_sections(measured: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Return the metrics (a time and a peak per point, an exponent per stage) and a README row per stage."""
    metrics: list[dict[str, Any]] = []
    rows = []
    for stage, points in measured.items():
        for i, p in enumerate(points):
            common = {"stage": stage, "records": p["records"], "point": i}
            metrics.append(metric(f"{stage}_{i}_wall_time", round(p["seconds"], 3), "s", **common))
            metrics.append(metric(f"{stage}_{i}_peak_rss", round(p["peak_rss_mib"], 1), "MiB", **common))
        slope = exponent(points)
        metrics.append(
            metric(
                f"{stage}_time_exponent",
                slope,
                "ratio",
                note="slope of log(seconds) against log(records) between the two largest points: 1 is linear",
            )
        )
        first, last = 0, len(points) - 1
        rows.append(
            headline(
                f"scaling: {TITLES[stage]}, {{{stage}_{first}_wall_time.records:,}} to"
                f" {{{stage}_{last}_wall_time.records:,}} records"
                f" ([plot](docs/bench/scaling_{stage}.png))",
                f"{{{stage}_{first}_wall_time}} s to {{{stage}_{last}_wall_time}} s (at the top, time grows"
                f" as records to the power {{{stage}_time_exponent:.2f}}); peak memory"
                f" {{{stage}_{first}_peak_rss:.0f}} to {{{stage}_{last}_peak_rss:.0f}} MiB (load average"
                " {p.load_average_start.0} at the start: a shared machine)",
            )
        )
    return {"metrics": metrics, "headlines": rows}


def main() -> int:
    """Measure every stage at every size; write scaling.json and draw the plots."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000, help="the largest number of records")
    parser.add_argument("--sizes", default=None, help="comma-separated record counts (instead of the ladder)")
    parser.add_argument("--dedup-max", type=int, default=300_000, help="largest dedup point, in records")
    parser.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated, of {', '.join(STAGES)}")
    parser.add_argument("--plots-dir", type=Path, default=None, help="default docs/bench, or the results dir")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    add_common_arguments(parser)
    args = parser.parse_args()
    if args.child:
        stage, *rest = args.child
        runners = {
            "staging": lambda: _child_staging(*rest),
            "standardize": lambda: _child_standardize(rest[0], rest[1], int(rest[2])),
            "dedup": lambda: _child_dedup(rest[0]),
        }
        print(json.dumps({**runners[stage](), "peak_rss_mib": _peak_rss_mib()}))
        return 0

    from sandbox.datagen import GenerationConfig, generate

    stages = [s for s in args.stages.split(",") if s]
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        parser.error(f"unknown stage(s) {', '.join(unknown)}")
    sizes = sorted({int(s) for s in args.sizes.split(",")}) if args.sizes else sizes_for(args.size)
    by_stage = {
        "staging": sizes,
        "standardize": sizes,
        "dedup": [s for s in sizes if s <= args.dedup_max] or sizes[:1],
    }
    load_start = [round(x, 2) for x in os.getloadavg()]
    # One sample for every stage: enough persons for the largest standardize and dedup points.
    persons = max(
        200,
        math.ceil(max(by_stage["standardize"]) / RAW_PER_PERSON) if "standardize" in stages else 0,
        math.ceil(max(by_stage["dedup"]) / APPEARANCES_PER_PERSON * 1.05) if "dedup" in stages else 0,
    )
    measured: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="scaling-bench-") as tmp:
        work = Path(tmp)
        sample = work / "sample"
        began = time.perf_counter()
        generate(GenerationConfig(donors=persons, seed=SEED, out=sample))
        generated = time.perf_counter() - began
        print(f"sample of {persons:,} persons in {generated:.1f} s (not timed)", flush=True)
        for stage in stages:
            if stage == "staging":
                measured[stage] = measure_staging(by_stage[stage], sample, work)
            elif stage == "standardize":
                measured[stage] = measure_standardize(by_stage[stage], sample)
            else:
                measured[stage] = measure_dedup(by_stage[stage], sample, work)
        shutil.rmtree(sample)
    parameters = {
        "size": args.size if not args.sizes else max(sizes),
        "sizes": {stage: by_stage[stage] for stage in stages},
        "stage_titles": {stage: TITLES[stage] for stage in stages},
        "sample_persons": persons,
        "seed": SEED,
        "sample_generation_s": round(generated, 1),
        # The machine is small and shared: its load says how quiet the run was.
        "load_average_start": load_start,
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
    }
    path = write_result("scaling", parameters, **result_sections(measured), results_dir=args.results_dir)
    print(f"wrote {path}")
    from _plots import render_scaling

    plots = args.plots_dir or (REPO_ROOT / "docs" / "bench" if path.parent == RESULTS_DIR else path.parent)
    for drawn in render_scaling(json.loads(path.read_text()), plots):
        print(f"drew {drawn}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
