"""Benchmark the sample-data generator: wall time and peak RSS for N donors.

Run from the repository root: ``.venv/bin/python bench/datagen.py --size 1000000``.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import metric, write_result

from sandbox.datagen import GenerationConfig, generate


def main() -> int:
    """Generate ``--size`` donors into a temporary folder and record time and memory."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="datagen-bench-") as tmp:
        began = time.perf_counter()
        result = generate(GenerationConfig(donors=args.size, seed=args.seed, out=Path(tmp) / "out"))
        wall = time.perf_counter() - began
        written = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file())
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 / 1024
    totals = result.manifest["totals"]
    path = write_result(
        "datagen",
        {"size": args.size, "seed": args.seed, "workers": 2},
        [
            metric("wall_time", round(wall, 2), "s", goal="< 120"),
            metric("peak_rss_main", round(own, 3), "GiB", goal="< 4"),
            metric("peak_rss_writer_child", round(children, 3), "GiB"),
            metric("records_written", sum(result.counts.values()), "records"),
            metric("bytes_written", written, "bytes"),
            metric("gifts", totals["gifts"], "gifts"),
            metric("appearances", totals["appearances"], "records"),
        ],
    )
    print(f"{args.size:,} donors: {wall:.1f} s, peak RSS {own:.2f} GiB (child {children:.2f} GiB): {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
