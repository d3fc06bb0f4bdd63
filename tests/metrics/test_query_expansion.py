import numpy as np
import pytest

from reidkit.metrics import (MetricInputError, alpha_query_expansion, average_query_expansion,
                             dbscan_query_expansion)


def unit(x):
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_average_qe_is_mean_of_query_and_top_k():
    q = np.array([[1.0, 0.0, 0.0]])
    g = np.array([[0.9, 0.1, 0.0], [0.0, 1.0, 0.0], [0.8, 0.0, 0.3]])
    out = average_query_expansion(q, g, k=2)
    np.testing.assert_allclose(out[0], unit(unit(q[0]) + unit(g[0]) + unit(g[2])), atol=1e-6)


def test_alpha_qe_weights_by_similarity_power_and_ignores_negative():
    q = np.array([[1.0, 0.0]])
    g = np.array([[1.0, 1.0], [-1.0, 0.2]])
    out = alpha_query_expansion(q, g, k=2, alpha=2.0, block_rows=1)
    s = unit(g) @ unit(q[0])
    np.testing.assert_allclose(out[0], unit(unit(q[0]) + s[0] ** 2 * unit(g[0])), atol=1e-6)
    np.testing.assert_allclose(alpha_query_expansion(q, g, k=2, alpha=0.0), average_query_expansion(q, g, k=2))


def test_dbscan_clusters_and_uses_high_quality_members():
    rng = np.random.default_rng(0)
    base = unit(rng.normal(size=(2, 16)))
    q = np.concatenate([base[0] + 0.05 * rng.normal(size=(3, 16)), base[1] + 0.05 * rng.normal(size=(2, 16)),
                        -base[0][None]])
    areas = np.array([20000, 100, 16000, 100, 200, 50000])
    out, labels = dbscan_query_expansion(q, image_areas=areas)
    assert labels[0] == labels[1] == labels[2] != labels[3] == labels[4] and labels[5] == -1
    # cluster 1: members 0 and 2 are large enough; cluster 2: none is, so both count
    np.testing.assert_allclose(out[:3], np.repeat(unit(unit(q[0]) + unit(q[2]))[None], 3, 0), atol=1e-6)
    np.testing.assert_allclose(out[3], unit(unit(q[3]) + unit(q[4])), atol=1e-6)
    np.testing.assert_allclose(out[5], unit(q[5]), atol=1e-6)  # unclustered: itself
    out_mask, labels_mask = dbscan_query_expansion(q, high_quality=areas >= 15000)
    np.testing.assert_array_equal(labels_mask, labels)
    np.testing.assert_allclose(out_mask, out)


def test_bad_input():
    q, g = np.ones((2, 3)), np.ones((4, 3))
    with pytest.raises(MetricInputError, match="k=5 exceeds the number of gallery items"):
        average_query_expansion(q, g, k=5)
    with pytest.raises(MetricInputError, match="same feature dimension"):
        alpha_query_expansion(q, np.ones((4, 2)))
    with pytest.raises(MetricInputError, match="either high_quality or image_areas"):
        dbscan_query_expansion(q, high_quality=[True, False], image_areas=[1, 2])
    with pytest.raises(MetricInputError, match=r"image_areas has shape \(3,\); expected \(2,\)"):
        dbscan_query_expansion(q, image_areas=[1, 2, 3])
