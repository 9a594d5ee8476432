"""Multi-pass blocking: candidate pairs from records that share a key, without an all-pairs scan.

Each pass of the rules file names prepared columns; a record's key for the pass is those values
joined (missing when any is missing). :func:`blocking_keys` returns the keys per record as text
columns, ``bk_<pass>``: that is what a database stores in indexed columns so a new record is
matched by looking its keys up (:func:`link_candidates` is the in-memory form of that lookup).

:func:`candidate_pairs` self-joins records on each pass's key with numpy (integer codes, sorted
blocks), skips blocks larger than the cap (too common to mean anything), and deduplicates pairs
across passes, keeping a bit mask of the passes that found each pair.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from donor_sync.identity.prepare import STRING, PreparedRecords
from donor_sync.identity.rules import Blocking, BlockingPass

KEY_SEPARATOR = "\x1f"


@dataclass(frozen=True)
class CandidatePairs:
    """Candidate pairs as aligned arrays: row indices ``left < right`` and a bit mask of passes."""

    left: np.ndarray
    right: np.ndarray
    passes: np.ndarray
    pass_names: tuple[str, ...]
    skipped_blocks: dict[str, int]

    def __len__(self) -> int:
        return len(self.left)

    def pass_labels(self, i: int) -> list[str]:
        """Return the names of the passes that found pair ``i``."""
        mask = int(self.passes[i])
        return [name for bit, name in enumerate(self.pass_names) if mask >> bit & 1]


def key_column(blocking_pass: BlockingPass) -> str:
    """Return the name of a pass's key column in :func:`blocking_keys`' output."""
    return f"bk_{blocking_pass.name}"


def blocking_keys(prepared: PreparedRecords, blocking: Blocking) -> pd.DataFrame:
    """Return each record's key per pass (text, missing when a key column is missing).

    :return: a frame with ``record_id`` and one ``bk_<pass>`` column per pass, row i for record i.
    """
    frame = prepared.frame
    out = {"record_id": frame["record_id"]}
    for blocking_pass in blocking.passes:
        key = frame[blocking_pass.columns[0]].astype(STRING)
        for column in blocking_pass.columns[1:]:
            key = key + KEY_SEPARATOR + frame[column].astype(STRING)
        out[key_column(blocking_pass)] = key
    return pd.DataFrame(out)


def _pass_codes(prepared: PreparedRecords, blocking_pass: BlockingPass) -> np.ndarray:
    """Return one int64 code per record for a pass's key (-1 where a part is missing)."""
    combined = np.zeros(len(prepared), dtype=np.int64)
    missing = np.zeros(len(prepared), dtype=bool)
    for column in blocking_pass.columns:
        codes, uniques = prepared.codes(column)
        missing |= codes < 0
        combined = combined * (len(uniques) + 1) + (codes.astype(np.int64) + 1)
        if len(blocking_pass.columns) > 1:
            combined = pd.factorize(combined)[0].astype(np.int64)
    combined[missing] = -1
    return combined


def pass_budget(blocking_pass: BlockingPass, n: int) -> float | None:
    """Return a pass's pair budget for ``n`` records (None: no budget)."""
    budgets: list[float] = [float(blocking_pass.max_pairs)] if blocking_pass.max_pairs is not None else []
    if blocking_pass.max_pairs_per_record is not None:
        budgets.append(blocking_pass.max_pairs_per_record * n)
    return min(budgets) if budgets else None


