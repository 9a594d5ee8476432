"""Find and run the benchmarks in bench/ and render their README table (``donor-sync bench``, ``make bench``).

Every ``bench/*.py`` not starting with ``_`` is a benchmark: a script that takes ``--size N`` and
``--results-dir DIR`` and writes ``DIR/<name>.json`` in the format of bench/_common.py (see
bench/README.md). Each runs in its own interpreter; a failing one does not stop the others, and
the run ends by naming every failure. A run into the committed results (bench/results) then
renders the README's performance table and the scaling plots from all of them (bench/_report.py,
itself run as a script: the library never imports the benchmarks or matplotlib).

``ci`` runs each benchmark at the size its script declares as ``CI_SIZE`` (one without it is
skipped and said so) into a temporary folder, so the committed results are never touched.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from donor_sync.errors import ConfigError, DonorSyncError
from donor_sync.paths import repo_root

#: The results folder handed to every benchmark (each also takes ``--results-dir``).
RESULTS_ENV = "DONOR_SYNC_BENCH_RESULTS"


class BenchmarkFailedError(DonorSyncError):
    """One or more benchmarks failed; the message names each and why."""


@dataclass(frozen=True)
class Outcome:
    """What running one benchmark gave."""

    name: str
    argv: tuple[str, ...]
    #: The script's exit status (None when it was skipped).
    returncode: int | None
    seconds: float
    #: The result file it wrote in this run, if any.
    result: Path | None
    #: What is wrong with the result (no file, not JSON, not the schema).
    problems: tuple[str, ...] = ()
    #: Fields its README rows name that the result does not hold (written n/a; not a failure).
    warnings: tuple[str, ...] = ()
    #: Why it was not run.
    skipped: str | None = None

    @property
    def ok(self) -> bool:
        """Whether it ran, exited 0 and wrote a valid result (a skipped benchmark is not a failure)."""
        return self.skipped is not None or (self.returncode == 0 and not self.problems)

    def describe(self) -> str:
        """Return one line saying how it went."""
        if self.skipped is not None:
            return f"{self.name}: skipped ({self.skipped})"
        if self.returncode != 0:
            return f"{self.name}: FAILED with exit code {self.returncode} after {self.seconds:.1f} s"
        if self.problems:
            return f"{self.name}: FAILED: {'; '.join(self.problems)}"
        return f"{self.name}: ok in {self.seconds:.1f} s -> {self.result}"


@dataclass
class Run:
    """A whole ``donor-sync bench`` run: each benchmark's outcome and where the results went."""

    results_dir: Path
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def failed(self) -> list[Outcome]:
        """The benchmarks that failed."""
        return [o for o in self.outcomes if not o.ok]


def bench_dir() -> Path:
    """Return the folder of the benchmark scripts (``bench/``)."""
    return repo_root() / "bench"


def default_results_dir() -> Path:
    """Return the committed results folder, ``bench/results`` (what the README table is drawn from)."""
    return bench_dir() / "results"


def available() -> dict[str, Path]:
    """Return ``{name: path}`` of every benchmark script (``bench/*.py`` not starting with ``_``)."""
    return {p.stem: p for p in sorted(bench_dir().glob("*.py")) if not p.name.startswith("_")}


def ci_size(script: Path) -> int | None:
    """Return the ``CI_SIZE = N`` a benchmark script declares at module level (read, not imported)."""
    try:
        tree = ast.parse(script.read_text(encoding="utf-8"), filename=str(script))
    except (OSError, SyntaxError):
        return None
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        if any(isinstance(t, ast.Name) and t.id == "CI_SIZE" for t in targets):
            try:
                found = ast.literal_eval(value)
            except ValueError:
                return None
            return found if isinstance(found, int) and not isinstance(found, bool) else None
    return None


