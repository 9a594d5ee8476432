"""Find and run the benchmarks in bench/ (``donor-sync bench``, ``make bench``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from donor_sync.errors import ConfigError
from donor_sync.paths import repo_root


def available() -> dict[str, Path]:
    """Return ``{name: path}`` of every benchmark script (``bench/*.py`` not starting with ``_``)."""
    return {p.stem: p for p in sorted((repo_root() / "bench").glob("*.py")) if not p.name.startswith("_")}


def run_benchmarks(names: list[str], *, size: int | None = None) -> list[Path]:
    """Run the named benchmarks (all when empty), each in its own interpreter; return result files."""
    scripts = available()
    unknown = sorted(set(names) - set(scripts))
    if unknown:
        raise ConfigError(f"unknown benchmark(s) {', '.join(unknown)}; available: {', '.join(scripts)}")
    results = []
    for name in names or list(scripts):
        argv = [sys.executable, str(scripts[name])]
        if size is not None:
            argv += ["--size", str(size)]
        completed = subprocess.run(argv, check=False)  # noqa: S603 - our own scripts
        if completed.returncode != 0:
            raise ConfigError(f"benchmark {name} failed with exit code {completed.returncode}")
        results.append(repo_root() / "bench" / "results" / f"{name}.json")
    return results
