"""Ranking metrics written the plain way, one query at a time, as the textbook and the peers' Python evaluators
do: what reidkit.metrics.rank (vectorised, blocked) is checked against."""
from __future__ import annotations

import numpy as np


def reference_market(distmat, q_pids, g_pids, q_camids, g_camids, max_rank, ties="argsort"):
    """One query at a time, as the textbook (and torchreid's python evaluator) does it; ties="pessimistic" puts
    the non-matches first among equal distances."""
    cmcs, aps, inps = [], [], []
    for i in range(len(distmat)):
        order = np.argsort(distmat[i]) if ties == "argsort" else np.lexsort((g_pids == q_pids[i], distmat[i]))
        keep = ~((g_pids[order] == q_pids[i]) & (g_camids[order] == q_camids[i]))
        raw = (g_pids[order] == q_pids[i])[keep].astype(float)
        if not raw.any():
            continue
        hits = raw.cumsum()
        cmcs.append(np.minimum(hits, 1)[:max_rank])
        ranks = np.flatnonzero(raw) + 1
        aps.append(np.mean(np.arange(1, len(ranks) + 1) / ranks))
        inps.append(len(ranks) / ranks[-1])
    return np.mean(cmcs, axis=0), np.mean(aps), np.mean(inps)


def reference_cuhk03(distmat, q_pids, g_pids, q_camids, g_camids, max_rank, num_repeats, seed):
    """Single-gallery-shot CMC with the documented draws: per query rng.random((num_repeats, G)) and, per
    identity, the kept item with the largest draw."""
    rng = np.random.default_rng(seed)
    cmcs = []
    for i in range(len(distmat)):
        keys = rng.random((num_repeats, distmat.shape[1]))
        order = np.argsort(distmat[i])
        keep = ~((g_pids == q_pids[i]) & (g_camids == q_camids[i]))
        if not (keep & (g_pids == q_pids[i])).any():
            continue
        cmc = np.zeros(max_rank)
        for r in range(num_repeats):
            chosen = set()
            for pid in np.unique(g_pids[keep]):
                items = np.flatnonzero(keep & (g_pids == pid))
                chosen.add(items[np.argmax(keys[r, items])])
            ranked = [g for g in order if g in chosen]
            first = [g_pids[g] for g in ranked].index(q_pids[i])
            cmc += np.arange(max_rank) >= first
        cmcs.append(cmc / num_repeats)
    return np.mean(cmcs, axis=0)


def reference_cuhk03_fastreid(distmat, q_pids, g_pids, q_camids, g_camids, max_rank, seed):
    """fastreid's eval_cuhk03_cy CMC, line by line in Python: dict of kept items per identity (first-appearance
    order), np.random.choice from the global RNG, 10 repeats."""
    np.random.seed(seed)
    cmcs = []
    for i in range(len(distmat)):
        order = np.argsort(distmat[i])
        keep = ~((g_pids[order] == q_pids[i]) & (g_camids[order] == q_camids[i]))
        raw = (g_pids[order] == q_pids[i])[keep]
        if not raw.any():
            continue
        groups = {}
        for pos, pid in enumerate(g_pids[order][keep]):
            groups.setdefault(pid, []).append(pos)
        cmc = np.zeros(max_rank)
        for _ in range(10):
            mask = np.zeros(len(raw), bool)
            for idxs in groups.values():
                mask[np.random.choice(idxs)] = True
            cmc += np.minimum(np.cumsum(raw[mask]), 1)[:max_rank] / 10
        cmcs.append(cmc)
    return np.mean(cmcs, axis=0)


def reference_self_protocol(dist, q_pids, g_pids, q_paths, g_paths, max_rank):
    """Per query: drop the gallery item that is the query's own file, rank the rest by distance (stable), skip
    queries without a match; CMC, mAP, mINP averaged over the valid queries."""
    cmc, aps, inps = [], [], []
    for i in range(len(q_pids)):
        keep = [j for j in range(len(g_pids)) if g_paths[j] != q_paths[i]]
        order = sorted(keep, key=lambda j: (dist[i, j], j))
        matches = np.array([g_pids[j] == q_pids[i] for j in order])
        if not matches.any():
            continue
        hits = np.flatnonzero(matches)
        cmc.append((np.arange(max_rank) >= hits[0]).astype(float))
        aps.append(np.mean(np.arange(1, len(hits) + 1) / (hits + 1)))
        inps.append(len(hits) / (hits[-1] + 1))
    return np.mean(cmc, axis=0), float(np.mean(aps)), float(np.mean(inps))


def mean_average_precision(query: np.ndarray, gallery: np.ndarray, q_pids: np.ndarray, g_pids: np.ndarray,
                           q_cams: np.ndarray, g_cams: np.ndarray) -> float:
    """Market protocol: same-pid same-camera gallery items are ignored, queries without a match skipped."""
    distances = ((query[:, None, :] - gallery[None]) ** 2).sum(-1)
    precisions = []
    for i, row in enumerate(distances):
        valid = ~((g_pids == q_pids[i]) & (g_cams == q_cams[i]))
        matches = g_pids[valid][np.argsort(row[valid], kind="stable")] == q_pids[i]
        if matches.any():
            hit_ranks = np.flatnonzero(matches) + 1
            precisions.append(np.mean(np.arange(1, len(hit_ranks) + 1) / hit_ranks))
    return float(np.mean(precisions))
