"""Pairs -> clusters (donors), without chaining strangers together through weak links.

Plain connected components over merge links chain: if A-B and B-C both merge, A and C end up one
donor even when A and C are clearly different people (a father and son who each match a record
with only their shared name and address). The method here is **constrained agglomeration**:

1. connected components over auto-merge links find the groups that might be one donor; a group
   of two is one link and is final;
2. inside a bigger group, links are taken strongest first and join two clusters only if no pair
   across them is *cannot-link*: a household link, or a scored candidate pair whose probability is
   below ``clustering.cannot_link_below``. Pairs that were never compared (no shared blocking key)
   do not block a join: their records are linked through the others.

So a cluster never contains two records that were compared and found different, and every record
joins through its strongest available link. It is deterministic (ties broken by pair order) and
costs a Python loop only over the few groups of three or more records.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def connected_components(n: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Return a component label per node (the smallest node of its component), vectorized.

    Label propagation with pointer jumping: each round hooks every edge's larger root under its
    smaller one, then compresses paths, until nothing changes.
    """
    parent = np.arange(n, dtype=np.int64)
    if len(left) == 0:
        return parent
    left = left.astype(np.int64)
    right = right.astype(np.int64)
    while True:
        ra, rb = parent[left], parent[right]
        low = np.minimum(ra, rb)
        before = parent.copy()
        np.minimum.at(parent, ra, low)
        np.minimum.at(parent, rb, low)
        while True:
            jumped = parent[parent]
            if np.array_equal(jumped, parent):
                break
            parent = jumped
        if np.array_equal(parent, before):
            return parent


def _split_group(
    members: np.ndarray,
    merge_edges: list[tuple[float, int, int]],
    cannot: set[tuple[int, int]],
) -> dict[int, int]:
    """Return member -> representative for one group (constrained agglomeration)."""
    cluster_of = {int(m): int(m) for m in members.tolist()}
    content = {int(m): {int(m)} for m in members.tolist()}
    for _, a, b in sorted(merge_edges, key=lambda e: (-e[0], e[1], e[2])):
        ca, cb = cluster_of[a], cluster_of[b]
        if ca == cb:
            continue
        sa, sb = content[ca], content[cb]
        if any((min(x, y), max(x, y)) in cannot for x in sa for y in sb):
            continue
        keep, gone = (ca, cb) if len(sa) >= len(sb) else (cb, ca)
        for x in content[gone]:
            cluster_of[x] = keep
        content[keep] |= content.pop(gone)
    return cluster_of


def cluster_pairs(
    n: int,
    left: np.ndarray,
    right: np.ndarray,
    *,
    weight: np.ndarray,
    merge: np.ndarray,
    cannot_link: np.ndarray,
) -> np.ndarray:
    """Return a cluster label per record (0..k-1, in order of first appearance).

    :param n: number of records.
    :param left: pairs' left rows; ``right`` their right rows.
    :param weight: pairs' match weights (stronger links are taken first).
    :param merge: pairs that should merge (auto-merge band).
    :param cannot_link: pairs that must never end in one cluster.
    """
    labels = connected_components(n, left[merge], right[merge])
    sizes = np.bincount(labels, minlength=n)
    big = sizes[labels] >= 3
    if big.any():
        group_of_pair = np.where(big[left] & (labels[left] == labels[right]), labels[left], -1)
        inside = np.flatnonzero(group_of_pair >= 0)
        order = inside[np.argsort(group_of_pair[inside], kind="stable")]
        groups = group_of_pair[order]
        bounds = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1], True])
        members_by_group = pd.Series(np.flatnonzero(big)).groupby(labels[big]).agg(list)
        for s, e in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
            rows = order[s:e]
            group = int(groups[s])
            edges = [(float(weight[p]), int(left[p]), int(right[p])) for p in rows.tolist() if merge[p]]
            cannot = {(int(left[p]), int(right[p])) for p in rows.tolist() if cannot_link[p]}
            if not cannot:
                continue
            members = np.asarray(members_by_group[group])
            for member, rep in _split_group(members, edges, cannot).items():
                labels[member] = rep
    return np.asarray(pd.factorize(labels)[0], dtype=np.int64)
