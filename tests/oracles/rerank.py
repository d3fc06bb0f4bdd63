"""k-reciprocal re-ranking written densely, one item at a time, with torchreid 0.2.5's semantics: what
reidkit.metrics.rerank (sparse, blocked) is checked against."""
from __future__ import annotations

import numpy as np


def reference_re_ranking(q_g, q_q, g_g, k1, k2, lam, square=True):
    """Dense k-reciprocal re-ranking with torchreid 0.2.5's semantics, one item at a time."""
    full = np.block([[q_q, q_g], [q_g.T, g_g]])
    full = (np.square(full) if square else full).astype(np.float32)
    dist = (full / full.max(axis=0)).T  # row i = column i over its maximum
    n, nq = len(dist), len(q_q)
    rank = np.argsort(dist, axis=1)

    def reciprocal(i, k):
        return {j for j in rank[i, :k] if i in rank[j, :k]}

    half = int(np.around(k1 / 2)) + 1
    v = np.zeros((n, n), np.float32)
    for i in range(n):
        r = reciprocal(i, k1 + 1)
        expanded = set(r)
        for c in r:
            rc = reciprocal(c, half)
            if len(rc & r) > 2 / 3 * len(rc):
                expanded |= rc
        idx = np.array(sorted(expanded), dtype=int)
        w = np.exp(-dist[i, idx])
        v[i, idx] = w / w.sum()
    if k2 != 1:
        v = np.stack([v[rank[i, :k2]].mean(axis=0) for i in range(n)])
    jaccard = np.empty((nq, n - nq), np.float32)
    for i in range(nq):
        m = np.minimum(v[i], v[nq:]).sum(axis=1)
        jaccard[i] = 1 - m / (2 - m)
    return jaccard * (1 - lam) + dist[:nq, nq:] * lam
