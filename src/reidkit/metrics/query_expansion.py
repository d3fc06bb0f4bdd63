"""Query expansion: average QE, alpha-QE, and the DBSCAN query clustering of the vehicle pipeline
(docs/specs/vehicle-aicity.md section 3.1).

All three work in cosine space: features are L2-normalised before use and the expanded queries are
returned L2-normalised, float32 [Q, D]. Each function accepts numpy arrays or torch tensors.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.cluster import DBSCAN

from reidkit.metrics._checks import MetricInputError, positive_int, to_numpy
from reidkit.metrics.distance import _as_features, default_block_rows

# Spec 3.1: a member is "high quality" when its image covers at least this many pixels.
MIN_HIGH_QUALITY_AREA = 15000.0


def _unit(name: str, x: Any) -> torch.Tensor:
    return torch.nn.functional.normalize(_as_features(name, x).float().cpu(), dim=1)


def alpha_query_expansion(query_feats: Any, gallery_feats: Any, k: int = 5, alpha: float = 3.0, *,
                          block_rows: int | None = None) -> np.ndarray:
    """alpha-QE (Radenovic et al., TPAMI 2018): q' = normalise(q + sum_i max(s_i, 0)^alpha g_i) over the k most
    similar gallery items g_i (cosine similarity s_i). Negative similarities get no weight (a fractional
    power of a negative number is undefined). alpha = 0 is average QE.
    Queries are processed in blocks: memory is the features plus one [block_rows, G] similarity block."""
    q, g = _unit("query_feats", query_feats), _unit("gallery_feats", gallery_feats)
    if q.shape[1] != g.shape[1]:
        raise MetricInputError(f"query_feats has shape {tuple(q.shape)} and gallery_feats {tuple(g.shape)}; "
                               "expected the same feature dimension")
    k = positive_int("k", k)
    if k > len(g):
        raise MetricInputError(f"k={k} exceeds the number of gallery items ({len(g)})")
    alpha = float(alpha)
    if not np.isfinite(alpha) or alpha < 0:
        raise MetricInputError(f"alpha must be a finite number >= 0, got {alpha!r}")
    n = positive_int("block_rows", block_rows) if block_rows is not None else default_block_rows(len(g))
    out = torch.empty_like(q)
    with torch.no_grad():
        for start in range(0, len(q), n):
            block = q[start:start + n]
            sims, index = torch.topk(block @ g.T, k, dim=1)
            weights = sims.clamp(min=0).pow(alpha) if alpha > 0 else torch.ones_like(sims)
            expanded = block + (weights.unsqueeze(2) * g[index]).sum(dim=1)
            out[start:start + n] = torch.nn.functional.normalize(expanded, dim=1)
    return out.numpy()


def average_query_expansion(query_feats: Any, gallery_feats: Any, k: int = 5, *, block_rows: int | None = None
                            ) -> np.ndarray:
    """Average QE (Chum et al., ICCV 2007): each query becomes the normalised mean of itself and its k most
    similar gallery items."""
    return alpha_query_expansion(query_feats, gallery_feats, k, alpha=0.0, block_rows=block_rows)


def dbscan_query_expansion(query_feats: Any, eps: float = 0.5, min_samples: int = 2, *,
                           high_quality: Any = None, image_areas: Any = None,
                           min_area: float = MIN_HIGH_QUALITY_AREA) -> tuple[np.ndarray, np.ndarray]:
    """Spec 3.1: DBSCAN(eps, min_samples) of the queries on the distance 2 - 2cos; every clustered query is
    replaced by the normalised mean of its cluster's high-quality members (all members if none is).

    high_quality: [Q] bool mask, or image_areas: [Q] pixel areas (high quality = area >= min_area); neither
    means every member counts. Unclustered queries (label -1) keep their normalised feature.
    Returns (expanded features float32 [Q, D], cluster labels int64 [Q], -1 = unclustered).
    The Q x Q distance matrix is formed (4 Q^2 bytes: 0.5 GB for 11,659 queries).
    """
    q = _unit("query_feats", query_feats)
    num_q = len(q)
    if high_quality is not None and image_areas is not None:
        raise MetricInputError("pass either high_quality or image_areas, not both")
    if image_areas is not None:
        areas = to_numpy("image_areas", image_areas).astype(np.float64)
        if areas.shape != (num_q,):
            raise MetricInputError(f"image_areas has shape {areas.shape}; expected ({num_q},), one per query")
        good = areas >= float(min_area)
    elif high_quality is not None:
        good = to_numpy("high_quality", high_quality)
        if good.shape != (num_q,):
            raise MetricInputError(f"high_quality has shape {good.shape}; expected ({num_q},), one per query")
        good = good.astype(bool)
    else:
        good = np.ones(num_q, bool)
    if not float(eps) > 0:
        raise MetricInputError(f"eps must be > 0, got {eps!r}")
    min_samples = positive_int("min_samples", min_samples)
    expanded = q.numpy().copy()
    if num_q == 0:
        return expanded, np.zeros(0, np.int64)
    with torch.no_grad():
        dist = (2.0 - 2.0 * (q @ q.T)).clamp_(min=0.0).numpy()
    labels = DBSCAN(eps=float(eps), min_samples=min_samples, metric="precomputed").fit_predict(dist)
    del dist
    labels = labels.astype(np.int64)
    clustered = labels >= 0
    if clustered.any():
        # per cluster: sum and count of the high-quality members, falling back to all members
        num_clusters = int(labels.max()) + 1
        feats = q.numpy()[clustered].astype(np.float64)
        lab = labels[clustered]
        hq = good[clustered]
        sums_hq = np.zeros((num_clusters, q.shape[1]))
        np.add.at(sums_hq, lab[hq], feats[hq])
        sums_all = np.zeros((num_clusters, q.shape[1]))
        np.add.at(sums_all, lab, feats)
        has_hq = np.bincount(lab[hq], minlength=num_clusters) > 0
        means = np.where(has_hq[:, None], sums_hq, sums_all)  # the mean's scale is removed by the normalisation
        norms = np.linalg.norm(means, axis=1, keepdims=True)
        expanded[clustered] = (means / np.maximum(norms, 1e-12))[lab].astype(np.float32)
    return expanded, labels
