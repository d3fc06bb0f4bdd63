"""Group labels shared by every post-processing step.

A grouping (query clusters, gallery tracks, camera clusters) is an int array with one label per item; -1 means
"in no group". An item with label -1 is its own group of one: it is never "in the same group" as another
-1 item. (The reference treated all -1 queries as one group in its re-ranking branch; that merged unrelated
queries, so reidkit does not.)
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from reidkit.errors import PostprocessInputError


def as_group_labels(name: str, labels: np.ndarray | Sequence[int] | None, n: int) -> np.ndarray:
    """Validate a per-item label vector of length `n`; None means no item has a label (all -1)."""
    if labels is None:
        return np.full(n, -1, dtype=np.int64)
    arr = np.asarray(labels)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise PostprocessInputError(f"{name}: expected a vector of {n} labels, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.equal(np.mod(arr, 1), 0)):
            raise PostprocessInputError(f"{name}: labels must be integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.size and arr.min() < -1:
        raise PostprocessInputError(f"{name}: labels must be >= -1 (-1 = unknown), got {arr.min()}")
    return arr


def labels_from_groups(groups: Sequence[Sequence[int]], n: int, *, name: str = "groups") -> np.ndarray:
    """Turn a list of index groups (e.g. tracks) into one label per item (-1 for items in no group)."""
    labels = np.full(n, -1, dtype=np.int64)
    for gid, members in enumerate(groups):
        idx = np.asarray(members, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise PostprocessInputError(f"{name}: group {gid} holds index {idx.max() if idx.max() >= n else idx.min()}, "
                             f"expected 0..{n - 1}")
        taken = idx[labels[idx] != -1]
        if taken.size:
            raise PostprocessInputError(f"{name}: index {taken[0]} is in group {labels[taken[0]]} and in group {gid}; "
                             "each item may belong to one group only")
        labels[idx] = gid
    return labels


def groups_from_labels(labels: np.ndarray) -> list[np.ndarray]:
    """Index arrays of the labelled groups, in label order (items labelled -1 are left out)."""
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    starts = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]])
    chunks = np.split(order, starts[1:])
    return [chunk for chunk in chunks if chunk.size and labels[chunk[0]] != -1]


def singleton_labels(labels: np.ndarray) -> np.ndarray:
    """Give each -1 item a fresh label of its own so that `a == b` means "same group" for every item."""
    out = labels.copy()
    free = np.flatnonzero(out == -1)
    base = out.max() + 1 if out.size else 0
    out[free] = base + np.arange(free.size)
    return out


def same_group(labels_a: np.ndarray, labels_b: np.ndarray | None = None) -> np.ndarray:
    """Boolean matrix: True where both items carry the same (known) label."""
    labels_b = labels_a if labels_b is None else labels_b
    return (labels_a[:, None] == labels_b[None, :]) & (labels_a != -1)[:, None]
