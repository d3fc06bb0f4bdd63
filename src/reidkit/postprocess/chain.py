"""The AICity post-processing chain (docs/specs/vehicle-aicity.md section 3), step by step, with the spec's parameters
as defaults.

`iter_chain` yields the query-gallery distances after every stage, so the ablation can score each stage and
the command keeps only the last one. Every input beyond the two feature matrices is optional: a missing input
switches its part off (no tracks: no smoothing; no cameras: no camera penalty; ...).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np

from reidkit.errors import PostprocessInputError
from reidkit.postprocess.cameras import PenaltyWeights, camera_penalty, cluster_camera_features, complete_cam_clusters
from reidkit.postprocess.groups import as_group_labels, labels_from_groups
from reidkit.postprocess.rerank import RerankParams, rerank_branch
from reidkit.postprocess.suppression import SUPPRESSION_WEIGHTS, progressive_suppression
from reidkit.postprocess.tracks import MIN_HIGH_QUALITY_AREA, high_quality_mask, l2_normalize, smooth_tracks

STAGES = ("raw", "query_expansion", "track_smoothing", "camera_penalties", "suppression", "re_ranking")


@dataclass
class ChainInputs:
    query_f: np.ndarray
    gallery_f: np.ndarray
    gallery_tracks: Sequence[np.ndarray] | None = None  # gallery index arrays, one per track
    query_area: np.ndarray | None = None  # image w x h; None: every image is high quality
    gallery_area: np.ndarray | None = None
    query_cam: np.ndarray | None = None  # predicted camera per image, -1 unknown; None: all unknown
    gallery_cam: np.ndarray | None = None
    query_cam_f: np.ndarray | None = None  # camera-model features, clustered into cam-clusters
    gallery_cam_f: np.ndarray | None = None
    query_dir_f: np.ndarray | None = None  # direction-model features; their dot product is the direction similarity
    gallery_dir_f: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.query_f = l2_normalize(np.asarray(self.query_f, dtype=np.float32))
        self.gallery_f = l2_normalize(np.asarray(self.gallery_f, dtype=np.float32))
        if self.query_f.ndim != 2 or self.gallery_f.ndim != 2 or self.query_f.shape[1] != self.gallery_f.shape[1]:
            raise PostprocessInputError(f"features: expected [Q, D] and [G, D] matrices, got {self.query_f.shape} and "
                             f"{self.gallery_f.shape}")
        for side, n in (("query", len(self.query_f)), ("gallery", len(self.gallery_f))):
            for kind in ("cam_f", "dir_f"):
                value = getattr(self, f"{side}_{kind}")
                if value is not None and len(value) != n:
                    raise PostprocessInputError(f"{side}_{kind}: expected {n} rows, got {len(value)}")
        if (self.query_cam_f is None) != (self.gallery_cam_f is None):
            raise PostprocessInputError("camera features: give both query_cam_f and gallery_cam_f, or neither")
        if (self.query_dir_f is None) != (self.gallery_dir_f is None):
            raise PostprocessInputError("direction features: give both query_dir_f and gallery_dir_f, or neither")


@dataclass(frozen=True)
class ChainParams:
    qe_eps: float = 0.5
    qe_min_samples: int = 2
    min_area: float = MIN_HIGH_QUALITY_AREA
    track_weight: float = 0.5
    cam_eps: float = 0.3
    cam_min_samples: int = 50
    penalties: PenaltyWeights = field(default_factory=PenaltyWeights)
    suppression: PenaltyWeights = SUPPRESSION_WEIGHTS
    suppression_steps: int = 99
    rerank: RerankParams = field(default_factory=RerankParams)


def query_clusters_and_expansion(query_f: np.ndarray, high_quality: np.ndarray, params: ChainParams
                                 ) -> tuple[np.ndarray, np.ndarray]:
    """DBSCAN query clustering + expansion of docs/specs/vehicle-aicity.md section 3.1 (reidkit.metrics): (cluster label
    per query, new features)."""
    from reidkit.metrics.query_expansion import dbscan_query_expansion

    expanded, labels = dbscan_query_expansion(query_f, eps=params.qe_eps, min_samples=params.qe_min_samples,
                                              high_quality=high_quality)
    return np.asarray(labels, dtype=np.int64), l2_normalize(np.asarray(expanded, dtype=np.float32))


def cam_clusters(inputs: ChainInputs, query_cluster: np.ndarray, gallery_track: np.ndarray, params: ChainParams
                 ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Cam-cluster labels for queries and gallery (docs/specs/vehicle-aicity.md section 3.3), completed within query
    clusters and tracks."""
    if inputs.query_cam_f is None:
        return None, None
    stacked = np.concatenate([inputs.query_cam_f, inputs.gallery_cam_f])
    labels = cluster_camera_features(stacked, eps=params.cam_eps, min_samples=params.cam_min_samples)
    nq = len(inputs.query_f)
    return complete_cam_clusters(labels[:nq], query_cluster), complete_cam_clusters(labels[nq:], gallery_track)


