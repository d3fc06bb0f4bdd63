"""Progressive same-camera suppression (docs/specs/vehicle-aicity.md section 3.5).

One track per camera per vehicle: once item t ranks high for a query, other tracks of t's camera are likely
other vehicles, so they are pushed down; the push shrinks as 1/(1+j) with t's rank j.
"""
from __future__ import annotations

import numpy as np

from reidkit.errors import PostprocessInputError
from reidkit.postprocess.cameras import PenaltyWeights, camera_penalty
from reidkit.postprocess.groups import as_group_labels, singleton_labels

SUPPRESSION_WEIGHTS = PenaltyWeights(same_camera=0.3, direction=0.1, direction_threshold=0.25, same_cluster=0.1)


def progressive_suppression(scores: np.ndarray, gallery_cam: np.ndarray, gallery_track: np.ndarray | None = None,
                            gallery_cluster: np.ndarray | None = None, gg_direction_sim: np.ndarray | None = None,
                            steps: int = 99, weights: PenaltyWeights = SUPPRESSION_WEIGHTS) -> np.ndarray:
    """For j = 0..steps-1 and every query, take its current (j+1)-th gallery item t and subtract
    `camera_penalty(t, g) / (1 + j)` from every gallery item g outside t's track.

    scores: [Q, G] similarities (higher = better), not modified; returns the suppressed copy.
    gallery_track: track label per gallery image (-1 = in no track: its own track of one).
    gg_direction_sim: [G, G] direction similarity, used where t's camera is unknown.
    """
    scores = np.array(scores, dtype=np.float32)
    if scores.ndim != 2:
        raise PostprocessInputError(f"scores: expected a [Q, G] matrix, got shape {scores.shape}")
    num_gallery = scores.shape[1]
    gallery_cam = as_group_labels("gallery cameras", gallery_cam, num_gallery)
    track = singleton_labels(as_group_labels("gallery tracks", gallery_track, num_gallery))
    cluster = as_group_labels("gallery cam-clusters", gallery_cluster, num_gallery)
    if gg_direction_sim is not None and np.shape(gg_direction_sim) != (num_gallery, num_gallery):
        raise PostprocessInputError(f"gallery-gallery direction similarity: expected shape {(num_gallery, num_gallery)}, "
                         f"got {np.shape(gg_direction_sim)}")
    for j in range(min(steps, num_gallery)):
        # argpartition finds each row's (j+1)-th best in O(G), where argsort would cost O(G log G) per step.
        top = np.argpartition(-scores, j, axis=1)[:, j]
        direction = None if gg_direction_sim is None else np.asarray(gg_direction_sim)[top]
        penalty = camera_penalty(gallery_cam[top], gallery_cam, cluster[top], cluster, direction, weights)
        penalty[track[top][:, None] == track[None, :]] = 0.0
        scores -= penalty / (1.0 + j)
    return scores
