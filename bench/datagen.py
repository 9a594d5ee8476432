"""Benchmark the sample-data generator: wall time and peak RSS for N donors.

Run from the repository root: ``.venv/bin/python bench/datagen.py --size 1000000``.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import add_common_arguments, headline, metric, write_result

from sandbox.datagen import GenerationConfig, generate


def _tree(pid: int) -> list[int]:
    """Return ``pid`` and its descendants (from /proc)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            text = Path(f"/proc/{current}/task/{current}/children").read_text()
        except OSError:
            continue
        todo.extend(int(child) for child in text.split())
    return found


def _pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class TreeMemory(threading.Thread):
    """Sample the proportional set size (PSS) of this process and its children: the peak of their sum.

    PSS splits pages shared by forked processes between them, so the sum is the memory the whole
    tree really holds (RSS summed would count the shared pages once per process).
    """

    def __init__(self, interval: float = 0.25) -> None:
        """Start sampling every ``interval`` seconds."""
        super().__init__(daemon=True)
        self.interval = interval
        self.peak_kib = 0
        self.done = threading.Event()

    def run(self) -> None:
        """Sample until stopped."""
        while not self.done.is_set():
            total = sum(_pss_kib(pid) for pid in _tree(os.getpid()))
            self.peak_kib = max(self.peak_kib, total)
            self.done.wait(self.interval)

    def stop(self) -> float:
        """Stop sampling and return the peak in GiB."""
        self.done.set()
        self.join()
        return self.peak_kib / 1024 / 1024


#: The size ``donor-sync bench --ci`` runs it at.
CI_SIZE = 2_000
#: The README table's row.
HEADLINES = [
    headline(
        "sample data, {p.size:,} donors ({records_written:,} source records, {bytes_written:GB} GB)",
        "{wall_time} s, {peak_pss_all_processes} GiB peak across processes (the largest process"
        " {peak_rss} GiB)",
        ["wall_time", "peak_rss", "peak_pss_all_processes"],
    )
]


def main() -> int:
    """Generate ``--size`` donors into a temporary folder and record time and memory."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    add_common_arguments(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="datagen-bench-") as tmp:
        sampler = TreeMemory()
        sampler.start()
        began = time.perf_counter()
        result = generate(GenerationConfig(donors=args.size, seed=args.seed, out=Path(tmp) / "out"))
        wall = time.perf_counter() - began
        tree = sampler.stop()
        written = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file())
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 / 1024
    peak = max(own, children)
    totals = result.manifest["totals"]
    path = write_result(
        "datagen",
        {"size": args.size, "seed": args.seed, "workers": 2},
        [
            metric("wall_time", round(wall, 2), "s", goal="< 120"),
            metric("peak_rss", round(peak, 3), "GiB", goal="< 4", note="largest of main and any child"),
            metric("peak_rss_main", round(own, 3), "GiB"),
            metric(
                "peak_rss_writer_child", round(children, 3), "GiB", note="largest child (RUSAGE_CHILDREN)"
            ),
            metric(
                "peak_rss_main_plus_child",
                round(own + children, 3),
                "GiB",
                note="upper bound: counts pages forked children share with main twice",
            ),
            metric("peak_pss_all_processes", round(tree, 3), "GiB", goal="< 4", note="sampled every 0.25 s"),
            metric("records_written", sum(result.counts.values()), "records"),
            metric("bytes_written", written, "bytes"),
            metric("gifts", totals["gifts"], "gifts"),
            metric("appearances", totals["appearances"], "records"),
        ],
        headlines=HEADLINES,
        results_dir=args.results_dir,
    )
    print(
        f"{args.size:,} donors: {wall:.1f} s, peak RSS {own:.2f} GiB (child {children:.2f} GiB), "
        f"peak PSS of all processes {tree:.2f} GiB: {path}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
