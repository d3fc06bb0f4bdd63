"""Distance matrices between feature sets, computed with torch matmuls in blocks of rows.

Blocks keep the temporaries (norm broadcasts) small and let callers that only need a reduction of each
row (top-k, ranks) stream through a query x gallery problem without ever holding the whole matrix.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch

from reidkit.metrics._checks import MetricInputError, positive_int
from reidkit.registry import Registry


@dataclass(frozen=True)
class DistanceKind:
    cosine: bool = False  # 1 - cosine similarity; otherwise the squared euclidean distance ...
    sqrt: bool = False  # ... or its square root


# Query-gallery distances by name (config key test.metric).
METRICS: Registry[DistanceKind] = Registry("distance metric")
METRICS.register("sqeuclidean")(DistanceKind())
METRICS.register("euclidean")(DistanceKind(sqrt=True))
METRICS.register("cosine")(DistanceKind(cosine=True))

# Rows per block when the caller does not say: bounded by bytes of output, not by rows, so that a block of a
# 82,161-wide gallery stays as small as one of a 15,913-wide gallery.
_DEFAULT_BLOCK_BYTES = 64 * 2**20


def _as_features(name: str, x: Any) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(np.asarray(x)))
    if t.ndim != 2:
        raise MetricInputError(f"{name} must be a 2-D feature matrix [num_items, dim], got shape {tuple(t.shape)}")
    if not t.is_floating_point():
        t = t.float()
    if t.dtype in (torch.float16, torch.bfloat16) and t.device.type == "cpu":
        t = t.float()  # half matmuls on CPU are slow and lose precision in the norms
    return t


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise MetricInputError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    return metric


def default_block_rows(num_cols: int, bytes_per_item: int = 4, budget: int = _DEFAULT_BLOCK_BYTES) -> int:
    return max(1, budget // max(1, num_cols * bytes_per_item))


class _BlockDistance:
    """Precomputes what depends on `b` only (norms or normalised rows), then computes blocks of rows of `a`."""

    def __init__(self, a: torch.Tensor, b: torch.Tensor, metric: str) -> None:
        if a.shape[1] != b.shape[1]:
            raise MetricInputError(
                f"feature dimensions differ: a has shape {tuple(a.shape)}, b has shape {tuple(b.shape)}; "
                "expected the same number of columns")
        self.metric = check_metric(metric)
        self.kind = METRICS.get(metric)
        dtype = torch.promote_types(a.dtype, b.dtype)
        self.a, self.b = a.to(dtype), b.to(dtype)
        if self.kind.cosine:
            self.b = torch.nn.functional.normalize(self.b, dim=1)
        else:
            self.b_sq = self.b.pow(2).sum(dim=1)

    def rows(self, start: int, stop: int) -> torch.Tensor:
        a = self.a[start:stop]
        if self.kind.cosine:
            return 1.0 - torch.nn.functional.normalize(a, dim=1) @ self.b.T
        # ||a||^2 + ||b||^2 - 2ab; the clamp removes the small negatives that cancellation leaves
        dist = torch.addmm(a.pow(2).sum(dim=1, keepdim=True) + self.b_sq.unsqueeze(0), a, self.b.T, alpha=-2.0)
        dist.clamp_(min=0.0)
        return dist.sqrt_() if self.kind.sqrt else dist


def iter_distance_blocks(a: Any, b: Any, metric: str = "sqeuclidean", *, block_rows: int | None = None
                         ) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield `(start_row, block)` with `block = distance(a[start_row:start_row + n], b)` as a torch tensor.

    Only one block `[n, len(b)]` exists at a time; `block_rows` defaults to a 64 MB block.
    """
    a_t, b_t = _as_features("a", a), _as_features("b", b)
    op = _BlockDistance(a_t, b_t, metric)
    n = positive_int("block_rows", block_rows) if block_rows is not None else default_block_rows(len(b_t))
    with torch.no_grad():
        for start in range(0, len(a_t), n):
            yield start, op.rows(start, min(start + n, len(a_t)))


def compute_distance_matrix(a: Any, b: Any, metric: str = "sqeuclidean", *, block_rows: int | None = None) -> Any:
    """Distances between the rows of `a` [m, d] and of `b` [n, d] as an [m, n] matrix.

    metric: "sqeuclidean" (||a - b||^2, what torchreid calls "euclidean" and what the reference re-ranking is
    fed), "euclidean" (its square root) or "cosine" (1 - cos).
    Returns a torch tensor if `a` is one (same device), else a float numpy array. Float32 unless an input is
    float64.
    """
    check_metric(metric)
    a_t, b_t = _as_features("a", a), _as_features("b", b)
    op = _BlockDistance(a_t, b_t, metric)
    out = torch.empty((len(a_t), len(b_t)), dtype=op.a.dtype, device=op.a.device)
    n = positive_int("block_rows", block_rows) if block_rows is not None else default_block_rows(len(b_t))
    with torch.no_grad():
        for start in range(0, len(a_t), n):
            stop = min(start + n, len(a_t))
            out[start:stop] = op.rows(start, stop)
    return out if isinstance(a, torch.Tensor) else out.numpy()
