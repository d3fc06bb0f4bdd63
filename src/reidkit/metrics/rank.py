"""CMC, mAP and mINP of a ranking, vectorised and processed in blocks of queries.

Numbers are those of fastreid's Cython evaluator (`rank_cy.pyx`) and torchreid's `evaluate_rank`:

* Market protocol (Market-1501, DukeMTMC, MSMT17, CUHK03 767/700): for each query the gallery items with the
  query's identity *and* camera are removed; a query with no remaining match is skipped; CMC is the
  fraction of valid queries whose first match is at rank <= k; AP is the usual average precision over the
  remaining gallery; mINP is the mean over valid queries of (number of matches) / (rank of the last match).
* CUHK03 classic single-gallery-shot protocol (`protocol="cuhk03"`): as above, but the CMC is averaged
  over `num_repeats` draws of one gallery item per identity (from the items kept for that query). mAP and
  mINP use the whole kept gallery, as in the peers.
* Self protocol (`protocol="self"`, data without camera ids): only the query image itself is removed from its
  gallery, found by its path (`q_images` / `g_images`); every other image of its identity is a match. Then a
  gallery that repeats the queries (query = gallery = every test image) ranks each one against all the others.

The protocols are entries of `RANK_PROTOCOLS`: each says which key, besides the identity, marks a gallery item
as the query's own (its camera, or its image) and whether the CMC is single-gallery-shot; `register` adds one.

How ranks are found. The Market protocol never sorts indices: each row is sorted by *value* (numpy's
SIMD sort, several times faster than `argsort`), and the rank of a match is found by binary search of its
distance in the sorted row, less the items of the query's own identity that precede it. The matches of a
query are few, so this is exact and cheap.

Ties. Where a match has the same distance as a non-match, the order of the two is a choice. The peers take
`np.argsort`'s (the default, unstable kind), which depends on where the items happen to stand in the gallery:
a collapsed model, whose distances are all equal, then scores whatever the gallery order gives, often
confidently. By default (`ties="pessimistic"`) a match is ranked after every non-match at its distance: the
metrics are a lower bound over the tie orders, do not depend on the gallery order, and a model with constant
features scores what it deserves. `ties="argsort"` reproduces the peers exactly (those rows are argsorted
again); use it to compare with them. Healthy float32 features tie in ~1% of Market-1501's queries, which moves
mAP by ~1e-5; when at least 5% of the valid queries tie, a warning says the features look collapsed.

Distances are ranked in the dtype they are given in (the peers cast to float32 first; pass float32 to compare
with them). Sums are taken in float64 (the peers use float32), so the results agree with theirs to ~1e-7.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Literal

import numpy as np
import torch

from reidkit.metrics._checks import MetricInputError, as_labels, as_matrix, positive_int, to_numpy
from reidkit.metrics.distance import check_metric, iter_distance_blocks
from reidkit.registry import Registry

Keys = tuple[np.ndarray, np.ndarray]


def camera_keys(q_camids: np.ndarray, g_camids: np.ndarray, q_images: Any, g_images: Any) -> Keys:
    """Gallery items with the query's identity and camera leave its ranking."""
    return q_camids, g_camids


def image_keys(q_camids: np.ndarray, g_camids: np.ndarray, q_images: Any, g_images: Any) -> Keys:
    """Only the query image itself leaves its ranking: one key per distinct image path."""
    if q_images is None or g_images is None:
        raise MetricInputError("protocol 'self' removes the query image itself from its gallery: pass q_images "
                               "and g_images (the image paths) to find it")
    q = to_numpy("q_images", q_images).astype(str).ravel()
    g = to_numpy("g_images", g_images).astype(str).ravel()
    for name, values, expected in (("q_images", q, len(q_camids)), ("g_images", g, len(g_camids))):
        if len(values) != expected:
            raise MetricInputError(f"{name} has length {len(values)}; expected {expected} (one path per item)")
    _, codes = np.unique(np.concatenate([q, g]), return_inverse=True)
    codes = codes.astype(np.int64).ravel()
    return codes[:len(q)], codes[len(q):]