def _direction(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
    return None if a is None or b is None else l2_normalize(a) @ l2_normalize(b).T


def similarity_to_distance(scores: np.ndarray) -> np.ndarray:
    return 2.0 - 2.0 * scores


def iter_chain(inputs: ChainInputs, params: ChainParams = ChainParams()) -> Iterator[tuple[str, np.ndarray]]:
    """Yield (stage, [Q, G] distances) for each of STAGES in order."""
    nq, ng = len(inputs.query_f), len(inputs.gallery_f)
    tracks = list(inputs.gallery_tracks or [])
    gallery_track = labels_from_groups(tracks, ng, name="gallery tracks")
    query_cam = as_group_labels("query cameras", inputs.query_cam, nq)
    gallery_cam = as_group_labels("gallery cameras", inputs.gallery_cam, ng)
    yield "raw", similarity_to_distance(inputs.query_f @ inputs.gallery_f.T)

    query_hq = high_quality_mask(inputs.query_area, nq, params.min_area)
    query_cluster, query_f = query_clusters_and_expansion(inputs.query_f, query_hq, params)
    yield "query_expansion", similarity_to_distance(query_f @ inputs.gallery_f.T)

    gallery_hq = high_quality_mask(inputs.gallery_area, ng, params.min_area)
    gallery_f = smooth_tracks(inputs.gallery_f, tracks, gallery_hq, params.track_weight)
    scores = query_f @ gallery_f.T
    yield "track_smoothing", similarity_to_distance(scores)

    query_cc, gallery_cc = cam_clusters(inputs, query_cluster, gallery_track, params)
    qg_penalty = camera_penalty(query_cam, gallery_cam, query_cc, gallery_cc,
                                _direction(inputs.query_dir_f, inputs.gallery_dir_f), params.penalties)
    scores = scores - qg_penalty
    yield "camera_penalties", similarity_to_distance(scores)

    gg_direction = _direction(inputs.gallery_dir_f, inputs.gallery_dir_f)
    scores = progressive_suppression(scores, gallery_cam, gallery_track, gallery_cc, gg_direction,
                                     steps=params.suppression_steps, weights=params.suppression)
    yield "suppression", similarity_to_distance(scores)

    yield "re_ranking", rerank_branch(
        query_f, gallery_f, scores, qg_penalty, query_cluster=query_cluster, gallery_track=gallery_track,
        query_cam=query_cam, gallery_cam=gallery_cam, query_cam_cluster=query_cc, gallery_cam_cluster=gallery_cc,
        qq_direction_sim=_direction(inputs.query_dir_f, inputs.query_dir_f), gg_direction_sim=gg_direction,
        params=params.rerank, weights=params.penalties)


def run_chain(inputs: ChainInputs, params: ChainParams = ChainParams(), until: str = "re_ranking") -> np.ndarray:
    """Distances after stage `until` (default: the whole chain)."""
    if until not in STAGES:
        raise PostprocessInputError(f"unknown stage {until!r}; expected one of {', '.join(STAGES)}")
    for stage, distances in iter_chain(inputs, params):
        if stage == until:
            return distances
    raise AssertionError("unreachable: every stage is yielded")
