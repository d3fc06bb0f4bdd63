import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from reidkit.metrics import MetricInputError, compute_distance_matrix, iter_distance_blocks


@pytest.mark.parametrize("metric", ["sqeuclidean", "euclidean", "cosine"])
def test_matches_scipy_in_blocks(metric):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(13, 6)), rng.normal(size=(9, 6))
    out = compute_distance_matrix(a.astype(np.float32), b.astype(np.float32), metric, block_rows=4)
    assert isinstance(out, np.ndarray) and out.shape == (13, 9) and out.dtype == np.float32
    np.testing.assert_allclose(out, cdist(a, b, metric), atol=1e-4)
    out64 = compute_distance_matrix(a, b, metric)
    assert out64.dtype == np.float64
    np.testing.assert_allclose(out64, cdist(a, b, metric), atol=1e-10)


def test_torch_in_torch_out_and_self_distance_not_negative():
    a = torch.randn(5, 4)
    out = compute_distance_matrix(a, a)
    assert isinstance(out, torch.Tensor) and out.shape == (5, 5)
    assert (out >= 0).all() and torch.allclose(out.diagonal(), torch.zeros(5), atol=1e-5)


def test_blocks_cover_all_rows_once():
    a, b = np.ones((7, 3), np.float32), np.zeros((4, 3), np.float32)
    starts = [(s, blk.shape) for s, blk in iter_distance_blocks(a, b, block_rows=3)]
    assert starts == [(0, (3, 4)), (3, (3, 4)), (6, (1, 4))]


def test_bad_input():
    with pytest.raises(MetricInputError, match=r"a has shape \(3, 4\), b has shape \(2, 5\)"):
        compute_distance_matrix(np.ones((3, 4)), np.ones((2, 5)))
    with pytest.raises(MetricInputError, match="metric must be one of"):
        compute_distance_matrix(np.ones((3, 4)), np.ones((2, 4)), "l1")
    with pytest.raises(MetricInputError, match=r"b must be a 2-D feature matrix"):
        compute_distance_matrix(np.ones((3, 4)), np.ones(4))
