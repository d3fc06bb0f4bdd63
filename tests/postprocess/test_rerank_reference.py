"""The AICity re-ranking against a transcription of the reference's formula (docs/specs/vehicle-aicity.md 3.6).

The reference's re_ranking takes the edited similarities s, forms d = 2 - 2s for the (Q+G) x (Q+G) block matrix,
squares d, divides each column by its maximum and runs k-reciprocal re-ranking. reidkit squares max(d, 0): equal
wherever d >= 0, and only the negative distances (edited s > 1) differ.
"""
import numpy as np
import pytest

import reidkit.metrics
from oracles.rerank import reference_re_ranking
from reidkit.postprocess.rerank import RerankParams, rerank_branch, rerank_distances

PARAMS = RerankParams(k1=4, k2=2, lambda_value=0.2)


def reference_aicity_re_ranking(q_g_sim, q_q_sim, g_g_sim, k1, k2, lambda_value):
    """The reference, transcribed: similarities in, d = 2 - 2s squared (no clipping), k-reciprocal re-ranking."""
    def squared_distance(s):
        return np.power(2.0 - 2.0 * np.asarray(s, np.float64), 2)

    return reference_re_ranking(squared_distance(q_g_sim), squared_distance(q_q_sim), squared_distance(g_g_sim),
                                k1, k2, lambda_value, square=False)


def similarities(seed=0, nq=5, ng=9):
    rng = np.random.default_rng(seed)
    f = rng.standard_normal((nq + ng, 6))
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    s = np.clip(f @ f.T, -1.0, 1.0)
    return s[:nq, nq:], s[:nq, :nq], s[nq:, nq:]


def reidkit_on_similarities(q_g, q_q, g_g):
    return rerank_distances(2 - 2 * q_g, 2 - 2 * q_q, 2 - 2 * g_g, PARAMS)


def test_equals_the_reference_without_negative_distances():
    q_g, q_q, g_g = similarities()
    expected = reference_aicity_re_ranking(q_g, q_q, g_g, PARAMS.k1, PARAMS.k2, PARAMS.lambda_value)
    np.testing.assert_allclose(reidkit_on_similarities(q_g, q_q, g_g), expected, atol=1e-5)


def edited(q_g, q_q, g_g):
    """A cluster bonus of +0.1 on the query pairs (0, 1) and the diagonal: s > 1 there, so d < 0."""
    q_q = q_q.copy()
    q_q[0, 1] = q_q[1, 0] = 0.97
    q_q += 0.1 * np.eye(len(q_q))
    q_q[0, 1] += 0.1
    q_q[1, 0] += 0.1
    return q_g, q_q, g_g


def test_only_the_negative_distances_are_changed(monkeypatch):
    q_g, q_q, g_g = edited(*similarities(1))
    negative = np.block([[2 - 2 * q_q, 2 - 2 * q_g], [(2 - 2 * q_g).T, 2 - 2 * g_g]]) < 0
    assert negative.sum() == len(q_q) + 2  # the edited diagonal and the pair (0, 1)
    seen = {}
    real = reidkit.metrics.re_ranking

    def spy(q_g_d, q_q_d, g_g_d, **kwargs):
        seen["full"] = np.block([[q_q_d, q_g_d], [q_g_d.T, g_g_d]]) ** 2 if kwargs["square_input"] else None
        return real(q_g_d, q_q_d, g_g_d, **kwargs)

    monkeypatch.setattr(reidkit.metrics, "re_ranking", spy)
    reidkit_on_similarities(q_g, q_q, g_g)
    reference = np.block([[2 - 2 * q_q, 2 - 2 * q_g], [(2 - 2 * q_g).T, 2 - 2 * g_g]]) ** 2
    np.testing.assert_allclose(seen["full"][~negative], reference[~negative], atol=1e-5)
    assert np.all(seen["full"][negative] == 0) and np.all(reference[negative] > 0.01)


def test_with_negative_distances_it_is_the_reference_on_clipped_similarities():
    q_g, q_q, g_g = edited(*similarities(2))
    out = reidkit_on_similarities(q_g, q_q, g_g)
    clipped = reference_aicity_re_ranking(q_g, np.minimum(q_q, 1.0), g_g, PARAMS.k1, PARAMS.k2, PARAMS.lambda_value)
    np.testing.assert_allclose(out, clipped, atol=1e-5)
    raw = reference_aicity_re_ranking(q_g, q_q, g_g, PARAMS.k1, PARAMS.k2, PARAMS.lambda_value)
    assert not np.allclose(out, raw, atol=1e-4)  # the reference's squaring of d < 0 differs


@pytest.mark.parametrize("seed", [3, 4])
def test_rerank_branch_without_edits_beyond_one_is_the_reference(seed):
    """The whole branch (no clusters, no tracks, no cameras: nothing edited) on unit features: the reference."""
    rng = np.random.default_rng(seed)
    q, g = (x / np.linalg.norm(x, axis=1, keepdims=True) for x in (rng.standard_normal((4, 5)),
                                                                    rng.standard_normal((8, 5))))
    scores = (q @ g.T).astype(np.float32)
    out = rerank_branch(q, g, scores, np.zeros_like(scores), params=PARAMS)
    expected = reference_aicity_re_ranking(scores, q @ q.T, g @ g.T, PARAMS.k1, PARAMS.k2, PARAMS.lambda_value)
    np.testing.assert_allclose(out, expected, atol=1e-5)
