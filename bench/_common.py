"""Shared by the benchmarks: the JSON result format (see bench/README.md), the machine description.

Every benchmark ends with :func:`write_result`, which writes ``<results dir>/<name>.json``: its
name and title, the command that reproduces it, the parameters, the metrics (each with a unit,
and where there is one a goal and whether it was met), the systems it was compared with (their
figures and the ratio of ours to theirs), checks, the headline rows of the README table, the
machine, the git commit, when it was recorded and how long the run took.
"""

from __future__ import annotations

import argparse
import json
import math
import operator
import os
import platform
import re
import shlex
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
REPO_ROOT = BENCH_DIR.parent
#: The results folder a runner hands to every benchmark (``--results-dir`` overrides it).
RESULTS_ENV = "DONOR_SYNC_BENCH_RESULTS"
#: Version of the result format; 2 added title, command, checks, headlines, met, duration.
SCHEMA_VERSION = 2
#: Which way a ratio of ours to theirs is better.
BETTER = ("lower", "higher")

# When this module was imported: the benchmark's start, near enough (it is imported first).
_STARTED = time.perf_counter()


def machine() -> dict[str, Any]:
    """Describe the machine the benchmark ran on (its load average when the result was written too)."""
    mem_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "processor": platform.processor() or platform.machine(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def git_commit() -> str | None:
    """Return the checked-out commit, if this is a git checkout."""
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


# -- goals ----------------------------------------------------------------------------------------

_GOAL = re.compile(r"^\s*(<=|>=|==|<|>|well under|at most|at least)?\s*(-?[0-9][0-9_,.]*)\s*$")
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "well under": operator.lt,
    "at most": operator.le,
    "at least": operator.ge,
}


def parse_goal(goal: str) -> tuple[str, float] | None:
    """Return ``(operator, bound)`` of a goal such as ``"< 120"``, ``">= 0.95"`` or ``"0"`` (equal),
    or None when the goal is prose the harness cannot judge."""
    found = _GOAL.match(str(goal))
    if not found:
        return None
    op = found.group(1) or "=="
    return op, float(found.group(2).replace(",", "").replace("_", ""))


def goal_met(value: Any, goal: str | None) -> bool | None:
    """Return whether ``value`` meets ``goal`` (None when there is no goal, no number or no verdict)."""
    if goal is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    parsed = parse_goal(goal)
    if parsed is None or math.isnan(value):
        return None
    op, bound = parsed
    return _OPS[op](value, bound)


# -- building blocks --------------------------------------------------------------------------------


def metric(name: str, value: Any, unit: str, **extra: Any) -> dict[str, Any]:
    """Return one metric entry: ``name``, ``value``, ``unit`` and any details (``goal="< 120"``,
    ``label="wall time"``, ``note=...``)."""
    return {"name": name, "value": value, "unit": unit, **extra}