@dataclass(frozen=True)
class RankProtocol:
    """An evaluation protocol: `junk_keys(q_camids, g_camids, q_images, g_images) -> (q_keys, g_keys)` gives
    the key that, with the identity, marks a gallery item as the query's own (removed from its ranking);
    `single_shot`: the CMC averages draws of one gallery item per identity."""

    junk_keys: Callable[[np.ndarray, np.ndarray, Any, Any], Keys]
    single_shot: bool = False


RANK_PROTOCOLS: Registry[RankProtocol] = Registry("evaluation protocol")
RANK_PROTOCOLS.register("market")(RankProtocol(camera_keys))
RANK_PROTOCOLS.register("cuhk03")(RankProtocol(camera_keys, single_shot=True))
RANK_PROTOCOLS.register("self")(RankProtocol(image_keys))
# cuhk03 draws: a RandomState selects fastreid's own draws (see evaluate_rank)
Seed = int | np.random.Generator | np.random.RandomState | None

# Bytes of one [rows, gallery] float block: bounds the rows evaluated at once, whatever the gallery size.
_BLOCK_BYTES = 64 * 2**20
# How equal distances between a match and a non-match are ordered (see the module doc).
Ties = Literal["pessimistic", "argsort"]
TIES: tuple[str, ...] = ("pessimistic", "argsort")
# Share of the valid queries with such ties above which the features are reported as collapsed: exact float32
# ties of healthy features touch ~1% of the queries at Market-1501 scale, constant features all of them.
TIED_ROWS_WARNING = 0.05


