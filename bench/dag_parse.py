"""How long parsing each DAG file takes: the dag processor re-parses every file continually.

Measured two ways, each file in a fresh interpreter so nothing is cached between samples:
- ``parse``: importing the DAG file in a process where Airflow's SDK is already imported, which
  is the dag processor's situation (the figure the README quotes);
- ``cold``: a whole fresh ``python`` that imports Airflow and then the file, for context.

Usage: ``python bench/dag_parse.py [--size REPEATS]`` (default 7 samples per file).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from typing import Any

from _common import REPO_ROOT, add_common_arguments, headline, metric, write_result

#: The size ``donor-sync bench --ci`` runs it at (samples per file).
CI_SIZE = 1

_PROBE = r"""
import json, runpy, sys, time
t0 = time.perf_counter()
import airflow.sdk
from airflow.sdk import DAG
t1 = time.perf_counter()
runpy.run_path(sys.argv[1])
t2 = time.perf_counter()
print(json.dumps({"airflow_import_s": t1 - t0, "parse_s": t2 - t1, "cold_s": t2 - t0}))
"""


def _sample(path: str, env: dict[str, str]) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, path], capture_output=True, text=True, check=True, env=env
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def sections(metrics: list[dict[str, Any]]) -> dict[str, Any]:
    """Return the metrics with the spread over the DAG files added, and the README table's rows."""
    per_file = {m["name"]: m["value"] for m in metrics}
    medians = [v for k, v in per_file.items() if k.endswith(".parse_median") and not k.startswith("all.")]
    colds = [v for k, v in per_file.items() if k.endswith(".cold_median") and not k.startswith("all.")]
    spread = [
        metric("all.parse_median_lowest", min(medians), "s", note="the lowest median of any DAG file"),
        metric("all.parse_median_highest", max(medians), "s", note="the highest median of any DAG file"),
        metric(
            "all.cold_median", round(statistics.median(colds), 4), "s", note="median of the files' medians"
        ),
    ]
    return {
        "metrics": [*metrics, *(m for m in spread if m["name"] not in per_file)],
        "headlines": [
            headline(
                "DAG file parse time (Airflow already imported, as in the dag processor)",
                "{all.parse_median_lowest:ms} to {all.parse_median_highest:ms} ms median per file,"
                " {all.parse_max:ms} ms worst",
            ),
            headline("DAG file cold import (fresh interpreter incl. Airflow)", "{all.cold_median} s median"),
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=7, help="samples per DAG file")
    add_common_arguments(parser)
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="bench-airflow-")
    env = {
        **os.environ,
        "AIRFLOW_HOME": home,
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "PYTHONPATH": f"{REPO_ROOT}:{REPO_ROOT / 'plugins'}",
    }
    metrics = []
    worst = 0.0
    for path in sorted((REPO_ROOT / "dags").glob("*.py")):
        samples = [_sample(str(path), env) for _ in range(args.size)]
        parse = [s["parse_s"] for s in samples]
        cold = [s["cold_s"] for s in samples]
        worst = max(worst, *parse)
        metrics.append(metric(f"{path.stem}.parse_median", round(statistics.median(parse), 4), "s"))
        metrics.append(metric(f"{path.stem}.parse_max", round(max(parse), 4), "s"))
        metrics.append(metric(f"{path.stem}.cold_median", round(statistics.median(cold), 4), "s"))
        print(
            f"{path.name:<24} parse median {statistics.median(parse) * 1000:7.1f} ms  "
            f"max {max(parse) * 1000:7.1f} ms   cold median {statistics.median(cold):5.2f} s"
        )
    metrics.append(metric("all.parse_max", round(worst, 4), "s"))
    parameters = {"size": args.size, "samples_per_file": args.size}
    result = write_result("dag_parse", parameters, **sections(metrics), results_dir=args.results_dir)
    print(f"wrote {result}")


if __name__ == "__main__":
    main()