def check_result(path: Path, *, since: float) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Return the problems (no file written since ``since``, not the schema) and the warnings
    (figures its README rows name that it lacks) of one result file, as bench/_report.py judges them."""
    if not path.exists() or path.stat().st_mtime < since:
        return (f"wrote no result at {path}",), ()
    completed = subprocess.run(  # noqa: S603 - our own script
        [sys.executable, str(bench_dir() / "_report.py"), "--validate", str(path)],
        check=False,
        capture_output=True,
        text=True,
        cwd=repo_root(),
    )
    try:
        verdict = json.loads(completed.stdout)[str(path)]
    except (json.JSONDecodeError, KeyError, TypeError):
        return (f"could not validate {path}: {completed.stderr.strip()[-500:]}",), ()
    return tuple(verdict["problems"]), tuple(verdict["warnings"])


def run_benchmarks(
    names: Sequence[str] = (),
    *,
    size: int | None = None,
    results_dir: Path | None = None,
    ci: bool = False,
    echo: Callable[[str], Any] = print,
) -> Run:
    """Run the named benchmarks (all when empty), each in its own interpreter, and check each result.

    :param size: passed to every benchmark as ``--size`` (in ``ci`` mode, where a script declares
        no ``CI_SIZE``).
    :param results_dir: where the results go (default bench/results; in ``ci`` mode a new
        temporary folder).
    :param ci: run each at its ``CI_SIZE``.
    :raises ConfigError: a name is not a benchmark.
    """
    scripts = available()
    unknown = sorted(set(names) - set(scripts))
    if unknown:
        raise ConfigError(f"unknown benchmark(s) {', '.join(unknown)}; available: {', '.join(scripts)}")
    if results_dir is None:
        results_dir = Path(tempfile.mkdtemp(prefix="donor-sync-bench-ci-")) if ci else default_results_dir()
    results_dir = results_dir.resolve()
    results_dir.mkdir(parents=True, exist_ok=True)
    run = Run(results_dir)
    env = {**os.environ, RESULTS_ENV: str(results_dir)}
    # Benchmarks are a development set-up: they push through the privacy gate on development keys.
    from donor_sync.privacy.keys import LocalKeyFile

    LocalKeyFile().init()
    for name in names or list(scripts):
        script = scripts[name]
        chosen = size
        if ci:
            chosen = ci_size(script) or size
            if chosen is None:
                run.outcomes.append(
                    Outcome(
                        name, (), None, 0.0, None, skipped="it declares no CI_SIZE and no --size was given"
                    )
                )
                echo(run.outcomes[-1].describe())
                continue
        argv = [sys.executable, str(script)]
        if chosen is not None:
            argv += ["--size", str(chosen)]
        if results_dir != default_results_dir().resolve():
            argv += ["--results-dir", str(results_dir)]
        echo(f"== {name}" + (f" --size {chosen}" if chosen is not None else "") + " ==")
        began_wall, began = time.time(), time.perf_counter()
        completed = subprocess.run(argv, check=False, env=env, cwd=repo_root())  # noqa: S603 - our own scripts
        seconds = time.perf_counter() - began
        result = results_dir / f"{name}.json"
        problems: tuple[str, ...] = ()
        warnings: tuple[str, ...] = ()
        if completed.returncode == 0:
            problems, warnings = check_result(result, since=began_wall - 1)
        outcome = Outcome(
            name,
            tuple(argv),
            completed.returncode,
            seconds,
            result if result.exists() and not problems else None,
            problems,
            warnings,
        )
        run.outcomes.append(outcome)
        echo(outcome.describe())
        for warning in warnings:
            echo(f"  warning: README row names a figure the result lacks: {warning}")
    return run


def render(*, check: bool = False, plots: bool = True) -> subprocess.CompletedProcess[str]:
    """Render (or ``check``) the README's performance table and the scaling plots from bench/results."""
    argv = [sys.executable, str(bench_dir() / "_report.py")]
    if check:
        argv.append("--check")
    if not plots:
        argv.append("--no-plots")
    return subprocess.run(argv, check=False, capture_output=True, text=True, cwd=repo_root())  # noqa: S603


def summary(run: Run) -> str:
    """Return the end-of-run summary: one line per benchmark."""
    return "\n".join(["benchmarks:", *(f"  {o.describe()}" for o in run.outcomes)])


def raise_for_failures(run: Run) -> None:
    """Raise :class:`BenchmarkFailedError` naming every benchmark that failed, if any did."""
    if run.failed:
        raise BenchmarkFailedError(
            f"{len(run.failed)} of {len(run.outcomes)} benchmark(s) failed: "
            + "; ".join(o.describe() for o in run.failed)
        )