class _Gallery:
    """Gallery labels with the items of each identity listed contiguously, for gathering a query's matches."""

    def __init__(self, pids: np.ndarray, camids: np.ndarray) -> None:
        self.pids, self.camids = pids, camids
        # stable: within an identity the items stay in gallery order
        self.by_pid = np.argsort(pids, kind="stable")
        self.unique_pids, self.starts, self.counts = np.unique(pids[self.by_pid], return_index=True,
                                                              return_counts=True)

    def members(self, q_pids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[B, K] gallery indices of each query's identity (K = the largest such group) and their valid mask."""
        slot = np.searchsorted(self.unique_pids, q_pids).clip(max=len(self.unique_pids) - 1)
        counts = np.where(self.unique_pids[slot] == q_pids, self.counts[slot], 0)
        offset = np.arange(max(int(counts.max(initial=0)), 1))
        valid = offset[None, :] < counts[:, None]
        return self.by_pid[np.where(valid, self.starts[slot][:, None] + offset[None, :], 0)], valid


class _Accumulator:
    """Per-query results gathered block by block; `result()` averages them over the valid queries."""

    def __init__(self, num_gallery: int, max_rank: int, ties: str = "pessimistic") -> None:
        self.first_rank_hist = np.zeros(num_gallery + 1, np.int64)
        self.ap: list[np.ndarray] = []
        self.ap_queries: list[np.ndarray] = []  # the query index of each AP
        self.inp: list[np.ndarray] = []
        self.single_shot_cmc: list[np.ndarray] = []
        self.max_rank = max_rank
        self.ties = ties
        self.tied_rows = 0  # valid queries where a match has the same distance as a non-match

    def add_ranks(self, first: np.ndarray, ap: np.ndarray, inp: np.ndarray, queries: np.ndarray) -> None:
        self.first_rank_hist += np.bincount(first, minlength=len(self.first_rank_hist))[: len(self.first_rank_hist)]
        self.ap.append(ap)
        self.ap_queries.append(queries)
        self.inp.append(inp)

    def query_ap(self, num_query: int) -> np.ndarray:
        """AP of every query in query order; NaN for the queries without a valid match."""
        ap = np.full(num_query, np.nan)
        if self.ap:
            ap[np.concatenate(self.ap_queries)] = np.concatenate(self.ap)
        return ap

    def result(self, single_shot: bool) -> tuple[np.ndarray, float, float]:
        ap = np.concatenate(self.ap) if self.ap else np.zeros(0)
        if ap.size == 0:
            raise MetricInputError(
                "no query has a valid match in the gallery (an item of its identity the protocol keeps: under "
                "market and cuhk03 one from another camera); check that q_pids / g_pids and q_camids / g_camids "
                "describe the same identities and cameras (data without camera ids: protocol='self' removes only "
                "the query image itself)")
        if self.tied_rows >= TIED_ROWS_WARNING * ap.size:
            warnings.warn(
                f"features collapsed: {self.tied_rows / ap.size:.0%} of query rows ({self.tied_rows} of {ap.size}) "
                "have tied distances between a match and a non-match; "
                + ("ties are ranked pessimistically (a match after every non-match at its distance), so the "
                   "metrics do not depend on the gallery order" if self.ties == "pessimistic" else
                   "with ties='argsort' the metrics depend on the gallery order")
                + ". Are the model's features (nearly) constant?", stacklevel=4)
        if single_shot:
            cmc = np.concatenate(self.single_shot_cmc).sum(axis=0) / ap.size
        else:
            cmc = np.cumsum(self.first_rank_hist)[: self.max_rank] / ap.size
        return cmc, float(ap.mean()), float(np.concatenate(self.inp).mean())


def _metrics_from_sorted_matches(raw: np.ndarray, kept_rank: np.ndarray
                                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """From matches laid out in ranked order ([B, G] bool, junk already False) and each item's 0-based rank among
    the kept items: (valid rows, first-match rank, AP, INP) of the valid rows."""
    num_pos = raw.sum(axis=1)
    valid = num_pos > 0
    raw, kept_rank, num_pos = raw[valid], kept_rank[valid], num_pos[valid]
    rows = np.arange(len(raw))
    first = kept_rank[rows, raw.argmax(axis=1)]
    last = kept_rank[rows, raw.shape[1] - 1 - raw[:, ::-1].argmax(axis=1)]
    hits = np.cumsum(raw, axis=1)
    precision_sum = np.divide(hits, kept_rank + 1.0, out=np.zeros(raw.shape), where=raw).sum(axis=1)
    return valid, first, precision_sum / num_pos, num_pos / (last + 1.0)


def _ranked_rows(dist: np.ndarray, q_pids: np.ndarray, q_camids: np.ndarray, gallery: _Gallery, acc: _Accumulator):
    """Exact path: full sort of each row -> matches in ranked order. Equal distances: non-matches first
    (ties="pessimistic"), or numpy's default argsort, as the peers (ties="argsort"); rows where a match ties a
    non-match are counted in acc.tied_rows."""
    if acc.ties == "pessimistic":
        order = np.lexsort((gallery.pids[None, :] == q_pids[:, None], dist), axis=1)
    else:
        order = np.argsort(dist, axis=1)
    match = gallery.pids[order] == q_pids[:, None]
    junk = match & (gallery.camids[order] == q_camids[:, None])
    kept = ~junk
    kept_rank = np.cumsum(kept, axis=1) - 1
    acc.tied_rows += int(_match_ties_non_match(np.take_along_axis(dist, order, axis=1), match & kept, ~match).sum())
    return order, match & kept, kept, kept_rank


def _match_ties_non_match(sorted_dist: np.ndarray, positive: np.ndarray, non_match: np.ndarray) -> np.ndarray:
    """Rows (in ranked order, so equal distances are adjacent) where a match has a non-match's distance."""
    starts = np.ones(sorted_dist.shape, bool)
    starts[:, 1:] = sorted_dist[:, 1:] != sorted_dist[:, :-1]
    flat = np.cumsum(starts, axis=1) - 1 + (np.arange(len(sorted_dist)) * sorted_dist.shape[1])[:, None]
    has_match = np.bincount(flat[positive], minlength=sorted_dist.size) > 0
    has_other = np.bincount(flat[non_match], minlength=sorted_dist.size) > 0
    return (has_match & has_other).reshape(sorted_dist.shape).any(axis=1)


def _market_exact(dist: np.ndarray, q_pids: np.ndarray, q_camids: np.ndarray, gallery: _Gallery, acc: _Accumulator,
                  queries: np.ndarray) -> None:
    _, raw, _, kept_rank = _ranked_rows(dist, q_pids, q_camids, gallery, acc)
    valid, first, ap, inp = _metrics_from_sorted_matches(raw, kept_rank)
    acc.add_ranks(first, ap, inp, queries[valid])


def _market_fast(dist: np.ndarray, q_pids: np.ndarray, q_camids: np.ndarray, gallery: _Gallery, acc: _Accumulator,
                 queries: np.ndarray) -> None:
    """Ranks of the matches by value sort + binary search; rows where a match ties a non-match go to the exact path."""
    sorted_rows = np.sort(dist, axis=1)  # NaNs sort last: one column tells whether a row has any
    if np.isnan(sorted_rows[:, -1]).any():
        raise MetricInputError("distmat contains NaN; distances must be numbers (inf is allowed)")
    member, valid = gallery.members(q_pids)
    member_dist = np.take_along_axis(dist, member, axis=1)
    member_dist[~valid] = np.inf
    positive = valid & (gallery.camids[member] != q_camids[:, None])
    # order each query's own-identity items by distance; stable keeps gallery order among equal distances
    by_dist = np.argsort(member_dist, axis=1, kind="stable")
    member_dist = np.take_along_axis(member_dist, by_dist, axis=1)
    positive = np.take_along_axis(positive, by_dist, axis=1)
    valid = np.take_along_axis(valid, by_dist, axis=1)

    t_sorted = torch.from_numpy(np.ascontiguousarray(sorted_rows))
    t_member = torch.from_numpy(np.ascontiguousarray(member_dist))
    less_all = torch.searchsorted(t_sorted, t_member).numpy()
    equal_all = torch.searchsorted(t_sorted, t_member, right=True).numpy() - less_all
    less_own = torch.searchsorted(t_member, t_member).numpy()
    equal_own = torch.searchsorted(t_member, t_member, right=True).numpy() - less_own
    # padding (inf) entries are counted in equal_own but not in equal_all, hence `valid` in the test
    equal_own = equal_own - ((~valid).sum(axis=1, keepdims=True) * (member_dist == np.inf))
    tied = (positive & (equal_all != equal_own)).any(axis=1)
    acc.tied_rows += int(tied.sum())

    # rank among kept items of the k-th match (k = 0, 1, ...) = (non-matches closer) + k; other items of the
    # query's identity are either matches (counted by k) or removed junk. Pessimistic ties: a match comes after
    # the non-matches at its own distance too, so every row is exact here; argsort ties: rows where a match
    # ties a non-match are argsorted (the exact path) to order them as the peers do.
    k = np.cumsum(positive, axis=1) - 1
    if acc.ties == "pessimistic":
        rank = (less_all + equal_all) - (less_own + equal_own) + k
        tied = np.zeros_like(tied)
    else:
        rank = less_all - less_own + k
    num_pos = positive.sum(axis=1)
    use = (num_pos > 0) & ~tied
    if use.any():
        pos, r, kk, n = positive[use], rank[use], k[use], num_pos[use]
        first = np.where(pos, r, np.iinfo(np.int64).max).min(axis=1)
        last = np.where(pos, r, -1).max(axis=1)
        ap = np.divide(kk + 1.0, r + 1.0, out=np.zeros(pos.shape), where=pos).sum(axis=1) / n
        acc.add_ranks(first, ap, n / (last + 1.0), queries[use])
    if tied.any():
        counted = acc.tied_rows
        _market_exact(dist[tied], q_pids[tied], q_camids[tied], gallery, acc, queries[tied])
        acc.tied_rows = counted  # already counted above


def _cuhk03_single_shot(dist: np.ndarray, q_pids: np.ndarray, q_camids: np.ndarray, gallery: _Gallery,
                        gallery_label: np.ndarray, num_ids: int, rng: np.random.Generator, num_repeats: int,
                        acc: _Accumulator, queries: np.ndarray) -> None:
    order, raw, kept, kept_rank = _ranked_rows(dist, q_pids, q_camids, gallery, acc)
    # one block of draws per query, in query order: results do not depend on how queries are blocked
    keys = rng.random((len(dist), num_repeats, dist.shape[1]))
    valid, first, ap, inp = _metrics_from_sorted_matches(raw, kept_rank)
    acc.add_ranks(first, ap, inp, queries[valid])
    if not valid.any():
        return
    order, raw, kept, keys = order[valid], raw[valid], kept[valid], keys[valid]
    label = torch.from_numpy(gallery_label[order])
    cmc = np.zeros((len(order), acc.max_rank))
    for r in range(num_repeats):
        # per identity, the kept item with the largest key: a uniform draw of one item per identity
        key = np.where(kept, np.take_along_axis(keys[:, r], order, axis=1), -1.0)
        best = torch.full((len(order), num_ids), -1.0, dtype=torch.float64)
        best.scatter_reduce_(1, label, torch.from_numpy(key), reduce="amax")
        chosen = (key == torch.gather(best, 1, label).numpy()) & kept
        # the query's identity has exactly one chosen item; its rank among the chosen items
        rank = (np.cumsum(chosen, axis=1) - 1)[np.arange(len(order)), (chosen & raw).argmax(axis=1)]
        cmc += np.arange(acc.max_rank)[None, :] >= rank[:, None]
    acc.single_shot_cmc.append(cmc / num_repeats)


def _cuhk03_fastreid_draws(dist: np.ndarray, q_pids: np.ndarray, q_camids: np.ndarray, gallery: _Gallery,
                           gallery_label: np.ndarray, num_ids: int, rs: np.random.RandomState, num_repeats: int,
                           acc: _Accumulator, queries: np.ndarray) -> None:
    """Single-gallery-shot CMC with fastreid's own draws: for each valid query, each repeat, and each identity
    in order of its first appearance in the ranked kept gallery, `np.random.choice` of that identity's kept
    items. One `rs.randint(0, counts)` call makes the same draws as those sequential calls (a count of 1
    consumes nothing in both), so a RandomState seeded as fastreid's global one gives fastreid's numbers."""
    order, raw, kept, kept_rank = _ranked_rows(dist, q_pids, q_camids, gallery, acc)
    valid, first, ap, inp = _metrics_from_sorted_matches(raw, kept_rank)
    acc.add_ranks(first, ap, inp, queries[valid])
    if not valid.any():
        return
    order, raw, kept = order[valid], raw[valid], kept[valid]
    label = np.where(kept, gallery_label[order], num_ids)  # num_ids marks removed (junk) items
    by_label = np.argsort(label, axis=1, kind="stable")  # each identity's items, in ranked order
    sorted_label = np.take_along_axis(label, by_label, axis=1)
    starts = np.ones(sorted_label.shape, bool)
    starts[:, 1:] = sorted_label[:, 1:] != sorted_label[:, :-1]
    starts &= sorted_label < num_ids
    g_row, g_col = np.nonzero(starts)  # one entry per (query, identity) group
    per_label = np.bincount((np.arange(len(label))[:, None] * (num_ids + 1) + label).ravel(),
                            minlength=len(label) * (num_ids + 1))
    g_count = per_label[g_row * (num_ids + 1) + sorted_label[g_row, g_col]]
    g_first = by_label[g_row, g_col]  # ranked position of the identity's first kept item
    perm = np.lexsort((g_first, g_row))  # groups by query, then by first appearance (fastreid's dict order)
    g_row, g_col, g_count, g_first = g_row[perm], g_col[perm], g_count[perm], g_first[perm]
    groups = np.bincount(g_row, minlength=len(label))
    offset = np.concatenate([[0], np.cumsum(groups)[:-1]])
    # draw order: query, repeat, identity
    d_row = np.repeat(np.arange(len(label)), groups * num_repeats)
    local = np.arange(len(d_row)) - np.repeat(offset * num_repeats, groups * num_repeats)
    group = offset[d_row] + local % groups[d_row]
    chosen = by_label[d_row, g_col[group] + rs.randint(0, g_count[group])]
    key = d_row * num_repeats + local // groups[d_row]  # (query, repeat)
    own = raw[d_row, chosen]  # exactly one per key: the query's identity
    own_pos = np.empty(len(label) * num_repeats, np.int64)
    own_pos[key[own]] = chosen[own]
    rank = np.bincount(key, weights=chosen < own_pos[key], minlength=len(own_pos)).reshape(len(label), -1)
    cmc = (np.arange(acc.max_rank)[None, None, :] >= rank[:, :, None]).mean(axis=1)
    acc.single_shot_cmc.append(cmc)


class _Evaluator:
    def __init__(self, num_query: int, q_pids: Any, g_pids: Any, q_camids: Any, g_camids: Any, num_gallery: int,
                 max_rank: int, protocol: str, ignore_pids: Iterable[int], num_repeats: int,
                 seed: Seed, q_images: Any = None, g_images: Any = None, ties: str = "pessimistic") -> None:
        if protocol not in RANK_PROTOCOLS:
            raise MetricInputError(f"protocol must be one of {', '.join(RANK_PROTOCOLS.names())}, got {protocol!r}")
        if ties not in TIES:
            raise MetricInputError(f"ties must be one of {', '.join(TIES)}, got {ties!r}")
        self.spec = RANK_PROTOCOLS.get(protocol)
        self.q_pids = as_labels("q_pids", q_pids, num_query, "number of queries")
        q_camids = as_labels("q_camids", q_camids, num_query, "number of queries")
        g_pids = as_labels("g_pids", g_pids, num_gallery, "number of gallery items")
        g_camids = as_labels("g_camids", g_camids, num_gallery, "number of gallery items")
        # from here on "camids" are the protocol's keys: an item of the query's identity and key is junk
        self.q_camids, g_camids = self.spec.junk_keys(q_camids, g_camids, q_images, g_images)
        max_rank = positive_int("max_rank", max_rank)
        self.num_repeats = positive_int("num_repeats", num_repeats)
        ignore = np.asarray(list(ignore_pids), dtype=np.int64)
        # ignored identities (e.g. Market-1501's -1 "junk" images, if they were kept) leave every ranking
        self.keep_cols = None if ignore.size == 0 else np.flatnonzero(~np.isin(g_pids, ignore))
        if self.keep_cols is not None:
            g_pids, g_camids = g_pids[self.keep_cols], g_camids[self.keep_cols]
        if len(g_pids) == 0:
            raise MetricInputError("the gallery is empty (after removing ignore_pids); nothing to rank")
        if len(g_pids) < max_rank:
            warnings.warn(f"the gallery has {len(g_pids)} items, fewer than max_rank={max_rank}; "
                          f"the CMC is computed up to rank {len(g_pids)}", stacklevel=3)
            max_rank = len(g_pids)
        self.gallery = _Gallery(g_pids, g_camids)
        self.protocol = protocol
        self.acc = _Accumulator(len(g_pids), max_rank, ties)
        if self.spec.single_shot:
            self.rng = seed if isinstance(seed, (np.random.Generator, np.random.RandomState)) else \
                np.random.default_rng(seed)
            uniq, self.gallery_label = np.unique(g_pids, return_inverse=True)
            self.num_ids = len(uniq)

    def block_rows(self, itemsize: int) -> int:
        if self.spec.single_shot:  # the per-query random keys are num_repeats x gallery float64
            return max(1, _BLOCK_BYTES // (len(self.gallery.pids) * 8 * (self.num_repeats + 4)))
        return max(1, _BLOCK_BYTES // (len(self.gallery.pids) * max(itemsize, 4)))

    def add(self, start: int, dist: np.ndarray) -> None:
        if self.keep_cols is not None:
            dist = dist[:, self.keep_cols]
        rows = slice(start, start + len(dist))
        q_pids, q_camids = self.q_pids[rows], self.q_camids[rows]
        queries = np.arange(rows.start, rows.start + len(dist))
        if not self.spec.single_shot:
            _market_fast(dist, q_pids, q_camids, self.gallery, self.acc, queries)
        else:
            if np.isnan(dist).any():
                raise MetricInputError("distmat contains NaN; distances must be numbers (inf is allowed)")
            draw = _cuhk03_fastreid_draws if isinstance(self.rng, np.random.RandomState) else _cuhk03_single_shot
            draw(dist, q_pids, q_camids, self.gallery, self.gallery_label, self.num_ids, self.rng, self.num_repeats,
                 self.acc, queries)

    def result(self) -> tuple[np.ndarray, float, float]:
        return self.acc.result(single_shot=self.spec.single_shot)


def evaluate_rank(distmat: Any, q_pids: Any, g_pids: Any, q_camids: Any, g_camids: Any, max_rank: int = 50,
                  protocol: str = "market", *, ignore_pids: Iterable[int] = (), num_repeats: int = 10,
                  seed: Seed = 0, block_rows: int | None = None, q_images: Any = None, g_images: Any = None,
                  ties: Ties = "pessimistic") -> tuple[np.ndarray, float, float]:
    """Evaluate a query x gallery distance matrix: returns `(cmc, mAP, mINP)`.

    distmat: [num_query, num_gallery] distances (numpy or torch); smaller is closer.
    q_pids, q_camids: [num_query] integer identities and cameras; g_pids, g_camids: [num_gallery].
    cmc: float64 array of length `max_rank` (shorter, with a warning, if the gallery is smaller); cmc[0] is
    Rank-1. mAP, mINP: floats in [0, 1].
    protocol: "market", "cuhk03" (classic single-gallery-shot) or "self" (no cameras: only the query image
    itself is removed; q_images / g_images, the image paths, find it); see the module doc. The CUHK03 767/700
    split is evaluated with "market".
    ignore_pids: identities removed from every ranking (the peers have no such option: they rely on the
    dataset loader dropping e.g. Market-1501's pid -1 images). Distractors (pid 0) are ordinary non-matches.
    num_repeats, seed: cuhk03 only. seed an int / None / np.random.Generator: each query draws
    `rng.random((num_repeats, num_gallery))` in query order and keeps, per identity, the item with the largest
    draw. seed an np.random.RandomState: fastreid's draws (`np.random.choice` per identity, in order of first
    appearance in the ranked list) from that state; `np.random.RandomState(s)` gives exactly what fastreid
    gives after `np.random.seed(s)` (fastreid fixes num_repeats=10). fastreid's CMC is 0 at ranks beyond
    the number of identities in the kept gallery (an artefact not reproduced: ours stays at 1).
    Queries with no valid match are skipped; if none is valid, MetricInputError is raised.
    ties: the order of a match and a non-match at the same distance: "pessimistic" (the match after it; the
    result does not depend on the gallery order) or "argsort" (np.argsort's order, as fastreid and torchreid);
    see the module doc. Either way a warning reports collapsed features (ties in >= 5% of the valid queries).
    """
    return _rank_matrix(distmat, q_pids, g_pids, q_camids, g_camids, max_rank, protocol, ignore_pids, num_repeats,
                        seed, block_rows, q_images, g_images, ties).result()


def query_average_precision(distmat: Any, q_pids: Any, g_pids: Any, q_camids: Any, g_camids: Any,
                            protocol: str = "market", *, ignore_pids: Iterable[int] = (), q_images: Any = None,
                            g_images: Any = None, ties: Ties = "pessimistic") -> np.ndarray:
    """The AP of every query (float64, query order) that `evaluate_rank` averages into the mAP, ties ordered
    the same way; NaN for the queries it skips (no valid match)."""
    ev = _rank_matrix(distmat, q_pids, g_pids, q_camids, g_camids, 1, protocol, ignore_pids, 1, 0, None,
                      q_images, g_images, ties)
    return ev.acc.query_ap(len(ev.q_pids))


def _rank_matrix(distmat: Any, q_pids: Any, g_pids: Any, q_camids: Any, g_camids: Any, max_rank: int,
                 protocol: str, ignore_pids: Iterable[int], num_repeats: int, seed: Seed, block_rows: int | None,
                 q_images: Any, g_images: Any, ties: str) -> _Evaluator:
    """An evaluator fed the whole distance matrix, one block of queries at a time."""
    dist = as_matrix("distmat", distmat)
    num_query, num_gallery = dist.shape
    ev = _Evaluator(num_query, q_pids, g_pids, q_camids, g_camids, num_gallery, max_rank, protocol, ignore_pids,
                    num_repeats, seed, q_images, g_images, ties)
    if not np.issubdtype(dist.dtype, np.floating):
        dist = dist.astype(np.float64)
    elif dist.dtype == np.float16:  # exact widening; the binary searches run in torch, which wants float32
        dist = dist.astype(np.float32)
    n = positive_int("block_rows", block_rows) if block_rows is not None else ev.block_rows(dist.itemsize)
    for start in range(0, num_query, n):
        ev.add(start, dist[start:start + n])
    return ev


def evaluate_rank_from_features(q_feats: Any, g_feats: Any, q_pids: Any, g_pids: Any, q_camids: Any,
                                g_camids: Any, max_rank: int = 50, protocol: str = "market", *,
                                metric: str = "sqeuclidean", ignore_pids: Iterable[int] = (),
                                num_repeats: int = 10, seed: Seed = 0, block_rows: int | None = None,
                                q_images: Any = None, g_images: Any = None, ties: Ties = "pessimistic"
                                ) -> tuple[np.ndarray, float, float]:
    """`evaluate_rank` on `compute_distance_matrix(q_feats, g_feats, metric)`, computed one block of queries at a
    time: memory is the features plus one [block_rows, num_gallery] block (64 MB by default), never the
    whole matrix (11,659 x 82,161 at MSMT17 scale would be 3.8 GB in float32)."""
    check_metric(metric)
    q = to_numpy("q_feats", q_feats) if not isinstance(q_feats, torch.Tensor) else q_feats
    g = to_numpy("g_feats", g_feats) if not isinstance(g_feats, torch.Tensor) else g_feats
    if q.ndim != 2 or g.ndim != 2:
        raise MetricInputError(f"q_feats and g_feats must be 2-D [num_items, dim], got shapes "
                               f"{tuple(q.shape)} and {tuple(g.shape)}")
    ev = _Evaluator(q.shape[0], q_pids, g_pids, q_camids, g_camids, g.shape[0], max_rank, protocol, ignore_pids,
                    num_repeats, seed, q_images, g_images, ties)
    n = positive_int("block_rows", block_rows) if block_rows is not None else ev.block_rows(4)
    for start, block in iter_distance_blocks(q, g, metric, block_rows=n):
        ev.add(start, block.cpu().numpy())
    return ev.result()
