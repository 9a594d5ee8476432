"""Shared by the benchmarks: the JSON result format and the machine description."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPO_ROOT = Path(__file__).resolve().parents[1]


def machine() -> dict[str, Any]:
    """Describe the machine the benchmark ran on."""
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
    }


def git_commit() -> str | None:
    """Return the checked-out commit, if this is a git checkout."""
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def metric(name: str, value: float, unit: str, **extra: Any) -> dict[str, Any]:
    """Return one metric entry."""
    return {"name": name, "value": value, "unit": unit, **extra}


def write_result(
    name: str,
    parameters: dict[str, Any],
    metrics: list[dict[str, Any]],
    compared: list[dict[str, Any]] | None = None,
) -> Path:
    """Write ``bench/results/<name>.json`` and return its path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    payload = {
        "name": name,
        "parameters": parameters,
        "metrics": metrics,
        "compared": compared or [],
        "machine": machine(),
        "git_commit": git_commit(),
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


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
