import numpy as np
import pytest
import torch
from oracles.rerank import reference_re_ranking

from reidkit.metrics import MetricInputError, compute_distance_matrix, re_ranking, re_ranking_from_features


def clustered_features(rng, n, nid=6, dim=8):
    centres = rng.normal(size=(nid, dim))
    return (centres[rng.integers(0, nid, n)] + 0.6 * rng.normal(size=(n, dim))).astype(np.float32)


# (2, 6, 0.3): k2 > k1 + 1, where the expansion averages over the k2 nearest (it once used k1 + 1 of them / k2)
@pytest.mark.parametrize("k1, k2, lam", [(20, 6, 0.3), (5, 3, 0.5), (4, 1, 0.2), (3, 2, 0.0), (2, 6, 0.3)])
def test_matches_reference_on_small_problems(k1, k2, lam):
    rng = np.random.default_rng(k1)
    qf, gf = clustered_features(rng, 12), clustered_features(rng, 45)
    dists = [compute_distance_matrix(a, b) for a, b in ((qf, gf), (qf, qf), (gf, gf))]
    expected = reference_re_ranking(*dists, k1, k2, lam)
    out = re_ranking(*dists, k1=k1, k2=k2, lambda_value=lam, block_rows=int(rng.integers(1, 40)))
    assert out.shape == (12, 45) and out.dtype == np.float32
    np.testing.assert_allclose(out, expected, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_asymmetric_inputs_with_ties_match_reference(dtype):
    # asymmetric matrices check the column (not row) normalisation; rounding to 1/8 makes ties everywhere
    rng = np.random.default_rng(1)
    x = (np.round(rng.random((40, 40)) * 8) / 8).astype(dtype)
    q_q, q_g, g_g = x[:10, :10], x[:10, 10:], x[10:, 10:]
    np.testing.assert_allclose(re_ranking(q_g, q_q, g_g, k1=6, k2=3, block_rows=7),
                               reference_re_ranking(q_g, q_q, g_g, 6, 3, 0.3), atol=1e-6)


def test_square_input_false_uses_distances_as_given():
    rng = np.random.default_rng(2)
    qf, gf = clustered_features(rng, 8), clustered_features(rng, 30)
    q_g, q_q, g_g = (compute_distance_matrix(a, b, "cosine") for a, b in ((qf, gf), (qf, qf), (gf, gf)))
    squared = re_ranking(q_g, q_q, g_g, k1=5, k2=3)
    np.testing.assert_array_equal(re_ranking(q_g ** 2, q_q ** 2, g_g ** 2, k1=5, k2=3, square_input=False), squared)
    # docs/specs/vehicle-aicity.md section 3.6: d = 2 - 2s can be negative once similarities are boosted above 1; no
    # squaring
    shifted = [d - 0.3 for d in (q_g, q_q, g_g)]
    np.testing.assert_allclose(re_ranking(*shifted, k1=5, k2=3, square_input=False),
                               reference_re_ranking(*shifted, 5, 3, 0.3, square=False), atol=1e-6)


def test_lambda_one_returns_normalised_original_distances():
    rng = np.random.default_rng(3)
    qf, gf = clustered_features(rng, 5), clustered_features(rng, 20)
    q_g, q_q, g_g = (compute_distance_matrix(a, b) for a, b in ((qf, gf), (qf, qf), (gf, gf)))
    col_max = np.maximum((q_q ** 2).max(axis=0), (q_g ** 2).max(axis=1))  # column i of D over queries
    np.testing.assert_allclose(re_ranking(q_g, q_q, g_g, k1=4, lambda_value=1.0), q_g ** 2 / col_max[:, None],
                               rtol=1e-6)


def test_features_variant_matches_distance_variant():
    rng = np.random.default_rng(4)
    qf, gf = clustered_features(rng, 15, dim=16), clustered_features(rng, 50, dim=16)
    for metric in ("sqeuclidean", "euclidean", "cosine"):
        dists = [compute_distance_matrix(a, b, metric) for a, b in ((qf, gf), (qf, qf), (gf, gf))]
        np.testing.assert_allclose(
            re_ranking_from_features(torch.from_numpy(qf), gf, k1=6, k2=3, metric=metric, block_rows=11),
            re_ranking(*dists, k1=6, k2=3), atol=1e-5)


@pytest.mark.filterwarnings("ignore:re-ranking k1")
def test_bad_inputs_name_the_argument():
    q_g, q_q, g_g = np.ones((2, 3)), np.ones((2, 2)), np.ones((3, 3))
    with pytest.raises(MetricInputError, match=r"q_q_dist has shape \(3, 3\); expected 2"):
        re_ranking(q_g, g_g, g_g)
    with pytest.raises(MetricInputError, match=r"g_g_dist has shape \(2, 2\); expected 3"):
        re_ranking(q_g, q_q, q_q)
    with pytest.raises(MetricInputError, match="finite"):
        re_ranking(np.full((2, 3), np.nan), q_q, g_g)
    with pytest.raises(MetricInputError, match="no positive distance"):
        re_ranking(np.zeros((2, 3)), np.zeros((2, 2)), np.zeros((3, 3)))
    with pytest.raises(MetricInputError, match="lambda_value"):
        re_ranking(q_g, q_q, g_g, lambda_value=2)
    with pytest.raises(MetricInputError, match="metric must be one of"):
        re_ranking_from_features(np.ones((2, 4)), np.ones((3, 4)), metric="manhattan")


def test_re_ranking_needs_neither_torch_nor_scikit_learn(tmp_path):
    # re_ranking runs on numpy + scipy, and reidkit.metrics imports lazily: in a process where importing torch
    # fails, `from reidkit.metrics import re_ranking` still gives the reference result.
    import subprocess
    import sys

    rng = np.random.default_rng(7)
    qf, gf = clustered_features(rng, 9, dim=8), clustered_features(rng, 30, dim=8)
    dists = [compute_distance_matrix(a, b) for a, b in ((qf, gf), (qf, qf), (gf, gf))]
    np.savez(tmp_path / "d.npz", q_g=dists[0], q_q=dists[1], g_g=dists[2])
    code = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "sklearn"):
            raise ImportError(name + " blocked")
sys.meta_path.insert(0, Block())
import numpy as np
from reidkit.metrics import re_ranking
d = np.load({str(tmp_path / "d.npz")!r})
np.save({str(tmp_path / "out.npy")!r}, re_ranking(d["q_g"], d["q_q"], d["g_g"], k1=6, k2=3, block_rows=7))
assert "torch" not in sys.modules and "sklearn" not in sys.modules
"""
    subprocess.run([sys.executable, "-c", code], check=True)
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"),
                               reference_re_ranking(*dists, 6, 3, 0.3), atol=1e-6)


def test_k1_not_below_the_gallery_size_warns():
    rng = np.random.default_rng(3)
    qf, gf = clustered_features(rng, 6), clustered_features(rng, 10)
    dists = [compute_distance_matrix(a, b) for a, b in ((qf, gf), (qf, qf), (gf, gf))]
    with pytest.warns(UserWarning, match=r"k1=10 is not below the gallery size \(10\)"):
        re_ranking(*dists, k1=10, k2=3)


def test_identical_features_raise_the_collapsed_error():
    from reidkit.metrics.rerank import CollapsedDistancesError

    feats = np.ones((5, 4), np.float32)
    dists = [compute_distance_matrix(a, b) for a, b in ((feats, feats), (feats, feats), (feats, feats))]
    with pytest.raises(CollapsedDistancesError, match="no positive distance"):
        re_ranking(*dists, k1=2, k2=2)
