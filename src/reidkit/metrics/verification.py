"""Verification: are two crops the same identity? ROC of same / different over query-gallery pairs.

    result = verification_roc(q_feats, g_feats, q_pids, g_pids, q_camids, g_camids)
    result.points       # one OperatingPoint per target FPR (1e-2, 1e-3, 1e-4): TPR and the cosine threshold
    result.metrics()    # {"verify/TPR@1e-3": .., "verify/threshold@1e-3": .., ...} for results and checkpoints

Pairs follow the Market protocol's exclusions (reidkit.metrics.rank): a query paired with a gallery item of its
identity seen by the same camera is left out; the other pairs of its identity are positives, every pair of two
identities a negative. Scores are cosine similarities of the L2-normalised features (in float64); a pair is called "same"
when its score is strictly above the threshold. The threshold at a target FPR f is the (k+1)-th highest
negative score with k = floor(f * negatives), so at most k negatives pass it (the achieved FPR is <= f).

Exact at any gallery size: similarities are made in blocks of queries, keeping every positive score and only the
highest negatives (as many as the largest target FPR can accept); the curve for the plot comes from histograms.
Pure numpy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from reidkit.metrics._checks import MetricInputError, as_labels, as_matrix

DEFAULT_FPRS: tuple[float, ...] = (1e-2, 1e-3, 1e-4)
# The operating point whose threshold a model carries for `reidkit verify` and the Embedder.
DEFAULT_OPERATING_FPR = 1e-3
_BLOCK_BYTES = 64 * 2**20
_CURVE_BINS = 4000


def fpr_label(fpr: float) -> str:
    """1e-3 -> '1e-3' (the key suffix of metrics())."""
    mantissa, exponent = f"{fpr:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def threshold_key(fpr: float = DEFAULT_OPERATING_FPR) -> str:
    return f"verify/threshold@{fpr_label(fpr)}"


@dataclass(frozen=True)
class OperatingPoint:
    target_fpr: float
    tpr: float
    threshold: float  # "same" when the cosine similarity is > threshold
    fpr: float  # achieved on these pairs (<= target_fpr)


@dataclass
class VerificationResult:
    points: list[OperatingPoint]
    num_positive: int
    num_negative: int
    curve_fpr: np.ndarray  # ROC for plotting, decreasing thresholds
    curve_tpr: np.ndarray

    def metrics(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for point in self.points:
            out[f"verify/TPR@{fpr_label(point.target_fpr)}"] = point.tpr
            out[threshold_key(point.target_fpr)] = point.threshold
        return out

    def threshold(self, fpr: float = DEFAULT_OPERATING_FPR) -> float:
        for point in self.points:
            if math.isclose(point.target_fpr, fpr):
                return point.threshold
        raise KeyError(f"no operating point at FPR {fpr}; have {[p.target_fpr for p in self.points]}")

    def describe(self) -> str:
        parts = [f"TPR {p.tpr:.1%} at FPR {fpr_label(p.target_fpr)} (cosine > {p.threshold:.4f})" for p in self.points]
        return (f"verification over {self.num_positive:,} same / {self.num_negative:,} different identity pairs: "
                + "; ".join(parts))

    def curve(self) -> dict[str, Any]:
        """Plain data for the report's ROC plot."""
        return {"fpr": self.curve_fpr, "tpr": self.curve_tpr,
                "points": [(p.target_fpr, p.tpr, p.threshold) for p in self.points]}


def _normalized(name: str, x: Any) -> np.ndarray:
    arr = as_matrix(name, x).astype(np.float64, copy=False)
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    return arr / np.maximum(norms, 1e-12)


def _pair_counts(q_pids: np.ndarray, q_camids: np.ndarray, g_pids: np.ndarray, g_camids: np.ndarray
                 ) -> tuple[int, int]:
    """(positives, negatives) under the Market exclusions, from label counts alone."""
    pids, counts = np.unique(g_pids, return_counts=True)
    slot = np.searchsorted(pids, q_pids).clip(max=len(pids) - 1)
    same_pid = np.where(pids[slot] == q_pids, counts[slot], 0)
    pairs = np.stack([g_pids, g_camids], axis=1)
    keys, key_counts = np.unique(pairs, axis=0, return_counts=True)
    lookup = {(int(p), int(c)): int(n) for (p, c), n in zip(keys, key_counts)}
    same_cam = np.array([lookup.get((int(p), int(c)), 0) for p, c in zip(q_pids, q_camids)], dtype=np.int64)
    positives = int((same_pid - same_cam).sum())
    negatives = int(len(q_pids) * len(g_pids) - same_pid.sum())
    return positives, negatives


