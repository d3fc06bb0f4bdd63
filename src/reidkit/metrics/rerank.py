"""k-reciprocal re-ranking (Zhong et al., CVPR 2017) with torchreid 0.2.5's exact semantics, sparse and blocked.

torchreid's `re_ranking` builds the (Q+G) x (Q+G) matrix of the inputs, squares it, normalises it, argsorts
it entirely and fills two dense (Q+G)^2 weight matrices: 8.6 GB at Market-1501 scale (docs/results/eval_speed.md), and
impossible at MSMT17 scale. Yet only the k1+1 nearest neighbours of each item and the weights on the
k-reciprocal sets (tens of entries per row) matter. Here the matrix is visited one block of rows at a time
(top-k of each row), the neighbour relations are scipy sparse matrices, and the Jaccard distances are built
from the non-zeros of the sparse weights. Memory: the inputs, the [Q, G] output and O((Q+G) * k1 * k2) more.

The semantics reproduced, in torchreid's order (N = Q + G items, queries first):

1. D = [[q_q, q_g], [q_g^T, g_g]], *squared* in the inputs' common dtype, cast to float32, each column divided
   by its maximum and the matrix transposed: row i of `original_dist` is column i of D^2 over its maximum.
   (For symmetric inputs, row i divided by its own maximum. Feeding torchreid's "euclidean", which is the
   squared distance, means the 4th power of the euclidean distance: docs/specs/top-db-net.md section 8.)
   `square_input=False` skips the squaring (the vehicle pipeline re-ranks 2 - 2s, which can be negative).
2. Neighbours: `np.argsort` of each row (numpy's default, unstable kind). We select the k1+1 smallest by
   `np.argpartition` and sort them; a row whose k1+2 smallest values contain a tie is argsorted in full with
   `np.argsort`, as torchreid does, so that equal distances are ordered exactly as in torchreid.
3. R(i): k-reciprocal neighbours among the k1+1 nearest; each candidate c in R(i) adds its own reciprocal set
   among the round(k1/2)+1 nearest when more than 2/3 of that set lies in R(i) (np.around: 20/2 -> 10).
4. V[i, j] = exp(-d_ij) / sum over the expanded set, in float32 (torchreid 0.2.5 replaced the original
   code's float16 V by float32; the original `numpy.float16` matrices do not appear here either).
5. If k2 != 1, V[i] <- mean of V over i's k2 nearest neighbours (k2 == 1 leaves V as it is, as in torchreid).
6. Jaccard distance 1 - m / (2 - m), m = sum_j min(V[q, j], V[g, j]); final = (1 - lambda) * jaccard +
   lambda * original_dist, restricted to query rows and gallery columns, float32 [Q, G].

Precision: every element-wise float32 operation is torchreid's (bit-identical normalised distances, hence the
same neighbours); sums are taken in a different order (sparse products, float64 bincounts), which moves
the results by ~1e-7. The features variant computes the distances itself and cannot be bit-identical to a
torchreid run on distance matrices computed by other code; it agrees to ~1e-6 on the same features.
"""
from __future__ import annotations

import warnings
from typing import Any, Iterator

import numpy as np
import scipy.sparse as sp

from reidkit.metrics._checks import MetricInputError, as_matrix, positive_int, to_numpy


class CollapsedDistancesError(MetricInputError):
    """An item is at distance 0 from every item (all features equal): there is nothing to re-rank."""

# `re_ranking` runs on numpy and scipy alone: torch (~0.6 GB of resident memory for its libraries) is imported
# by `re_ranking_from_features` only, which computes the distances with it.

# Working buffers, on top of the inputs and the float32 [Q, G] output: the sizes that needed the least memory
# without costing time at Market-1501 scale (the measurements: docs/results/eval_speed.md, "Re-ranking buffers").
_BLOCK_BYTES = 16 * 2**20     # one [rows, Q+G] float32 block of normalised distances (distance matrices)
_FEATURE_BLOCK_BYTES = 64 * 2**20  # the same from features (one matrix product per block, and pair gathers)
_PAIR_BUDGET = 2**19          # (query, gallery) min-terms of the Jaccard sums expanded at once
_DENSE_BUDGET = 8 * 2**20     # bytes of one float64 [rows, G] block of Jaccard sums