def budget_cap(sizes: np.ndarray, cap: int, budget: float | None) -> int:
    """Return the largest block size at most ``cap`` whose blocks (that size or smaller) give at
    most ``budget`` pairs (``cap`` itself without a budget)."""
    if budget is None:
        return cap
    candidates = np.sort(sizes[(sizes >= 2) & (sizes <= cap)])
    if len(candidates) == 0:
        return cap
    total = np.cumsum(candidates * (candidates - 1) // 2)
    fits = candidates[total <= budget]
    if len(fits) == 0:
        return 1
    largest = int(fits[-1])
    # blocks of exactly that size all fit only if the cumulative count at its last one does
    return largest if total[np.searchsorted(candidates, largest, side="right") - 1] <= budget else largest - 1


def pairs_within_blocks(
    codes: np.ndarray, cap: int, budget: float | None = None
) -> tuple[np.ndarray, np.ndarray, int]:
    """Return every pair of rows sharing a non-negative code, skipping blocks larger than ``cap``.

    With a ``budget`` (pairs), the cap is lowered until the kept blocks give at most that many.

    :return: ``(left, right, skipped)`` with ``left < right`` (row indices, int64) and the number of
        blocks skipped for their size.
    """
    rows = np.flatnonzero(codes >= 0)
    order = rows[np.argsort(codes[rows], kind="stable")]
    sorted_codes = codes[order]
    if len(order) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, 0
    starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
    sizes = np.diff(np.r_[starts, len(order)])
    cap = budget_cap(sizes, cap, budget)
    skipped = int(np.count_nonzero(sizes > cap))
    keep = (sizes >= 2) & (sizes <= cap)
    # Position p in a block of size s starting at b pairs with p+1 .. b+s-1.
    member = np.flatnonzero(np.repeat(keep, sizes))
    if len(member) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, skipped
    block_end = np.repeat(starts + sizes, sizes)[member]
    partners = block_end - member - 1
    left_pos = np.repeat(member, partners)
    offsets = np.arange(len(left_pos)) - np.repeat(np.cumsum(partners) - partners, partners)
    right_pos = left_pos + 1 + offsets
    a, b = order[left_pos], order[right_pos]
    return np.minimum(a, b).astype(np.int64), np.maximum(a, b).astype(np.int64), skipped


def candidate_pairs(prepared: PreparedRecords, blocking: Blocking) -> CandidatePairs:
    """Return the deduplicated union of every pass's pairs (see the module docstring)."""
    n = len(prepared)
    keys: list[np.ndarray] = []
    bits: list[np.ndarray] = []
    skipped: dict[str, int] = {}
    for bit, blocking_pass in enumerate(blocking.passes):
        cap = blocking_pass.max_block_size or blocking.max_block_size
        left, right, skipped[blocking_pass.name] = pairs_within_blocks(
            _pass_codes(prepared, blocking_pass), cap, pass_budget(blocking_pass, n)
        )
        keys.append(left * n + right)
        bits.append(np.full(len(left), 1 << bit, dtype=np.int64))
    names = tuple(p.name for p in blocking.passes)
    if not keys:
        empty = np.zeros(0, dtype=np.int64)
        return CandidatePairs(empty, empty, empty, names, skipped)
    all_keys = np.concatenate(keys)
    all_bits = np.concatenate(bits)
    codes, uniques = pd.factorize(all_keys, sort=True)
    mask = np.zeros(len(uniques), dtype=np.int64)
    np.bitwise_or.at(mask, codes, all_bits)
    uniques = np.asarray(uniques, dtype=np.int64)
    return CandidatePairs(uniques // n, uniques % n, mask, names, skipped)


def link_candidates(new_keys: pd.DataFrame, existing_keys: pd.DataFrame, blocking: Blocking) -> pd.DataFrame:
    """Return candidate pairs between new records and existing ones by equal keys of any pass.

    This is the lookup an incremental matcher runs against stored ``bk_*`` columns (one indexed
    equality lookup per pass). Blocks over the cap on the existing side are skipped as in
    :func:`candidate_pairs`.

    :param new_keys: :func:`blocking_keys` of the new records.
    :param existing_keys: :func:`blocking_keys` of the existing records.
    :return: columns ``new_row``, ``existing_row`` (row positions) and ``passes`` (bit mask).
    """
    found: list[pd.DataFrame] = []
    for bit, blocking_pass in enumerate(blocking.passes):
        column = key_column(blocking_pass)
        cap = blocking_pass.max_block_size or blocking.max_block_size
        right = existing_keys[[column]].reset_index(drop=True).dropna()
        sizes = right[column].map(right[column].value_counts())
        right = right[sizes <= cap]
        left = new_keys[[column]].reset_index(drop=True).dropna()
        merged = left.reset_index(names="new_row").merge(
            right.reset_index(names="existing_row"), on=column, how="inner"
        )
        merged["passes"] = 1 << bit
        found.append(merged[["new_row", "existing_row", "passes"]])
    if not found:
        return pd.DataFrame({"new_row": [], "existing_row": [], "passes": []}, dtype=np.int64)
    pairs = pd.concat(found, ignore_index=True)
    return (
        pairs.groupby(["new_row", "existing_row"], as_index=False, sort=True)["passes"]
        .agg(lambda s: int(np.bitwise_or.reduce(s.to_numpy())))
        .astype(np.int64)
    )