class _Scores:
    """Every positive score, the highest `keep` negatives and histograms of both, gathered block by block."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.positives: list[np.ndarray] = []
        self.top_negatives = np.zeros(0, np.float64)
        self.edges = np.linspace(-1.0, 1.0, _CURVE_BINS + 1)
        self.pos_hist = np.zeros(_CURVE_BINS, np.int64)
        self.neg_hist = np.zeros(_CURVE_BINS, np.int64)

    def add(self, positives: np.ndarray, negatives: np.ndarray) -> None:
        self.positives.append(positives)
        self.pos_hist += np.histogram(np.clip(positives, -1, 1), self.edges)[0]
        self.neg_hist += np.histogram(np.clip(negatives, -1, 1), self.edges)[0]
        merged = np.concatenate([self.top_negatives, negatives])
        if len(merged) > self.keep:
            merged = np.partition(merged, len(merged) - self.keep)[-self.keep:]
        self.top_negatives = merged


def _operating_point(fpr: float, positives: np.ndarray, top_desc: np.ndarray, num_negative: int) -> OperatingPoint:
    accepted = int(math.floor(fpr * num_negative))
    threshold = float(top_desc[accepted]) if accepted < len(top_desc) else -math.inf
    false_accepts = int(np.count_nonzero(top_desc > threshold))
    return OperatingPoint(target_fpr=float(fpr), tpr=float(np.count_nonzero(positives > threshold) / len(positives)),
                          threshold=threshold, fpr=false_accepts / num_negative)


def verification_roc(query_features: Any, gallery_features: Any, q_pids: Any, g_pids: Any, q_camids: Any,
                     g_camids: Any, *, fprs: Sequence[float] = DEFAULT_FPRS, block_rows: int | None = None
                     ) -> VerificationResult:
    """ROC of same / different identity over the query-gallery pairs (see the module docstring)."""
    qf, gf = _normalized("query_features", query_features), _normalized("gallery_features", gallery_features)
    if qf.shape[1] != gf.shape[1]:
        raise MetricInputError(f"query_features have {qf.shape[1]} dimensions, gallery_features {gf.shape[1]}")
    q_pids, q_camids = (as_labels(n, v, len(qf), "query_features rows") for n, v in (("q_pids", q_pids),
                                                                                       ("q_camids", q_camids)))
    g_pids, g_camids = (as_labels(n, v, len(gf), "gallery_features rows") for n, v in (("g_pids", g_pids),
                                                                                         ("g_camids", g_camids)))
    if not fprs or any(not 0 < f < 1 for f in fprs):
        raise MetricInputError(f"fprs must be false-positive rates in (0, 1), got {list(fprs)}")
    num_positive, num_negative = _pair_counts(q_pids, q_camids, g_pids, g_camids)
    if num_positive == 0 or num_negative == 0:
        raise MetricInputError(f"verification needs pairs of the same and of different identities (other camera); "
                               f"got {num_positive} same and {num_negative} different")
    scores = _Scores(keep=int(math.floor(max(fprs) * num_negative)) + 1)
    rows = block_rows or max(1, _BLOCK_BYTES // (8 * max(1, len(gf))))
    for start in range(0, len(qf), rows):
        stop = min(start + rows, len(qf))
        sims = qf[start:stop] @ gf.T
        same_pid = q_pids[start:stop, None] == g_pids[None, :]
        same_cam = q_camids[start:stop, None] == g_camids[None, :]
        scores.add(sims[same_pid & ~same_cam], sims[~same_pid])
    positives = np.concatenate(scores.positives)
    top_desc = np.sort(scores.top_negatives)[::-1]
    points = [_operating_point(f, positives, top_desc, num_negative) for f in fprs]
    # Histogram bins from the highest score down: cumulative counts are the curve at each bin edge.
    curve_tpr = np.concatenate([[0.0], np.cumsum(scores.pos_hist[::-1]) / num_positive])
    curve_fpr = np.concatenate([[0.0], np.cumsum(scores.neg_hist[::-1]) / num_negative])
    return VerificationResult(points, num_positive, num_negative, curve_fpr, curve_tpr)
