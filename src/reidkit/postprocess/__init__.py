"""The AICity 2020 vehicle post-processing chain (docs/specs/vehicle-aicity.md section 3), one function per step:

    add_crop_features             detector-crop features: normalise(f + f_crop)      2
    query_clusters_and_expansion  DBSCAN query expansion (reidkit.metrics)            3.1
    smooth_tracks                 gallery track smoothing                               3.2
    cluster_camera_features       cam-cluster labels; complete_cam_clusters fills them   3.3
    camera_penalty                camera / direction / cam-cluster penalties             3.4
    progressive_suppression       progressive same-camera suppression                    3.5
    rerank_branch                 re-ranking on edited distances                         3.6
    write_submission              top-100, 1-based AICity submission file               3.7

`iter_chain` runs them in order and yields the distances after each stage; `run_aicity_postprocess` is the
command (`reidkit postprocess`). Feature extraction with flip / multi-scale TTA and multi-model fusion is in
`reidkit.features.pipeline`, feature files in `reidkit.features.files`; `reidkit.postprocess.extraction` writes
the chain's feature file (the chain itself needs numpy and scikit-learn only).
Users reach it through `reidkit extract --weights A --weights B --scales 1 1.1 --root DATA --output features.mat`.
"""
from reidkit.features.files import load_features, save_features
from reidkit.postprocess.cameras import (PenaltyWeights, camera_penalty, cluster_camera_features,
                                         complete_cam_clusters, within_set_penalty)
from reidkit.postprocess.chain import (STAGES, ChainInputs, ChainParams, iter_chain, query_clusters_and_expansion,
                                       run_chain)
from reidkit.postprocess.cli import add_arguments, run_aicity_postprocess
from reidkit.postprocess.crops import add_crop_features
from reidkit.postprocess.rerank import RerankParams, rerank_branch
from reidkit.postprocess.submission import rank_gallery, read_submission, write_submission
from reidkit.postprocess.suppression import progressive_suppression
from reidkit.postprocess.tracks import high_quality_mask, smooth_tracks

__all__ = [
    "STAGES", "ChainInputs", "ChainParams", "PenaltyWeights", "RerankParams", "add_arguments", "add_crop_features",
    "camera_penalty",
    "cluster_camera_features", "complete_cam_clusters", "high_quality_mask", "iter_chain", "load_features",
    "progressive_suppression", "query_clusters_and_expansion", "rank_gallery", "read_submission", "rerank_branch",
    "run_aicity_postprocess", "run_chain", "save_features", "smooth_tracks", "within_set_penalty",
    "write_submission",
]
