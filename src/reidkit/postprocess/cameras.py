"""Camera inputs and camera/direction penalties (docs/specs/vehicle-aicity.md sections 3.3 and 3.4).

Penalties are returned as non-negative amounts to subtract from a similarity matrix (or add to a distance), so
the same matrix serves the similarity ranking and the "add back as distances" step of the re-ranking branch.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reidkit.errors import PostprocessInputError
from reidkit.postprocess.groups import as_group_labels, groups_from_labels, same_group, singleton_labels


def cluster_camera_features(camera_f: np.ndarray, eps: float = 0.3, min_samples: int = 50) -> np.ndarray:
    """Cam-cluster label per image: DBSCAN on 2 - 2cos of unit camera features (-1 = noise / unknown).

    Pass query and gallery camera features stacked, so both sides share one set of cluster labels.
    """
    from sklearn.cluster import DBSCAN

    camera_f = np.asarray(camera_f, dtype=np.float64)
    if camera_f.ndim != 2:
        raise PostprocessInputError(f"camera features: expected a [N, D] matrix, got shape {camera_f.shape}")
    unit = camera_f / np.maximum(np.linalg.norm(camera_f, axis=1, keepdims=True), 1e-12)
    # Rounding can push cos above 1; a negative distance would make DBSCAN reject the matrix.
    dist = np.clip(2.0 - 2.0 * unit @ unit.T, 0.0, None)
    return DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed").fit(dist).labels_.astype(np.int64)


def complete_cam_clusters(cam_cluster: np.ndarray, group_labels: np.ndarray) -> np.ndarray:
    """Within a group (query cluster or gallery track) whose members carry exactly two distinct cam-cluster
    labels, one of them -1, the unknown members take the other label. Other groups are left as they are."""
    cam_cluster = as_group_labels("cam-cluster labels", cam_cluster, len(cam_cluster))
    group_labels = as_group_labels("group labels", group_labels, len(cam_cluster))
    out = cam_cluster.copy()
    for members in groups_from_labels(group_labels):
        present = np.unique(cam_cluster[members])
        if present.size == 2 and present[0] == -1:
            out[members[cam_cluster[members] == -1]] = present[1]
    return out


@dataclass(frozen=True)
class PenaltyWeights:
    """Amounts subtracted from the cosine similarity (docs/specs/vehicle-aicity.md section 3.4 defaults)."""

    same_camera: float = 0.3
    direction: float = 0.1
    direction_threshold: float = 0.25
    same_cluster: float = 0.2


def camera_penalty(cam_a: np.ndarray, cam_b: np.ndarray, cluster_a: np.ndarray | None = None,
                   cluster_b: np.ndarray | None = None, direction_sim: np.ndarray | None = None,
                   weights: PenaltyWeights = PenaltyWeights()) -> np.ndarray:
    """Penalty [A, B] for pairs likely to be different vehicles because they look like the same camera.

    - `same_camera` where item a's predicted camera is known and equals b's;
    - otherwise (a's camera unknown, -1) `direction` where direction_sim[a, b] >= `direction_threshold`;
    - plus `same_cluster` where a's cam-cluster is known and equals b's.
    """
    cam_a = as_group_labels("cameras (rows)", cam_a, len(cam_a))
    cam_b = as_group_labels("cameras (columns)", cam_b, len(cam_b))
    cluster_a = as_group_labels("cam-clusters (rows)", cluster_a, len(cam_a))
    cluster_b = as_group_labels("cam-clusters (columns)", cluster_b, len(cam_b))
    penalty = weights.same_camera * same_group(cam_a, cam_b).astype(np.float32)
    if direction_sim is not None:
        direction_sim = np.asarray(direction_sim)
        if direction_sim.shape != penalty.shape:
            raise PostprocessInputError(f"direction similarity: expected shape {penalty.shape}, got {direction_sim.shape}")
        unknown = (cam_a == -1)[:, None]
        penalty += weights.direction * ((direction_sim >= weights.direction_threshold) & unknown)
    penalty += weights.same_cluster * same_group(cluster_a, cluster_b)
    return penalty


def within_set_penalty(cams: np.ndarray, clusters: np.ndarray | None, groups: np.ndarray,
                       direction_sim: np.ndarray | None = None,
                       weights: PenaltyWeights = PenaltyWeights()) -> np.ndarray:
    """Query-query or gallery-gallery penalty [N, N], sparing pairs of the same group (query cluster / track):
    only one track per camera per vehicle, so same camera but another group means another vehicle."""
    penalty = camera_penalty(cams, cams, clusters, clusters, direction_sim, weights)
    own = singleton_labels(as_group_labels("group labels", groups, len(penalty)))
    penalty[own[:, None] == own[None, :]] = 0.0
    return penalty
