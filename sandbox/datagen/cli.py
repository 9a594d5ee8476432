"""Command line: ``python -m sandbox.datagen --donors N --seed S --out DIR [--bad-share 0.02]``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from sandbox.datagen.config import GenerationConfig
from sandbox.datagen.generate import generate


def main(argv: Sequence[str] | None = None) -> int:
    """Generate sample data and print a short summary."""
    parser = argparse.ArgumentParser(prog="python -m sandbox.datagen", description=__doc__)
    parser.add_argument("--donors", type=int, required=True, help="number of true persons (100 to 1,000,000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same files)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--bad-share", type=float, default=0.02, help="share of bad records (default 0.02)")
    parser.add_argument(
        "--link-share",
        type=float,
        default=0.5,
        help="share of Donorbox/Classy gifts also seen as a Stripe charge (default 0.5)",
    )
    args = parser.parse_args(argv)
    config = GenerationConfig(
        donors=args.donors, seed=args.seed, out=args.out, bad_share=args.bad_share, link_share=args.link_share
    )
    result = generate(config)
    totals = result.manifest["totals"]
    print(f"wrote {args.out} in {result.seconds:.1f} s (seed {args.seed})")
    print(
        f"  persons {totals['persons']:,}  appearances {totals['appearances']:,}  gifts {totals['gifts']:,}  "
        f"households {totals['households']:,}  gift links {totals['gift_links']:,}  "
        f"bad records {totals['bad_records']:,}"
    )
    for name, count in sorted(result.counts.items()):
        print(f"  {name:<40} {count:>10,}")
    return 0
