"""The benchmark harness: discovery, one real benchmark end to end, failures, the README table, the plots.

The runner is driven through the real ``donor-sync bench`` command. Failures are shown on a
repository of its own (``DONOR_SYNC_HOME``) whose bench/ holds the real ``_common.py`` and
``_report.py`` beside small scripts that fail in each way a benchmark can. The committed README
table must be what the committed results render to.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from donor_sync.bench_runner import available, ci_size
from tests.conftest import REPO_ROOT

BENCH = REPO_ROOT / "bench"
sys.path.insert(0, str(BENCH))

import _common  # noqa: E402 - bench/ is not a package
import _plots  # noqa: E402
import _report  # noqa: E402

#: Every benchmark this repository had when the harness was written (others may join).
KNOWN = {
    "aggregates",
    "dag_parse",
    "datagen",
    "dedup_febrl",
    "dedup_sample",
    "incremental_run",
    "match_one",
    "outbox_queue",
    "privacy",
    "push_destinations",
    "scaling",
    "staging_copy",
    "standardize",
    "standardize_fields",
}


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "donor_sync", "bench", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "plugins"), **(env or {})},
        cwd=REPO_ROOT,
        check=False,
    )


def _sample(name: str, metrics: list[dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
    """A result as write_result builds it, with the machine, commit and times fixed."""
    return _common.build_result(
        name,
        kwargs.pop("parameters", {"size": 1000}),
        metrics,
        kwargs.pop("compared", None),
        title=kwargs.pop("title", name.replace("_", " ").capitalize()),
        command=f"python bench/{name}.py --size 1000",
        machine_info={"cpu_count": 2, "memory_gib": 8.0},
        commit="0" * 40,
        recorded_at="2026-01-02T03:04:05+00:00",
        duration_s=1.5,
        **kwargs,
    )


# -- discovery --------------------------------------------------------------------------------------


def test_the_runner_finds_every_benchmark_script() -> None:
    found = available()
    assert set(found) >= KNOWN
    on_disk = {p.stem for p in BENCH.glob("*.py") if not p.name.startswith("_")}
    assert set(found) == on_disk
    assert not any(name.startswith("_") for name in found)
    for name in KNOWN:
        assert isinstance(ci_size(found[name]), int), f"{name} declares no CI_SIZE"


@pytest.mark.parametrize("name", sorted(available()))
def test_every_benchmark_takes_a_size_and_a_results_dir(name: str) -> None:
    completed = subprocess.run(
        [sys.executable, str(BENCH / f"{name}.py"), "--help"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "--size" in completed.stdout
    assert "--results-dir" in completed.stdout


def test_ci_size_is_read_from_the_script_without_running_it(tmp_path: Path) -> None:
    script = tmp_path / "x.py"
    script.write_text("raise SystemExit('never run')\nCI_SIZE: int = 1_500\n")
    assert ci_size(script) == 1_500
    script.write_text("CI_SIZE = 'big'\n")
    assert ci_size(script) is None
    script.write_text("SIZE = 3\n")
    assert ci_size(script) is None


# -- one real benchmark, end to end ----------------------------------------------------------------


def test_a_tiny_benchmark_runs_end_to_end_into_its_own_results_dir(tmp_path: Path) -> None:
    readme_before = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    committed = (BENCH / "results" / "dedup_febrl.json").read_bytes()
    completed = _cli("dedup_febrl", "--size", "150", "--results-dir", str(tmp_path))
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "dedup_febrl: ok" in completed.stdout
    payload = json.loads((tmp_path / "dedup_febrl.json").read_text(encoding="utf-8"))
    assert _common.validate_result(payload) == []
    assert payload["command"] == "python bench/dedup_febrl.py --size 150"
    assert payload["parameters"]["size"] == 150
    assert payload["git_commit"] == _common.git_commit()
    assert payload["duration_s"] > 0
    f1 = [m for m in payload["metrics"] if m["name"].endswith("_f1")]
    assert len(f1) == 8
    for entry in f1:
        assert entry["records"] <= 150 * 2  # febrl4 links two files of 150
        assert entry["met"] == (entry["value"] >= float(entry["goal"].split()[-1]))
    assert _report.missing_fields(payload) == []
    # Neither the committed result nor the README table was touched.
    assert (BENCH / "results" / "dedup_febrl.json").read_bytes() == committed
    assert (REPO_ROOT / "README.md").read_text(encoding="utf-8") == readme_before


# -- failures -----------------------------------------------------------------------------------------

_FINE = """\
import argparse, sys
from _common import add_common_arguments, headline, metric, write_result
CI_SIZE = 7
parser = argparse.ArgumentParser()
parser.add_argument("--size", type=int, default=100)
add_common_arguments(parser)
args = parser.parse_args()
write_result(
    "fine",
    {"size": args.size},
    [metric("wall_time", 0.5, "s", goal="< 1")],
    headlines=[headline("fine over {p.size:,} things", "{wall_time} s and {no_such_metric}")],
    results_dir=args.results_dir,
)
"""


@pytest.fixture
def fake_repo(tmp_path: Path) -> Path:
    """A repository whose bench/ holds the real helpers and benchmarks that fail in every way."""
    bench = tmp_path / "repo" / "bench"
    bench.mkdir(parents=True)
    for helper in ("_common.py", "_report.py"):
        shutil.copy(BENCH / helper, bench / helper)
    (bench / "fine.py").write_text(_FINE)
    (bench / "boom.py").write_text("CI_SIZE = 1\nraise SystemExit(3)\n")
    (bench / "silent.py").write_text("CI_SIZE = 1\nprint('measured nothing')\n")
    (bench / "sloppy.py").write_text(
        "import os, json, pathlib\nCI_SIZE = 1\n"
        "folder = pathlib.Path(os.environ['DONOR_SYNC_BENCH_RESULTS'])\n"
        "(folder / 'sloppy.json').write_text(json.dumps({'name': 'sloppy', 'metrics': []}))\n"
    )
    (bench / "unsized.py").write_text("raise SystemExit('--ci must not run a benchmark without CI_SIZE')\n")
    return tmp_path / "repo"


def test_a_failing_benchmark_is_named_and_the_others_still_run(fake_repo: Path, tmp_path: Path) -> None:
    results = tmp_path / "results"
    completed = _cli(
        "boom",
        "fine",
        "silent",
        "sloppy",
        "--results-dir",
        str(results),
        env={"DONOR_SYNC_HOME": str(fake_repo)},
    )
    assert completed.returncode == 1
    error = completed.stderr
    assert "3 of 4 benchmark(s) failed" in error
    assert "boom: FAILED with exit code 3" in error
    assert "silent: FAILED: wrote no result" in error
    assert "sloppy: FAILED: sloppy.json: " in error
    assert "title: missing" in error
    assert "fine:" not in error
    # The one after the failure ran and wrote a valid result; its row names a figure it lacks.
    assert "fine: ok" in completed.stdout
    assert "warning: README row names a figure the result lacks: fine: no_such_metric" in completed.stdout
    fine = json.loads((results / "fine.json").read_text(encoding="utf-8"))
    assert _common.validate_result(fine) == []
    assert fine["metrics"][0]["met"] is True
    assert "README table is drawn from bench/results only" in completed.stdout


def test_ci_mode_runs_each_at_its_ci_size_and_skips_those_without_one(
    fake_repo: Path, tmp_path: Path
) -> None:
    results = tmp_path / "ci"
    completed = _cli(
        "fine", "unsized", "--ci", "--results-dir", str(results), env={"DONOR_SYNC_HOME": str(fake_repo)}
    )
    assert completed.returncode == 0, completed.stderr
    assert "unsized: skipped (it declares no CI_SIZE and no --size was given)" in completed.stdout
    fine = json.loads((results / "fine.json").read_text(encoding="utf-8"))
    assert fine["parameters"]["size"] == 7
    assert fine["command"] == "python bench/fine.py --size 7"


def test_an_unknown_benchmark_is_refused_before_anything_runs(tmp_path: Path) -> None:
    completed = _cli("staging_copy", "no_such_bench", "--results-dir", str(tmp_path))
    assert completed.returncode == 1
    assert "unknown benchmark(s) no_such_bench" in completed.stderr
    assert list(tmp_path.iterdir()) == []


# -- the schema ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "goal", "met"),
    [
        pytest.param(119.9, "< 120", True, id="under"),
        pytest.param(120, "< 120", False, id="at-a-strict-bound"),
        pytest.param(2, "<= 2", True, id="at-most"),
        pytest.param(0.949, ">= 0.95", False, id="below-a-floor"),
        pytest.param(0, "0", True, id="bare-number-is-equality"),
        pytest.param(1, "0", False, id="not-equal"),
        pytest.param(59, "well under 60", True, id="prose-bound"),
        pytest.param(1_948, "<= 2,000", True, id="thousands-separator"),
        pytest.param(5, "as fast as we can", None, id="prose-is-not-judged"),
        pytest.param(None, "< 1", None, id="no-value"),
        pytest.param(True, "== 1", None, id="a-flag-is-not-a-number"),
    ],
)
def test_goals_are_judged(value: Any, goal: str, met: bool | None) -> None:
    assert _common.goal_met(value, goal) is met


def test_a_result_that_breaks_the_schema_is_described() -> None:
    good = _sample("staging_copy", [_common.metric("wall_time", 1.0, "s", goal="< 2")])
    assert _common.validate_result(good) == []
    assert good["metrics"][0]["met"] is True
    bad = json.loads(json.dumps(good))
    bad["parameters"] = {}
    bad["metrics"].append({"name": "wall_time", "value": 2, "unit": "s"})
    bad["compared"] = [{"system": "psql", "ratio": "fast", "better": "sideways", "metrics": []}]
    bad["checks"] = [{"name": "x", "ok": "yes"}]
    assert _common.validate_result(bad) == [
        "parameters: no size",
        "metrics[1]: duplicate name 'wall_time'",
        "compared[0]: ratio is not a number or null",
        "compared[0]: better is not lower, higher or null",
        "checks[0]: ok is not true, false or null",
    ]


def test_older_compared_entries_are_sorted_into_comparisons_and_checks() -> None:
    result = _sample(
        "push_destinations",
        [_common.metric("throughput", 99.0, "requests per 10 s")],
        compared=[
            {"name": "vs_ceiling", "ratio": 0.99, "metric": "throughput"},
            {"name": "rerun_writes_nothing", "ok": True, "value": 0},
            _common.comparison(
                "a ceiling",
                label="ceiling",
                metric="throughput",
                ours=99.0,
                theirs=100,
                unit="x",
                better="higher",
            ),
        ],
    )
    assert [c["system"] for c in result["compared"]] == ["vs_ceiling", "a ceiling"]
    assert result["compared"][1]["ratio"] == 0.99
    assert result["compared"][1]["ours_better"] is False
    assert result["checks"] == [{"ok": True, "name": "rerun_writes_nothing", "value": 0}]
    assert _common.validate_result(result) == []


def test_the_command_leaves_out_where_the_result_went() -> None:
    argv = [str(BENCH / "standardize.py"), "--size", "10", "--results-dir", "/tmp/x", "--seed=3"]
    assert _common.reproduce_command(argv) == "python bench/standardize.py --size 10 --seed=3"
    assert (
        _common.reproduce_command([*argv[:3], "--results-dir=/tmp/y"])
        == "python bench/standardize.py --size 10"
    )


# -- the README table ----------------------------------------------------------------------------------


def _table_samples() -> list[dict[str, Any]]:
    staging = _sample(
        "staging_copy",
        [
            _common.metric("ours_wall_time", 3.29, "s", peak_rss_mib=74.0),
            _common.metric("ratio", 1.32, "ratio", goal="<= 2", label="ours / psql"),
        ],
        parameters={"size": 1_000_000, "file_bytes": 201_790_290},
        compared=[
            _common.comparison(
                "psql",
                label="psql \\copy",
                metric="ours_wall_time",
                ours=3.29,
                theirs=2.48,
                unit="s",
                better="lower",
            ),
            _common.comparison(
                "pandas",
                label="pandas | to_sql",
                metric="ours_wall_time",
                ours=3.29,
                theirs=39.3,
                unit="s",
                better="lower",
            ),
        ],
        headlines=[
            _common.headline(
                "staging {p.size:,} rows ({p.file_bytes:MB} MB)",
                "{ours_wall_time} s, {ours_wall_time.peak_rss_mib:.0f} MiB, {missing.thing}",
                ["ours_wall_time", "ratio"],
            )
        ],
    )
    dedup = _sample(
        "dedup_sample",
        [
            _common.metric("f1", 0.894, "ratio", goal=">= 0.9"),
            _common.metric("peak_rss", 3.52, "GiB", goal="< 4"),
        ],
    )
    return [dedup, staging]


EXPECTED_TABLE = [
    "| figure | result | compared in the same run | floor / goal | met | reproduce |",
    "|---|---|---|---|---|---|",
    "| staging 1,000,000 rows (202 MB) | 3.29 s, 74 MiB, n/a"
    " | 1.33x psql \\copy (2.48 s); 11.9x faster than pandas \\| to_sql (39.3 s)"
    " | ours / psql <= 2 | yes"
    " | `python bench/staging_copy.py --size 1000` → `bench/results/staging_copy.json` (2026-01-02) |",
]


def test_the_table_is_rendered_from_the_results_deterministically() -> None:
    samples = _table_samples()
    ordered = sorted(samples, key=_report._order)
    assert [r["name"] for r in ordered] == ["staging_copy", "dedup_sample"]  # the pipeline's order
    table = _report.render_table(ordered)
    assert table == _report.render_table(sorted(_table_samples(), key=_report._order))
    lines = table.splitlines()
    assert lines[:3] == EXPECTED_TABLE
    # A result without headlines: one row of its goals, judged (0.894 misses >= 0.9).
    dedup = [c.strip() for c in lines[3].strip("|").split(" | ")]
    assert dedup[:2] == ["Dedup sample", "F1 0.894, peak RSS 3.52 GiB"]
    assert dedup[3:5] == ["F1 >= 0.9; peak RSS < 4 GiB", "**no**"]
    assert _report.missing_fields(samples[1]) == ["staging_copy: missing.thing"]


def test_numbers_are_written_the_table_way() -> None:
    assert [_report.number(v) for v in (1_948, 11_399_777.0, 0.242, 50.04, 104.04, 0.0, None, [1, 2.5])] == [
        "1,948",
        "11,399,777",
        "0.242",
        "50.0",
        "104",
        "0",
        "n/a",
        "1, 2.50",
    ]
    result = _sample("x", [_common.metric("a.b", 0.1512, "s", detail={"p>=0.5": {"f1": 0.99}})])
    assert _report.fill("{a.b:ms} ms; {a.b.detail.p>=0.5.f1:.3f}; {a.b:inv}", result) == "151 ms; 0.990; 6.61"


def test_render_replaces_only_the_block_between_the_markers(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    for sample in _table_samples():
        (results / f"{sample['name']}.json").write_text(_common.dump(sample))
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n## Performance\n\nintro\n\n{_report.BEGIN}\nstale\n{_report.END}\n\n## Next\n")
    args = ["--readme", str(readme), "--results-dir", str(results), "--no-plots"]
    assert _report.main([*args, "--check"]) == 1
    assert _report.main(args) == 0
    text = readme.read_text()
    assert text.startswith("# x\n\n## Performance\n\nintro\n\n<!-- bench:begin -->\n")
    assert text.endswith("<!-- bench:end -->\n\n## Next\n")
    assert "stale" not in text
    assert "| staging 1,000,000 rows (202 MB) |" in text
    assert _report.main([*args, "--check"]) == 0
    assert _report.render_readme(readme, results) is False  # nothing left to change


def test_the_readme_table_is_current_with_the_committed_results() -> None:
    results = _report.load_results(BENCH / "results")
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert _report.current_section(readme) == _report.render_section(results), (
        "the README's performance table is stale: run `donor-sync bench --render-only`"
    )
    for result in results:
        assert _report.missing_fields(result) == [], result["name"]
        if result["name"] in KNOWN:  # a newcomer without rows gets one of its goals
            assert result["headlines"], f"{result['name']} declares no README row"


def test_the_readme_keeps_each_issue_figure() -> None:
    """The figures the issues set floors for are in the table with their floors, judged."""
    section = _report.current_section((REPO_ROOT / "README.md").read_text(encoding="utf-8"))
    rows = {line.split(" | ")[0].lstrip("| "): line for line in section.splitlines() if line.startswith("| ")}

    def row(start: str) -> str:
        return next(line for figure, line in rows.items() if figure.startswith(start))

    assert "wall time < 120 s" in row("sample data, 1,000,000 donors")
    assert "psql \\copy" in row("staging 1,000,000 CSV rows")
    assert "pandas.to_sql" in row("staging 1,000,000 CSV rows")
    assert "wall time < 60 s" in row("standardizing")
    assert "Splink's pair F1" in row("dedup of the sample generator's 1,000,000 donors")
    assert "median latency < 50 ms" in row("matching one new donor against 1,000,000")
    assert "ratio to the rate-limit ceiling >= 0.95" in row("pushing 100,000 donors")
    assert "0 mismatches" in row("consent state of 100,000 donors")
    for line in rows.values():
        assert "**no**" not in line, line


# -- the plots ------------------------------------------------------------------------------------------


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_the_scaling_plots_are_pngs_of_the_expected_size(tmp_path: Path) -> None:
    metrics = []
    for stage in ("staging", "dedup"):
        for i, records in enumerate((10_000, 100_000, 1_000_000)):
            common = {"stage": stage, "records": records}
            metrics.append(_common.metric(f"{stage}_{i}_wall_time", 0.03 * (i + 1) ** 2, "s", **common))
            metrics.append(_common.metric(f"{stage}_{i}_peak_rss", 70.0 + 10 * i, "MiB", **common))
    result = _sample("scaling", metrics, parameters={"size": 1_000_000, "stage_titles": {"dedup": "dedup"}})
    drawn = _plots.render_scaling(result, tmp_path / "plots")
    assert [p.name for p in drawn] == ["scaling_dedup.png", "scaling_staging.png"]
    for path in drawn:
        assert path.stat().st_size > 10_000
        assert _png_size(path) == (1000, 400)
    assert _plots.series(result)["staging"]["MiB"] == [
        (10_000.0, 70.0),
        (100_000.0, 80.0),
        (1_000_000.0, 90.0),
    ]
    # The same result draws the same bytes.
    again = _plots.render_scaling(result, tmp_path / "again")
    assert [p.read_bytes() for p in again] == [p.read_bytes() for p in drawn]
