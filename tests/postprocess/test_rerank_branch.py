"""Re-ranking branch assembly (docs/specs/vehicle-aicity.md section 3.6) on a hand-built case."""
import numpy as np

from reidkit.postprocess import rerank
from reidkit.postprocess.rerank import RerankParams, gallery_similarity, query_similarity, rerank_branch


def test_query_similarity_cluster_bonus():
    q = np.eye(4, dtype=np.float32)
    qq = query_similarity(q, np.array([0, 0, 1, -1]))
    expected = np.array([[1.1, 0.1, -0.1, 0], [0.1, 1.1, -0.1, 0], [-0.1, -0.1, 1.1, 0], [0, 0, 0, 1]])
    np.testing.assert_allclose(qq, expected, atol=1e-6)


def test_gallery_similarity_is_one_inside_a_track():
    g = np.array([[1, 0], [0.6, 0.8], [0, 1]], dtype=np.float32)
    gg = gallery_similarity(g, np.array([0, -1, 0]))
    np.testing.assert_allclose(gg, [[1, 0.6, 1], [0.6, 1, 0.8], [1, 0.8, 1]], atol=1e-6)


def test_rerank_branch_feeds_distances_and_adds_penalties_back(monkeypatch):
    seen = {}

    def fake_rerank(q_g, q_q, g_g, params):
        seen.update(q_g=q_g, q_q=q_q, g_g=g_g, params=params)
        return np.zeros_like(q_g)

    monkeypatch.setattr(rerank, "rerank_distances", fake_rerank)
    q = np.eye(2, dtype=np.float32)
    g = np.eye(2, dtype=np.float32)
    scores = np.array([[0.9, 0.2], [0.1, 0.8]], dtype=np.float32)
    penalty = np.array([[0.0, 0.3], [0.2, 0.0]], dtype=np.float32)
    out = rerank_branch(q, g, scores, penalty, query_cluster=np.array([0, 1]), gallery_track=np.array([-1, -1]),
                        query_cam=np.array([3, 3]), gallery_cam=np.array([5, 5]))
    np.testing.assert_allclose(seen["q_g"], 2 - 2 * scores, atol=1e-6)
    # q-q: self 1 + 0.1 (own cluster); across clusters 0 - 0.1, then same camera, other cluster: -0.3
    np.testing.assert_allclose(seen["q_q"], 2 - 2 * np.array([[1.1, -0.4], [-0.4, 1.1]]), atol=1e-6)
    np.testing.assert_allclose(seen["g_g"], 2 - 2 * np.array([[1, -0.3], [-0.3, 1]]), atol=1e-6)
    assert seen["params"] == RerankParams(k1=70, k2=10, lambda_value=0.2)
    np.testing.assert_allclose(out, penalty)  # re-ranked distances (zeros here) + penalties as distances