class _DenseSource:
    """Normalised rows of torchreid's `original_dist`, read from the three input matrices."""

    def __init__(self, q_g: np.ndarray, q_q: np.ndarray, g_g: np.ndarray, square: bool) -> None:
        self.q_g, self.q_q, self.g_g, self.square = q_g, q_q, g_g, square
        self.num_query, self.num_gallery = q_g.shape
        self.block_bytes = _BLOCK_BYTES
        # torchreid squares the concatenation, whose dtype is the inputs' common dtype, then casts to float32
        self.dtype = np.result_type(q_g.dtype, q_q.dtype, g_g.dtype)
        if not np.issubdtype(self.dtype, np.floating):
            self.dtype = np.dtype(np.float64)

    def _fill(self, out: np.ndarray, src: np.ndarray) -> None:
        if not self.square:
            out[...] = src
        elif self.dtype == np.float32:
            np.square(src, out=out, dtype=np.float32)
        else:
            out[...] = np.square(src.astype(self.dtype, copy=False))

    def _fill_transposed(self, out: np.ndarray, columns: np.ndarray) -> None:
        """out = f(columns.T), in tiles of rows of `columns`: a plain strided transpose touches a new page for
        every element and runs several times slower than this."""
        for r in range(0, columns.shape[0], 256):
            self._fill(out[:, r:r + 256], columns[r:r + 256].T)

    def raw_rows(self, start: int, stop: int, out: np.ndarray) -> np.ndarray:
        """Columns start:stop of D (squared) as rows, written to `out` [stop - start, N] float32."""
        nq = self.num_query
        if start < nq:
            q_stop = min(stop, nq)
            self._fill_transposed(out[: q_stop - start, :nq], self.q_q[:, start:q_stop])
            self._fill(out[: q_stop - start, nq:], self.q_g[start:q_stop])
        if stop > nq:
            g_start, g_stop = max(start, nq) - nq, stop - nq
            self._fill_transposed(out[g_start + nq - start:, :nq], self.q_g[:, g_start:g_stop])
            self._fill_transposed(out[g_start + nq - start:, nq:], self.g_g[:, g_start:g_stop])
        return out

    def raw_pairs(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """D^2[cols, rows] (float32) for pairs: the entry that row `rows` of original_dist holds at `cols`."""
        nq = self.num_query
        vals = np.empty(len(rows), dtype=self.dtype)
        for row_is_q in (True, False):
            for col_is_q in (True, False):
                sel = np.flatnonzero(((rows < nq) == row_is_q) & ((cols < nq) == col_is_q))
                r = rows[sel] if row_is_q else rows[sel] - nq
                c = cols[sel] if col_is_q else cols[sel] - nq
                if row_is_q and col_is_q:
                    vals[sel] = self.q_q[c, r]
                elif row_is_q:
                    vals[sel] = self.q_g[r, c]
                elif col_is_q:
                    vals[sel] = self.q_g[c, r]
                else:
                    vals[sel] = self.g_g[c, r]
        out = np.empty(len(rows), np.float32)
        self._fill(out, vals)
        return out


class _FeatureSource:
    """Rows of the same matrix computed from features: distance(x_i, all) for a block of items i."""

    def __init__(self, q_feats: Any, g_feats: Any, metric: str, square: bool) -> None:
        import torch

        from reidkit.metrics.distance import _as_features, _BlockDistance

        self.torch = torch
        q, g = _as_features("q_feats", q_feats), _as_features("g_feats", g_feats)
        if q.shape[1] != g.shape[1]:
            raise MetricInputError(f"q_feats has shape {tuple(q.shape)} and g_feats {tuple(g.shape)}; "
                                   "expected the same feature dimension")
        self.num_query, self.num_gallery = len(q), len(g)
        # float32 throughout, like the distance matrices torchreid's engine feeds its re-ranking
        self.feats = torch.cat([q.float().cpu(), g.float().cpu()])
        self.metric, self.square = metric, square
        self.block_bytes = _FEATURE_BLOCK_BYTES
        self.op = _BlockDistance(self.feats, self.feats, metric)

    def raw_rows(self, start: int, stop: int, out: np.ndarray) -> np.ndarray:
        torch = self.torch
        with torch.no_grad():
            d = self.op.rows(start, stop)
            if self.square:
                torch.square(d, out=torch.from_numpy(out))
            else:
                out[...] = d.numpy()
        return out

    def raw_pairs(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        torch = self.torch
        out = np.empty(len(rows), np.float32)
        # pairs gathered at once: each gathered [step, dim] float32 copy (and its temporaries) stays within
        # _FEATURE_BLOCK_BYTES; a fixed 2**20 pairs of 512-d features made 2 GB copies, 10.8 GB peak at MSMT17 scale
        step = max(1, _FEATURE_BLOCK_BYTES // (4 * self.feats.shape[1]))
        with torch.no_grad():
            for s in range(0, len(rows), step):
                a = self.feats[torch.from_numpy(rows[s:s + step])]
                b = self.feats[torch.from_numpy(cols[s:s + step])]
                if self.metric == "cosine":
                    d = 1.0 - (torch.nn.functional.normalize(a, dim=1) * torch.nn.functional.normalize(b, dim=1)
                               ).sum(dim=1)
                else:
                    d = (a.pow(2).sum(1) + b.pow(2).sum(1) - 2.0 * (a * b).sum(1)).clamp_(min=0.0)
                    if self.metric == "euclidean":
                        d = d.sqrt_()
                out[s:s + step] = (d.square_() if self.square else d).numpy()
        return out


def _normalised_blocks(source, block_rows: int) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(start, rows of original_dist, their maxima), one block at a time."""
    num_all = source.num_query + source.num_gallery
    # one buffer for all blocks: a fresh one would page-fault its way through (Q+G)^2 * 4 bytes in total
    buffer = np.empty((min(block_rows, num_all), num_all), np.float32)
    for start in range(0, num_all, block_rows):
        stop = min(start + block_rows, num_all)
        block = source.raw_rows(start, stop, buffer[: stop - start])
        peak = block.max(axis=1)  # NaN propagates through max
        if not np.all(np.isfinite(peak)):
            raise MetricInputError(
                "distances (after squaring) must be finite numbers; got NaN or inf"
                + (" - float16 inputs overflow when squared above 256, pass float32" if
                   getattr(source, "dtype", None) == np.float16 else ""))
        if np.any(peak <= 0):
            bad = start + int(np.flatnonzero(peak <= 0)[0])
            raise CollapsedDistancesError(
                f"item {bad} has no positive distance to any item: torchreid divides each column by its maximum, "
                "which must be > 0 (all-identical features, or similarities passed instead of distances?)")
        # torchreid: `1. * original_dist / np.max(original_dist, axis=0)`, a float32 division
        np.divide(block, peak[:, None], out=block)
        yield start, block, peak


def _nearest(block: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k smallest entries of each row, ordered as np.argsort orders them (torchreid).

    np.argpartition selects the k+1 smallest of each row (one more than needed: a tie at the boundary decides
    which item is in), which are then sorted; a row with a tie among them is argsorted in full, as torchreid
    does, so that equal distances come in np.argsort's order. Without ties the order is unique.
    """
    n = block.shape[1]
    if k >= n:
        return np.argsort(block, axis=1)[:, :k]
    probe = min(k + 1, n)
    if probe < n:
        index = np.argpartition(block, probe - 1, axis=1)[:, :probe]
    else:
        index = np.broadcast_to(np.arange(n), block.shape).copy()
    values = np.take_along_axis(block, index, axis=1)
    order = np.argsort(values, axis=1)
    index = np.take_along_axis(index, order, axis=1)
    values = np.take_along_axis(values, order, axis=1)
    tied = np.flatnonzero((values[:, 1:] == values[:, :-1]).any(axis=1))
    out = index[:, :k].copy()
    if len(tied):
        out[tied] = np.argsort(block[tied], axis=1)[:, :k]
    return out


def _rows_to_csr(neighbours: np.ndarray, num_all: int) -> sp.csr_matrix:
    n, k = neighbours.shape
    return sp.csr_matrix((np.ones(n * k, np.float32), neighbours.ravel().astype(np.int64),
                          np.arange(0, n * k + 1, k)), shape=(num_all, num_all))


def _reciprocal(neighbours: np.ndarray, num_all: int) -> sp.csr_matrix:
    """R[i, j] = 1 iff j is among i's neighbours and i among j's (symmetric, 0/1 float32)."""
    a = _rows_to_csr(neighbours, num_all)
    r = a.multiply(a.T).tocsr()
    r.eliminate_zeros()
    return r


def _jaccard_rows(v_query: sp.csr_matrix, v_gallery_cols: sp.csc_matrix, num_gallery: int
                  ) -> Iterator[tuple[int, int, np.ndarray]]:
    """(start, stop, sum_j min(V[q, j], V[g, j]) for the queries start:stop and all g), in bounded blocks.

    Each non-zero V[q, j] meets the non-zeros of column j over the gallery rows: those (q, g) min-terms are
    expanded as flat arrays and summed with one bincount per block.
    """
    col_count = np.diff(v_gallery_cols.indptr)
    terms_per_query = np.bincount(np.repeat(np.arange(v_query.shape[0]), np.diff(v_query.indptr)),
                                  weights=col_count[v_query.indices], minlength=v_query.shape[0])
    max_rows = max(1, _DENSE_BUDGET // (8 * num_gallery))
    start = 0
    cum = np.concatenate([[0.0], np.cumsum(terms_per_query)])
    while start < v_query.shape[0]:
        stop = int(np.searchsorted(cum, cum[start] + _PAIR_BUDGET, side="right")) - 1
        stop = min(max(stop, start + 1), start + max_rows, v_query.shape[0])
        lo, hi = v_query.indptr[start], v_query.indptr[stop]
        q_local = np.repeat(np.arange(stop - start), np.diff(v_query.indptr[start:stop + 1]))
        cols, q_vals = v_query.indices[lo:hi], v_query.data[lo:hi]
        counts = col_count[cols]
        # positions in v_gallery_cols of every (entry, gallery row of that column) pair
        first = v_gallery_cols.indptr[cols]
        pos = np.repeat(first - np.cumsum(counts) + counts, counts) + np.arange(int(counts.sum()))
        mins = np.minimum(np.repeat(q_vals, counts), v_gallery_cols.data[pos])
        flat = np.repeat(q_local, counts) * num_gallery + v_gallery_cols.indices[pos]
        sums = np.bincount(flat, weights=mins, minlength=(stop - start) * num_gallery)
        yield start, stop, sums.reshape(stop - start, num_gallery).astype(np.float32)
        start = stop


def _re_rank(source, k1: int, k2: int, lambda_value: float, block_rows: int | None) -> np.ndarray:
    k1 = positive_int("k1", k1, minimum=0)
    k2 = positive_int("k2", k2)
    if not 0.0 <= float(lambda_value) <= 1.0:
        raise MetricInputError(f"lambda_value must be in [0, 1], got {lambda_value!r}")
    nq, ng = source.num_query, source.num_gallery
    num_all = nq + ng
    if nq == 0 or ng == 0:
        raise MetricInputError(f"re-ranking needs at least one query and one gallery item, got {nq} and {ng}")
    if k1 >= ng:
        warnings.warn(f"re-ranking k1={k1} is not below the gallery size ({ng}): the k-reciprocal sets hold (nearly) "
                      "every item and re-ranking changes little; use a smaller k1", stacklevel=3)
    k_full = min(k1 + 1, num_all)
    k_half = min(int(np.around(k1 / 2.0)) + 1, num_all)
    k_qe = min(k2, num_all)
    # neighbour lists long enough for both the k-reciprocal sets (k1 + 1) and the expansion (k2 > k1 + 1 is
    # allowed: torchreid then averages over the k2 nearest, not over k1 + 1 of them divided by k2)
    k_store = max(k_full, k_qe)
    n_block = positive_int("block_rows", block_rows) if block_rows is not None else \
        max(1, source.block_bytes // (4 * num_all))

    # pass over original_dist: neighbour lists, row maxima, and the query x gallery part (kept in `out`)
    out = np.empty((nq, ng), np.float32)
    neighbours = np.empty((num_all, k_store), np.int64)
    peaks = np.empty(num_all, np.float32)
    for start, block, peak in _normalised_blocks(source, n_block):
        stop = start + len(block)
        neighbours[start:stop] = _nearest(block, k_store)
        peaks[start:stop] = peak
        if start < nq:
            out[start:min(stop, nq)] = block[: min(stop, nq) - start, nq:]
        del block

    reciprocal = _reciprocal(neighbours[:, :k_full], num_all)
    half = _reciprocal(neighbours[:, :k_half], num_all)
    half_size = np.diff(half.indptr)
    # |R(i) & H(c)| for every candidate c in R(i); torchreid: `len(intersect1d) > 2. / 3 * len(H(c))`
    overlap = (reciprocal @ half).multiply(reciprocal).tocsr()
    overlap.eliminate_zeros()
    rows = np.repeat(np.arange(num_all), np.diff(overlap.indptr))
    accept = overlap.data > 2.0 / 3 * half_size[overlap.indices]
    accepted = sp.csr_matrix((np.ones(int(accept.sum()), np.float32), (rows[accept], overlap.indices[accept])),
                             shape=(num_all, num_all))
    expansion = (reciprocal + accepted @ half).tocsr()
    expansion.sort_indices()
    del overlap, accepted, half, reciprocal

    # V[i, j] = exp(-original_dist[i, j]) / row sum, float32 as in torchreid
    e_rows = np.repeat(np.arange(num_all), np.diff(expansion.indptr))
    dist_vals = source.raw_pairs(e_rows, expansion.indices) / peaks[e_rows]
    weights = np.exp(-dist_vals)
    row_sum = np.bincount(e_rows, weights=weights, minlength=num_all).astype(np.float32)
    v = sp.csr_matrix((1.0 * weights / row_sum[e_rows], expansion.indices, expansion.indptr),
                      shape=(num_all, num_all))
    del expansion, e_rows, dist_vals, weights
    if k2 != 1:
        v = (_rows_to_csr(neighbours[:, :k_qe], num_all) @ v).tocsr()
        v.data /= np.float32(k_qe)  # np.mean over the k2 rows: float32 sum, then divide
    v.eliminate_zeros()
    del neighbours

    v_query = v[:nq].tocsr()
    v_gallery_cols = v[nq:].tocsc()
    del v
    for start, stop, min_sum in _jaccard_rows(v_query, v_gallery_cols, ng):
        jaccard = 1 - min_sum / (2.0 - min_sum)
        out[start:stop] = jaccard * (1 - lambda_value) + out[start:stop] * lambda_value
    return out


def re_ranking(q_g_dist: Any, q_q_dist: Any, g_g_dist: Any, k1: int = 20, k2: int = 6, lambda_value: float = 0.3,
               *, square_input: bool = True, block_rows: int | None = None) -> np.ndarray:
    """k-reciprocal re-ranked query x gallery distances, float32 [Q, G]: torchreid 0.2.5's `re_ranking`.

    q_g_dist [Q, G], q_q_dist [Q, Q], g_g_dist [G, G]: distances (numpy or torch), smaller is closer.
    square_input=True (torchreid): the inputs are squared before use - pass what torchreid passes, its
    "euclidean" distance matrices, which are *squared* euclidean distances (so the re-ranking works on
    their square). square_input=False: the inputs are used as they are (still normalised by each column's
    maximum); use it for distances that may be negative or that must not be squared, e.g. d = 2 - 2s from
    similarities s (the vehicle pipeline, docs/specs/vehicle-aicity.md section 3.6). Never feed similarities: larger
    must mean farther. k1, k2, lambda_value: as in the paper (20, 6, 0.3). Result agrees with torchreid to ~1e-7 (module
    doc). Memory: the inputs, the output and O((Q+G) * k1 * k2); block_rows bounds the rows of the (Q+G)-wide
    normalised matrix held at once (16 MB by default). Needs numpy and scipy only (torch is not imported).
    """
    q_g = as_matrix("q_g_dist", q_g_dist)
    nq, ng = q_g.shape
    q_q = as_matrix("q_q_dist", q_q_dist, rows=nq, cols=nq, rows_from="q_g_dist.shape[0]",
                    cols_from="q_g_dist.shape[0]")
    g_g = as_matrix("g_g_dist", g_g_dist, rows=ng, cols=ng, rows_from="q_g_dist.shape[1]",
                    cols_from="q_g_dist.shape[1]")
    return _re_rank(_DenseSource(q_g, q_q, g_g, bool(square_input)), k1, k2, lambda_value, block_rows)


def re_ranking_from_features(q_feats: Any, g_feats: Any, k1: int = 20, k2: int = 6, lambda_value: float = 0.3,
                             *, metric: str = "sqeuclidean", square_input: bool = True,
                             block_rows: int | None = None) -> np.ndarray:
    """`re_ranking(d(q, g), d(q, q), d(g, g))` with d = `compute_distance_matrix(..., metric)`, without ever
    forming the (Q+G)^2 distances: each block of rows is computed, reduced to its k1+1 nearest neighbours
    and dropped. The default metric "sqeuclidean" is what torchreid's engine feeds its re-ranking.

    Needs the features, the float32 [Q, G] output and O((Q+G) * k1 * k2): MSMT17 scale (11,659 + 82,161
    items) runs in well under 24 GB, most of it the 3.8 GB output. Row maxima are taken along rows, which for
    these symmetric distances are the column maxima torchreid uses.
    """
    import torch

    from reidkit.metrics.distance import check_metric

    check_metric(metric)
    q, g = to_numpy("q_feats", q_feats) if not isinstance(q_feats, torch.Tensor) else q_feats, \
        to_numpy("g_feats", g_feats) if not isinstance(g_feats, torch.Tensor) else g_feats
    return _re_rank(_FeatureSource(q, g, metric, bool(square_input)), k1, k2, lambda_value, block_rows)
