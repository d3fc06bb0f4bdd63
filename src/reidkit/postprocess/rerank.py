"""Re-ranking branch (docs/specs/vehicle-aicity.md section 3.6): the query-query and gallery-gallery similarities are
edited with what the earlier steps know (query clusters, tracks, cameras), converted to distances d = 2 - 2s and
re-ranked with k-reciprocal encoding; the query-gallery camera penalties are then added back as distances.

The reference squares d before re-ranking. Edited similarities can exceed 1 (a query's own cluster bonus, a
track's pairs), which makes d negative, and squaring a negative d turns those most-similar pairs into far ones.
DECISION (revised, docs/specs/vehicle-aicity.md section 3.6): square max(d, 0), so every ordinary pair is exactly
the reference's and only the negative distances are fixed (to 0: as close as a pair can be).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reidkit.errors import PostprocessInputError
from reidkit.postprocess.cameras import PenaltyWeights, within_set_penalty
from reidkit.postprocess.groups import as_group_labels, same_group


@dataclass(frozen=True)
class RerankParams:
    k1: int = 70
    k2: int = 10
    lambda_value: float = 0.2
    cluster_bonus: float = 0.1  # q-q: + inside a query cluster, - across two clusters
    track_similarity: float = 1.0  # g-g similarity inside a track


def query_similarity(query_f: np.ndarray, query_cluster: np.ndarray, bonus: float = 0.1) -> np.ndarray:
    """Q Q^T, + bonus inside a query cluster, - bonus between two different clusters (unclustered: unchanged)."""
    qq = np.asarray(query_f, dtype=np.float32) @ np.asarray(query_f, dtype=np.float32).T
    labels = as_group_labels("query clusters", query_cluster, len(qq))
    clustered = labels != -1
    both = clustered[:, None] & clustered[None, :]
    inside = same_group(labels)
    qq += bonus * inside - bonus * (both & ~inside)
    return qq


def gallery_similarity(gallery_f: np.ndarray, gallery_track: np.ndarray, track_similarity: float = 1.0) -> np.ndarray:
    """G G^T with every pair of the same track set to `track_similarity`."""
    gg = np.asarray(gallery_f, dtype=np.float32) @ np.asarray(gallery_f, dtype=np.float32).T
    gg[same_group(as_group_labels("gallery tracks", gallery_track, len(gg)))] = track_similarity
    return gg


def rerank_distances(q_g_dist: np.ndarray, q_q_dist: np.ndarray, g_g_dist: np.ndarray, params: RerankParams) -> np.ndarray:
    """k-reciprocal re-ranking (reidkit.metrics) on the squares of max(d, 0) of the distances d = 2 - 2s."""
    from reidkit.metrics import re_ranking

    q_g, q_q, g_g = (np.maximum(np.asarray(d, dtype=np.float32), 0.0) for d in (q_g_dist, q_q_dist, g_g_dist))
    return np.asarray(re_ranking(q_g, q_q, g_g, k1=params.k1, k2=params.k2, lambda_value=params.lambda_value,
                                 square_input=True))


def rerank_branch(query_f: np.ndarray, gallery_f: np.ndarray, qg_scores: np.ndarray, qg_penalty: np.ndarray, *,
                  query_cluster: np.ndarray | None = None, gallery_track: np.ndarray | None = None,
                  query_cam: np.ndarray | None = None, gallery_cam: np.ndarray | None = None,
                  query_cam_cluster: np.ndarray | None = None, gallery_cam_cluster: np.ndarray | None = None,
                  qq_direction_sim: np.ndarray | None = None, gg_direction_sim: np.ndarray | None = None,
                  params: RerankParams = RerankParams(),
                  weights: PenaltyWeights = PenaltyWeights()) -> np.ndarray:
    """Re-ranked query-gallery distances [Q, G].

    qg_scores: the query-gallery similarities after the penalties and suppression of docs/specs/vehicle-aicity.md
    sections 3.4-3.5. qg_penalty: the section 3.4 penalty matrix, added back to the re-ranked distances.
    """
    nq, ng = len(query_f), len(gallery_f)
    query_cluster = as_group_labels("query clusters", query_cluster, nq)
    gallery_track = as_group_labels("gallery tracks", gallery_track, ng)
    query_cam = as_group_labels("query cameras", query_cam, nq)
    gallery_cam = as_group_labels("gallery cameras", gallery_cam, ng)
    qq = query_similarity(query_f, query_cluster, params.cluster_bonus)
    qq -= within_set_penalty(query_cam, query_cam_cluster, query_cluster, qq_direction_sim, weights)
    gg = gallery_similarity(gallery_f, gallery_track, params.track_similarity)
    gg -= within_set_penalty(gallery_cam, gallery_cam_cluster, gallery_track, gg_direction_sim, weights)
    qg = np.asarray(qg_scores, dtype=np.float32)
    if qg.shape != (nq, ng) or np.shape(qg_penalty) != (nq, ng):
        raise PostprocessInputError(f"query-gallery scores and penalty: expected shape {(nq, ng)}, "
                         f"got {qg.shape} and {np.shape(qg_penalty)}")
    return rerank_distances(2.0 - 2.0 * qg, 2.0 - 2.0 * qq, 2.0 - 2.0 * gg, params) + qg_penalty
