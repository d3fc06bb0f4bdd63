"""Per-query ranked lists under the Market protocol (gallery items with the query's identity and camera are
skipped), one distance row at a time so a full gallery never needs a sorted copy of the whole matrix, and the
choice of the best and worst queries by their AP (`reidkit.metrics.query_average_precision`)."""
from __future__ import annotations

import numpy as np
import torch


def as_distmat(distmat: np.ndarray | torch.Tensor, num_query: int, num_gallery: int) -> np.ndarray:
    """A [num_query, num_gallery] numpy view of `distmat`, checked against the query and gallery sizes."""
    if isinstance(distmat, torch.Tensor):
        distmat = distmat.detach().cpu().numpy()
    distmat = np.asarray(distmat)
    if distmat.shape != (num_query, num_gallery):
        raise ValueError(
            f"distmat has shape {distmat.shape}; expected (num_query, num_gallery) = ({num_query}, {num_gallery})"
        )
    return distmat


def ranked_gallery(
    distances: np.ndarray, q_pid: int, q_camid: int, g_pids: np.ndarray, g_camids: np.ndarray, topk: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Gallery indices by increasing distance without same-identity-same-camera items, cut to `topk`
    (None: all), and whether each one has the query's identity."""
    order = np.argsort(distances, kind="stable")
    keep = ~((g_pids[order] == q_pid) & (g_camids[order] == q_camid))
    order = order[keep][:topk]
    return order, g_pids[order] == q_pid


def select_queries(aps: np.ndarray, num_best: int, num_worst: int) -> tuple[list[int], list[int]]:
    """Indices of the `num_best` highest-AP queries (best first) and the `num_worst` lowest (worst first),
    disjoint; NaN APs are ignored."""
    if num_best < 0 or num_worst < 0:
        raise ValueError(f"num_best and num_worst must be >= 0, got {num_best} and {num_worst}")
    aps = np.asarray(aps, dtype=float)
    valid = np.flatnonzero(~np.isnan(aps))
    by_ap = valid[np.argsort(-aps[valid], kind="stable")]
    best = by_ap[:num_best]
    worst = by_ap[len(best):][::-1][:num_worst]
    return [int(i) for i in best], [int(i) for i in worst]