def comparison(
    system: str,
    *,
    label: str,
    metric: str,
    ours: float,
    theirs: float,
    unit: str,
    better: str,
    metrics: list[dict[str, Any]] | None = None,
    ratio: float | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Return one ``compared`` entry: another system (or a ceiling) measured beside ours.

    :param system: what it is and how it ran ("psql \\copy of the same file, same run").
    :param label: its short name in the README table ("psql \\copy").
    :param metric: the name of our metric it is compared on.
    :param ours: our value of that metric; ``theirs``: theirs, in ``unit``.
    :param better: ``"lower"`` or ``"higher"``: which side of 1 the ratio ours / theirs favours us.
    :param metrics: all of its figures (default: the compared one alone).
    :param ratio: ours / theirs when the benchmark computed it from unrounded figures (default:
        ``ours / theirs``).
    """
    if better not in BETTER:
        raise ValueError(f"better must be one of {BETTER}, not {better!r}")
    if ratio is None:
        ratio = round(ours / theirs, 4) if theirs else None
    return {
        "system": system,
        "label": label,
        "metric": metric,
        "metrics": metrics if metrics is not None else [{"name": metric, "value": theirs, "unit": unit}],
        "value": theirs,
        "unit": unit,
        "ratio": ratio,
        "ratio_of": "ours / theirs",
        "better": better,
        "ours_better": None if ratio is None else (ratio < 1 if better == "lower" else ratio > 1),
        **extra,
    }


def check(name: str, ok: bool, **extra: Any) -> dict[str, Any]:
    """Return one ``checks`` entry: a verdict the run itself asserts (``ok``), with its evidence."""
    return {"name": name, "ok": bool(ok), **extra}


def headline(
    figure: str, value: str, metrics: Iterable[str] = (), *, goal: str | None = None
) -> dict[str, Any]:
    """Return one row of the README table.

    ``figure`` and ``value`` are templates filled from the result by bench/_report.py:
    ``{wall_time}`` is that metric's value, ``{wall_time.stages.total}`` a detail of it,
    ``{p.size}`` a parameter, ``{c.<label or index>.value}`` a compared system's figure. Numbers
    are written with three significant digits; ``{x:,}``, ``{x:.1f}`` (Python's specs),
    ``{x:MB}``, ``{x:GB}`` (bytes), ``{x:ms}`` (seconds as milliseconds) and ``{x:inv}`` (1 / x)
    are understood too. ``metrics``: the metrics (or checks) whose goals, comparisons and verdicts
    the row shows; ``goal``: the goal column's text, when the metrics' own goals would say it at
    too much length.
    """
    row: dict[str, Any] = {"figure": figure, "value": value, "metrics": list(metrics)}
    if goal is not None:
        row["goal"] = goal
    return row


# -- the result -------------------------------------------------------------------------------------


def add_common_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``--results-dir`` (default ``$DONOR_SYNC_BENCH_RESULTS``, else bench/results)."""
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=None,
        help=f"where to write the result JSON (default ${RESULTS_ENV}, else bench/results)",
    )
    return parser


def resolve_results_dir(override: Path | str | None = None) -> Path:
    """Return the results folder: ``override``, else ``$DONOR_SYNC_BENCH_RESULTS``, else bench/results."""
    if override:
        return Path(override)
    env = os.environ.get(RESULTS_ENV)
    return Path(env) if env else RESULTS_DIR


def reproduce_command(argv: list[str] | None = None) -> str:
    """Return the command line that ran this benchmark, relative to the repository root, without
    ``--results-dir`` (where a result goes does not change what it measures)."""
    argv = list(sys.argv if argv is None else argv)
    script = Path(argv[0]).resolve()
    try:
        shown = str(script.relative_to(REPO_ROOT))
    except ValueError:
        shown = script.name
    args: list[str] = []
    skip = False
    for arg in argv[1:]:
        if skip:
            skip = False
            continue
        if arg == "--results-dir":
            skip = True
            continue
        if arg.startswith("--results-dir="):
            continue
        args.append(arg)
    return shlex.join(["python", shown, *args])


def _main_title() -> str | None:
    doc = getattr(sys.modules.get("__main__"), "__doc__", None)
    return doc.strip().splitlines()[0].rstrip(".") if doc and doc.strip() else None


def _normalized_metric(entry: dict[str, Any]) -> dict[str, Any]:
    out = dict(entry)
    if "goal" not in out and "target" in out:  # an older spelling of the same thing
        out["goal"] = out["target"]
    if "goal" in out:
        met = goal_met(out.get("value"), out["goal"])
        if met is not None:
            out["met"] = met
    return out


def split_compared(
    entries: Iterable[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Sort ``compared`` entries written the older way into comparisons and checks.

    An entry with ``system`` is a comparison as :func:`comparison` builds it; one without
    ``system`` but with a ``ratio`` becomes a comparison named after its ``name``; any other
    (a verdict with ``ok``) is a check.
    """
    compared: list[dict[str, Any]] = []
    checks: list[dict[str, Any]] = []
    for entry in entries:
        if "system" in entry:
            compared.append({"label": entry["system"], "ratio": None, "better": None, "metrics": [], **entry})
        elif isinstance(entry.get("ratio"), int | float):
            name = str(entry.get("name", "compared"))
            compared.append(
                {
                    "system": name,
                    "label": name.replace("_", " "),
                    "metric": entry.get("metric"),
                    "metrics": [],
                    "better": entry.get("better"),
                    "ratio_of": entry.get("ratio_of", "ours / theirs"),
                    **entry,
                }
            )
        else:
            checks.append({"ok": None, **entry})
    return compared, checks


def build_result(
    name: str,
    parameters: dict[str, Any],
    metrics: list[dict[str, Any]],
    compared: list[dict[str, Any]] | None = None,
    *,
    title: str | None = None,
    headlines: list[dict[str, Any]] | None = None,
    checks: list[dict[str, Any]] | None = None,
    command: str | None = None,
    machine_info: dict[str, Any] | None = None,
    commit: str | None = None,
    recorded_at: str | None = None,
    duration_s: float | None = None,
) -> dict[str, Any]:
    """Return the result document (what :func:`write_result` writes), goals judged."""
    systems, verdicts = split_compared(compared or [])
    for entry in systems:
        if "goal" in entry:
            met = goal_met(entry.get("ratio"), entry["goal"])
            if met is not None:
                entry["met"] = met
    return {
        "schema": SCHEMA_VERSION,
        "name": name,
        "title": title or _main_title() or name,
        "command": command or reproduce_command(),
        "parameters": parameters,
        "metrics": [_normalized_metric(m) for m in metrics],
        "compared": systems,
        "checks": [*verdicts, *(checks or [])],
        "headlines": headlines or [],
        "machine": machine_info or machine(),
        "git_commit": commit if commit is not None else git_commit(),
        "recorded_at": recorded_at or datetime.now(UTC).isoformat(timespec="seconds"),
        "duration_s": round(time.perf_counter() - _STARTED, 1) if duration_s is None else duration_s,
    }


def write_result(
    name: str,
    parameters: dict[str, Any],
    metrics: list[dict[str, Any]],
    compared: list[dict[str, Any]] | None = None,
    *,
    title: str | None = None,
    headlines: list[dict[str, Any]] | None = None,
    checks: list[dict[str, Any]] | None = None,
    results_dir: Path | str | None = None,
    command: str | None = None,
) -> Path:
    """Write ``<results dir>/<name>.json`` (see :func:`build_result`) and return its path.

    The folder is ``results_dir``, else ``$DONOR_SYNC_BENCH_RESULTS``, else bench/results.
    """
    payload = build_result(
        name, parameters, metrics, compared, title=title, headlines=headlines, checks=checks, command=command
    )
    problems = validate_result(payload)
    if problems:  # written all the same: a long run's figures are not thrown away; the runner reports it
        print(f"{name}: result does not follow the schema: {'; '.join(problems)}", file=sys.stderr)
    folder = resolve_results_dir(results_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(dump(payload))
    return path


def dump(payload: dict[str, Any]) -> str:
    """Return a result document as the results files hold it."""
    return json.dumps(payload, indent=2, ensure_ascii=False) + "\n"


# -- the schema -------------------------------------------------------------------------------------

_REQUIRED = {
    "schema": int,
    "name": str,
    "title": str,
    "command": str,
    "parameters": dict,
    "metrics": list,
    "compared": list,
    "checks": list,
    "headlines": list,
    "machine": dict,
    "recorded_at": str,
}


def validate_result(payload: Any) -> list[str]:
    """Return what is wrong with a result document (empty when it follows the schema)."""
    if not isinstance(payload, dict):
        return ["not a JSON object"]
    problems = [
        f"{key}: missing or not {kind.__name__}"
        for key, kind in _REQUIRED.items()
        if not isinstance(payload.get(key), kind)
    ]
    if problems:
        return problems
    if payload["schema"] != SCHEMA_VERSION:
        problems.append(f"schema: {payload['schema']} (expected {SCHEMA_VERSION})")
    if not re.fullmatch(r"[a-z0-9_]+", payload["name"]):
        problems.append(f"name: {payload['name']!r} is not a benchmark name")
    if "size" not in payload["parameters"]:
        problems.append("parameters: no size")
    if not isinstance(payload.get("git_commit"), str | None):
        problems.append("git_commit: not a string or null")
    if not isinstance(payload.get("duration_s"), int | float | None):
        problems.append("duration_s: not a number or null")
    names: set[str] = set()
    for i, entry in enumerate(payload["metrics"]):
        where = f"metrics[{i}]"
        if not isinstance(entry, dict):
            problems.append(f"{where}: not an object")
            continue
        if not isinstance(entry.get("name"), str) or not isinstance(entry.get("unit"), str):
            problems.append(f"{where}: name and unit must be strings")
        elif entry["name"] in names:
            problems.append(f"{where}: duplicate name {entry['name']!r}")
        names.add(str(entry.get("name")))
        if "value" not in entry:
            problems.append(f"{where}: no value")
        if "met" in entry and not isinstance(entry["met"], bool):
            problems.append(f"{where}: met is not true or false")
        if "met" in entry and "goal" not in entry:
            problems.append(f"{where}: met without a goal")
    for i, entry in enumerate(payload["compared"]):
        where = f"compared[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("system"), str):
            problems.append(f"{where}: no system")
            continue
        if not isinstance(entry.get("ratio"), int | float | None):
            problems.append(f"{where}: ratio is not a number or null")
        if entry.get("better") not in (*BETTER, None):
            problems.append(f"{where}: better is not lower, higher or null")
        if not isinstance(entry.get("metrics"), list):
            problems.append(f"{where}: metrics is not a list")
    for i, entry in enumerate(payload["checks"]):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            problems.append(f"checks[{i}]: no name")
        elif not isinstance(entry.get("ok"), bool | None):
            problems.append(f"checks[{i}]: ok is not true, false or null")
    for i, entry in enumerate(payload["headlines"]):
        if not isinstance(entry, dict) or not all(isinstance(entry.get(k), str) for k in ("figure", "value")):
            problems.append(f"headlines[{i}]: figure and value must be strings")
        elif not isinstance(entry.get("metrics", []), list):
            problems.append(f"headlines[{i}]: metrics is not a list")
    return problems


# -- helpers --------------------------------------------------------------------------------------

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def bench_url(name: str) -> str:
    """Return the URL of a benchmark's own database on the configured server
    (``DONOR_SYNC_DB_URL``, else ``DONOR_SYNC_TEST_DB_URL``, else the machine's Postgres)."""
    from donor_sync.db import with_database

    server = os.environ.get("DONOR_SYNC_DB_URL") or os.environ.get("DONOR_SYNC_TEST_DB_URL") or DEFAULT_SERVER
    return with_database(server, name)


def random_uuids(rng: Any, n: int) -> Any:
    """Return ``n`` random version-4 uuids as strings (a numpy object array), from ``rng``."""
    import numpy as np

    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    hexes = raw.tobytes().hex()
    out = np.empty(n, dtype=object)
    for i in range(n):
        h = hexes[32 * i : 32 * i + 32]
        out[i] = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
    return out


# -- autovacuum, where the server has it off ---------------------------------------------------------


class AutoVacuum:
    """Vacuum and analyze changed tables as autovacuum's defaults would, when the server runs without it.

    Production servers run autovacuum (on by default): every ``naptime`` (60 s) it analyzes each
    table changed by more than 50 rows + 10% since its last analyze, and vacuums each table with
    more than 50 + 20% dead rows (or 1,000 + 20% rows inserted). Test servers often turn it off;
    plans are then made against tables that look empty while they fill (the push's claims against
    ``sync.destination_state``, the health check against ``sync.push_log``) and scans cross every
    dead row a claim or result leaves, so without this stand-in a benchmark would measure a server
    misconfiguration. It runs on its own connection in a thread and does nothing when autovacuum is
    on. ``parameters()`` describes it for a result.
    """

    def __init__(self, url: str, *, naptime_s: float = 60.0) -> None:
        self.url, self.naptime_s = url, naptime_s
        self.runs: Counter[str] = Counter()
        self.active = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> AutoVacuum:
        from donor_sync.db import connect

        with connect(self.url) as conn:
            row = conn.execute("SHOW autovacuum").fetchone()
            self.active = row is not None and row[0] != "on"
        if self.active:
            self._thread = threading.Thread(target=self._loop, name="bench-autovacuum", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=120)

    def _loop(self) -> None:
        from psycopg import sql

        from donor_sync.db import connect

        with connect(self.url, autocommit=True, application_name="bench-autovacuum") as conn:
            while not self._stop.wait(self.naptime_s):
                due = conn.execute(
                    "SELECT s.schemaname, s.relname,"
                    "  s.n_dead_tup > 50 + 0.2 * t.n OR s.n_ins_since_vacuum > 1000 + 0.2 * t.n,"
                    "  s.n_mod_since_analyze > 50 + 0.1 * t.n"
                    " FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid,"
                    " LATERAL (SELECT greatest(c.reltuples, 0) AS n) t"
                    " WHERE s.schemaname IN ('raw', 'staging', 'core', 'sync')"
                ).fetchall()
                for schema, table, vacuum, analyze in due:
                    if vacuum or analyze:
                        action = (
                            "VACUUM (ANALYZE)" if vacuum and analyze else "VACUUM" if vacuum else "ANALYZE"
                        )
                        conn.execute(sql.SQL(action + " {}").format(sql.Identifier(schema, table)))
                        self.runs[f"{action} {schema}.{table}"] += 1

    def parameters(self) -> dict[str, Any]:
        """What a result records about the stand-in: whether it ran, and what it did."""
        return {
            "active": self.active,
            "runs": dict(sorted(self.runs.items())),
            "note": "the server runs with autovacuum off; tables are vacuumed and analyzed as "
            "autovacuum's defaults would (every 60 s, by its thresholds)"
            if self.active
            else "the server's own autovacuum is on",
        }
